// Package templates renders every artifact of one environment from a
// resolved stack: compose file, service configs, env file and manifest.
// Typed formats are marshalled from structs; only nginx.conf and shell
// scripts use embedded text templates.
package templates

import (
	"fmt"
	"io/fs"

	stackhcl "github.com/obcd/obcd/hcl"
)

// Artifact is one rendered file, relative to the output directory.
type Artifact struct {
	Path string      // slash-separated, relative, e.g. "config/nginx/nginx.conf"
	Mode fs.FileMode // 0644, or 0600 for anything derived from a secret
	Data []byte
}

// File modes of rendered artifacts.
const (
	ModePublic  fs.FileMode = 0o644
	ModeSecret  fs.FileMode = 0o600
	ModeScript  fs.FileMode = 0o755
	ModeDirPerm fs.FileMode = 0o755
)

// SecretSource gives the value of a declared secret. Renderers ask for a
// value only to derive something that is safe to write (a SCRAM
// verifier); plain values never reach an artifact.
type SecretSource interface {
	Value(name string) (string, error)
}

// MissingSecretError says that a secret the stack needs has no value.
type MissingSecretError struct {
	Name   string // secret name as declared
	EnvVar string // OBCD_SECRET_<NAME>
	File   string // the secrets file that was searched
	Env    string // the environment, when known
}

func (e *MissingSecretError) Error() string {
	env := e.Env
	if env == "" {
		env = "<env>"
	}
	return fmt.Sprintf("secret %q has no value: run `obcd secrets init %s` to generate it into %s, or export %s",
		e.Name, env, e.File, e.EnvVar)
}

// MapSecrets is a SecretSource backed by a map; tests use it.
type MapSecrets map[string]string

// Value implements SecretSource.
func (m MapSecrets) Value(name string) (string, error) {
	if v, ok := m[name]; ok && v != "" {
		return v, nil
	}
	return "", &MissingSecretError{Name: name, EnvVar: stackhcl.SecretEnvVar(name), File: "(test secrets)"}
}

// Paths of artifacts in the output directory. Compose mounts each one at
// the container path next to it, so the two sides never disagree.
const (
	PathPgBouncerIni      = "config/pgbouncer/pgbouncer.ini"
	PathPgBouncerUserlist = "config/pgbouncer/userlist.txt"
	PathPostgresHBA       = "config/postgres/pg_hba.conf"
	PathPostgresRoles     = "config/postgres/roles.sql"
	PathPostgresReplica   = "config/postgres/replica-entrypoint.sh"
	PathPostgresQueries   = "config/postgres-exporter/queries.yaml"
	PathPrometheus        = "config/prometheus/prometheus.yml"
	DirPrometheusRules    = "config/prometheus/rules"
	PathAlertmanager      = "config/alertmanager/alertmanager.yml"
	DirGrafanaDatasources = "config/grafana/provisioning/datasources"
	DirGrafanaProviders   = "config/grafana/provisioning/dashboards"
	DirGrafanaDashboards  = "config/grafana/dashboards"
	PathNginx             = "config/nginx/nginx.conf"
	PathBackupScript      = "config/backup/backup.sh"
	PathManifest          = "manifest.json"
)

// Container-side paths that configs refer to.
const (
	ContainerPgBouncerDir     = "/etc/pgbouncer"
	ContainerPostgresConfDir  = "/etc/obcd/postgres"
	ContainerPostgresInitDir  = "/docker-entrypoint-initdb.d"
	ContainerPrometheusDir    = "/etc/prometheus"
	ContainerAlertmanagerDir  = "/etc/alertmanager"
	ContainerGrafanaProvision = "/etc/grafana/provisioning"
	ContainerGrafanaDashboard = "/var/lib/grafana/dashboards"
	ContainerNginxConf        = "/etc/nginx/nginx.conf"
	ContainerStaticDir        = "/var/www/static"
	ContainerMediaDir         = "/var/www/media"
	ContainerBackupDir        = "/backups"
	// ContainerTextfileDir is where the backup job writes its last-success
	// metric and where node-exporter's textfile collector reads it.
	ContainerTextfileDir = "/var/lib/obcd/textfile"
	// BackupMetric is the gauge the backup job writes after each verified dump.
	BackupMetric = "obcd_backup_last_success_timestamp_seconds"
)

// EnvFilePath is the env file of an environment.
func EnvFilePath(env string) string { return ".env." + env }

// ComposeFilePath is the compose file of an environment.
func ComposeFilePath(env string) string { return "docker-compose." + env + ".yml" }
