package templates

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obcd/obcd/internal/testsvc"
)

// runBackupScript runs the rendered backup.sh once (BACKUP_ONCE=1)
// against pg, as compose would, and returns its exit error and output.
func runBackupScript(t *testing.T, pg *testsvc.Postgres, database, backupDir, textfileDir string) (string, error) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "backup.sh")
	if err := os.WriteFile(script, renderBackup(loadOBCMS(t, "staging"))[0].Data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", script)
	cmd.Env = []string{
		"PATH=" + testsvc.PostgresBinDir + ":/usr/bin:/bin",
		"PGHOST=" + pg.Host, "PGPORT=" + strconv.Itoa(pg.Port), "PGUSER=postgres", "PGPASSWORD=" + pg.Password,
		"PGDATABASE=" + database, "BACKUP_ONCE=1", "BACKUP_DIR=" + backupDir, "TEXTFILE_DIR=" + textfileDir,
		"BACKUP_INTERVAL_SECONDS=60", "BACKUP_KEEP_DAYS=7",
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestBackup_DumpRestoresIntoScratchDatabase proves the backup job end to
// end on a real server: a verified custom-format dump is kept, old dumps
// are pruned, the success metric is published, and a real pg_restore into
// a scratch database brings the data back.
func TestBackup_DumpRestoresIntoScratchDatabase(t *testing.T) {
	pg := testsvc.StartPostgres(t)
	pg.Exec("postgres", "CREATE DATABASE obcms")
	pg.Exec("obcms", "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, 'note '||g FROM generate_series(1, 250) g")
	backupDir, textfileDir := t.TempDir(), t.TempDir()
	stale := filepath.Join(backupDir, "obcms-20200101T000000Z.dump")
	if err := os.WriteFile(stale, []byte("PGDMP old"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-30 * 24 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	out, err := runBackupScript(t, pg, "obcms", backupDir, textfileDir)
	if err != nil {
		t.Fatalf("backup failed: %v\n%s", err, out)
	}
	dumps, _ := filepath.Glob(filepath.Join(backupDir, "obcms-*.dump"))
	if len(dumps) != 1 || dumps[0] == stale {
		t.Fatalf("dumps after one run = %v (the 30-day-old one must be pruned)\n%s", dumps, out)
	}
	if partial, _ := filepath.Glob(filepath.Join(backupDir, ".*partial")); len(partial) != 0 {
		t.Errorf("partial dump left behind: %v", partial)
	}
	metric, err := os.ReadFile(filepath.Join(textfileDir, "obcd_backup.prom"))
	if err != nil || !strings.Contains(string(metric), BackupMetric+" ") {
		t.Errorf("success metric not published: %v %q", err, metric)
	}

	pg.Exec("postgres", "CREATE DATABASE scratch")
	restore := exec.Command(testsvc.PostgresBinDir+"/pg_restore", "--exit-on-error", "--no-owner",
		"-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", "postgres", "-d", "scratch", dumps[0])
	restore.Env = []string{"PGPASSWORD=" + pg.Password}
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("pg_restore into scratch failed: %v\n%s", err, out)
	}
	count, err := pg.Psql("-d", "scratch", "-tA", "-c", "SELECT count(*) FROM notes")
	if err != nil || strings.TrimSpace(count) != "250" {
		t.Fatalf("restored rows = %q, %v; want 250", count, err)
	}
}

func TestBackup_FailedDumpKeepsNothingAndSaysSo(t *testing.T) {
	pg := testsvc.StartPostgres(t)
	backupDir, textfileDir := t.TempDir(), t.TempDir()
	out, err := runBackupScript(t, pg, "no_such_db", backupDir, textfileDir)
	if err == nil {
		t.Fatalf("backup of a missing database succeeded:\n%s", out)
	}
	if !strings.Contains(out, "pg_dump failed") {
		t.Errorf("output does not explain the failure:\n%s", out)
	}
	if entries, _ := os.ReadDir(backupDir); len(entries) != 0 {
		t.Errorf("files left in the backup dir: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(textfileDir, "obcd_backup.prom")); !os.IsNotExist(err) {
		t.Errorf("success metric published for a failed backup")
	}
}

// TestBackup_VerifyRejectsTruncatedDump checks the check itself: a dump
// cut short is refused, though its table of contents still reads.
func TestBackup_VerifyRejectsTruncatedDump(t *testing.T) {
	pg := testsvc.StartPostgres(t)
	pg.Exec("postgres", "CREATE DATABASE obcms")
	pg.Exec("obcms", "CREATE TABLE blobs (id int, body text); INSERT INTO blobs SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 2000) g")
	backupDir := t.TempDir()
	if out, err := runBackupScript(t, pg, "obcms", backupDir, t.TempDir()); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	dumps, _ := filepath.Glob(filepath.Join(backupDir, "obcms-*.dump"))
	data, err := os.ReadFile(dumps[0])
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated.dump")
	if err := os.WriteFile(truncated, data[:len(data)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "backup.sh")
	if err := os.WriteFile(script, renderBackup(loadOBCMS(t, "staging"))[0].Data, 0o755); err != nil {
		t.Fatal(err)
	}
	verify := func(path string) error {
		cmd := exec.Command("/bin/sh", script, "verify", path)
		cmd.Env = []string{"PATH=" + testsvc.PostgresBinDir + ":/usr/bin:/bin"}
		return cmd.Run()
	}
	if err := verify(dumps[0]); err != nil {
		t.Fatalf("intact dump rejected: %v", err)
	}
	if err := verify(truncated); err == nil {
		t.Fatal("truncated dump accepted")
	}
}
