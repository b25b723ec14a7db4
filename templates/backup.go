package templates

import (
	_ "embed"

	stackhcl "github.com/obcd/obcd/hcl"
)

//go:embed files/backup.sh
var backupScript []byte

// renderBackup writes the backup job's script when the stack declares a
// backup service. The script is static; compose passes its settings
// (database, interval, retention) as environment variables.
func renderBackup(s *stackhcl.Stack) []Artifact {
	if s.First(stackhcl.KindBackup) == nil {
		return nil
	}
	return []Artifact{{Path: PathBackupScript, Mode: ModeScript, Data: backupScript}}
}
