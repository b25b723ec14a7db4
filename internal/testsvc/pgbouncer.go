package testsvc

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PgBouncerBin is Debian's pgbouncer.
const PgBouncerBin = "/usr/sbin/pgbouncer"

// PgBouncer is a running PgBouncer.
type PgBouncer struct {
	Host       string
	Port       int
	Dir        string // instance dir: config, auth file, socket, log
	ConfigPath string

	proc *process
}

type pgBouncerConfig struct {
	authFile []byte
}

// PgBouncerOption configures StartPgBouncer.
type PgBouncerOption func(*pgBouncerConfig)

// WithAuthFile writes userlist into the instance dir (mode 0600, owned by
// the service user) and points auth_file at it.
func WithAuthFile(userlist []byte) PgBouncerOption {
	return func(c *pgBouncerConfig) { c.authFile = userlist }
}

// StartPgBouncer starts pgbouncer with ini, in the foreground, and waits
// until it accepts connections. The settings that tie a process to its
// host — listen_addr, listen_port, unix_socket_dir, pidfile, logfile (its
// stderr goes to the instance log) — are replaced with loopback and
// temp-dir values; everything else is used as given, [databases] included.
func StartPgBouncer(t testing.TB, ini string, opts ...PgBouncerOption) *PgBouncer {
	t.Helper()
	RequireBinaries(t, PgBouncerBin)
	var config pgBouncerConfig
	for _, opt := range opts {
		opt(&config)
	}
	dir := Dir(t)
	bouncer := &PgBouncer{Host: "127.0.0.1", Port: FreePort(t), Dir: dir, ConfigPath: filepath.Join(dir, "pgbouncer.ini")}
	overrides := [][2]string{
		{"listen_addr", bouncer.Host},
		{"listen_port", strconv.Itoa(bouncer.Port)},
		{"unix_socket_dir", dir},
		{"pidfile", filepath.Join(dir, "pgbouncer.pid")},
		{"logfile", ""},
	}
	if config.authFile != nil {
		authPath := filepath.Join(dir, "userlist.txt")
		WriteFile(t, authPath, config.authFile, 0o600)
		overrides = append(overrides, [2]string{"auth_file", authPath})
	}
	for _, kv := range overrides {
		var err error
		if ini, err = SetIniKey(ini, "pgbouncer", kv[0], kv[1]); err != nil {
			t.Fatalf("testsvc: pgbouncer.ini: %v", err)
		}
	}
	WriteFile(t, bouncer.ConfigPath, []byte(ini), 0o600)
	addr := net.JoinHostPort(bouncer.Host, strconv.Itoa(bouncer.Port))
	cmd := command(t, dir, nil, PgBouncerBin, bouncer.ConfigPath)
	// SIGTERM is PgBouncer 1.18's immediate shutdown; SIGINT would wait for clients.
	bouncer.proc = startProcess(t, "pgbouncer on "+addr, cmd, filepath.Join(dir, "pgbouncer.log"), syscall.SIGTERM)
	bouncer.proc.waitReady(t, 15*time.Second, dialProbe(addr))
	return bouncer
}

// DSN is a connection string for user on database through the pooler.
func (b *PgBouncer) DSN(user, password, database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable",
		b.Host, b.Port, quoteDSN(user), quoteDSN(password), quoteDSN(database))
}

// Log returns the end of PgBouncer's log.
func (b *PgBouncer) Log() string { return b.proc.logTail(16000) }

// SetIniKey sets key in section of an ini file: it replaces the key's
// existing line, or adds one at the end of the section. It fails when the
// section is missing.
func SetIniKey(ini, section, key, value string) (string, error) {
	lines := strings.Split(strings.TrimSuffix(ini, "\n"), "\n")
	line := strings.TrimSpace(key + " = " + value)
	inSection, end := false, -1
	for i, raw := range lines {
		text := strings.TrimSpace(raw)
		if strings.HasPrefix(text, "[") {
			inSection = strings.EqualFold(strings.Trim(text, "[] "), section)
			if inSection {
				end = i + 1
			}
			continue
		}
		if !inSection {
			continue
		}
		if name, _, ok := strings.Cut(text, "="); ok && strings.TrimSpace(name) == key {
			lines[i] = line
			return strings.Join(lines, "\n") + "\n", nil
		}
		if text != "" {
			end = i + 1
		}
	}
	if end < 0 {
		return "", fmt.Errorf("no [%s] section", section)
	}
	lines = append(lines[:end], append([]string{line}, lines[end:]...)...)
	return strings.Join(lines, "\n") + "\n", nil
}
