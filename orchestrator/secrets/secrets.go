package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"

	stackhcl "github.com/obcd/obcd/hcl"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/obcd/obcd/internal/atomicfile"
	"github.com/obcd/obcd/templates"
)

// Path is where an environment's secret values live.
func Path(stateDir, env string) string {
	return filepath.Join(stateDir, env+".secrets")
}

// Store holds an environment's secret values: the dotenv file
// .obcd/<env>.secrets, keyed by OBCD_SECRET_<NAME>, with the process
// environment taking precedence. It implements templates.SecretSource.
type Store struct {
	path      string
	values    map[string]string
	lookupEnv func(string) (string, bool)
}

// ErrInsecure says the secrets file is readable by other users.
var ErrInsecure = errors.New("secrets file is readable by other users")

// Load reads the secrets file at path; a missing file is an empty
// store. lookupEnv reads OBCD_SECRET_* overrides (nil: os.LookupEnv).
func Load(path string, lookupEnv func(string) (string, bool)) (*Store, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	store := &Store{path: path, values: map[string]string{}, lookupEnv: lookupEnv}
	data, err := readSecretsFile(path)
	if err != nil || data == nil {
		return store, err
	}
	if err := checkNoExpansion(path, data); err != nil {
		return nil, err
	}
	// Parse errors may quote the offending line, which may hold a secret:
	// keep the path, drop the message.
	values, err := dotenv.UnmarshalBytesWithLookup(data, func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, fmt.Errorf("%s is not a valid dotenv file; fix the malformed line (KEY=value per line) or remove it", path)
	}
	store.values = values
	return store, nil
}

// checkNoExpansion refuses a line with a NUL byte, and a value with a $
// that the dotenv format would expand: any $ in a bare value, and one not escaped as \$ in double
// quotes (single quotes are literal). A password holding ${HOME} would
// silently become another. The error names the line and the key, never
// the value.
func checkNoExpansion(path string, data []byte) error {
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "export "))
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		key, value, ok := strings.Cut(trimmed, "=")
		value = strings.TrimSpace(value)
		if strings.ContainsRune(line, 0) {
			return fmt.Errorf("%s:%d: the line of %s holds a NUL byte, which no environment variable can carry, so the container would get another secret; remove it, or run obcd secrets rotate to set the value",
				path, i+1, strings.TrimSpace(key))
		}
		if !ok || strings.HasPrefix(value, "'") || !expands(value) {
			continue
		}
		return fmt.Errorf("%s:%d: the value of %s holds a $ that the dotenv format expands, so the secret would silently change; put the value in single quotes (%s='...'), write it as \\$ inside double quotes, or run obcd secrets rotate to set it",
			path, i+1, strings.TrimSpace(key), strings.TrimSpace(key))
	}
	return nil
}

// expands says whether a bare or double-quoted dotenv value holds a $
// that is not escaped with a backslash.
func expands(value string) bool {
	if !strings.HasPrefix(value, `"`) {
		return strings.Contains(value, "$")
	}
	for i := 1; i < len(value); i++ {
		switch value[i] {
		case '\\':
			i++ // the next byte is escaped
		case '$':
			return true
		}
	}
	return false
}

func readSecretsFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read secrets: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrInsecure, path, info.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secrets: %w", err)
	}
	return data, nil
}

// Value implements templates.SecretSource.
func (s *Store) Value(name string) (string, error) {
	key := stackhcl.SecretEnvVar(name)
	if v, ok := s.lookupEnv(key); ok && v != "" {
		return v, nil
	}
	if v := s.values[key]; v != "" {
		return v, nil
	}
	env := strings.TrimSuffix(filepath.Base(s.path), ".secrets")
	return "", &templates.MissingSecretError{Name: name, EnvVar: key, File: s.path, Env: env}
}

// Has reports whether a secret has a value, from the file or environment.
func (s *Store) Has(name string) bool {
	_, err := s.Value(name)
	return err == nil
}

// Init generates a strong random value for every declared secret
// that has none in the file yet, and writes the file atomically with mode
// 0600. Existing values, comments and unknown keys are kept byte for
// byte. It returns the names it generated (never values).
func Init(path string, secrets []*stackhcl.Secret) ([]string, error) {
	existing, err := readSecretsFile(path)
	if err != nil {
		return nil, err
	}
	store, err := Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, err
	}
	generated, added, err := store.generateMissing(secrets)
	if err != nil || len(generated) == 0 {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, appendLines(existing, added), 0o600); err != nil {
		return nil, err
	}
	return generated, nil
}

// generateMissing draws a value for each secret the store has none for,
// and returns their names and the dotenv lines that hold them.
func (s *Store) generateMissing(secrets []*stackhcl.Secret) ([]string, []byte, error) {
	var generated []string
	var added bytes.Buffer
	for _, secret := range secrets {
		if s.values[secret.EnvVar()] != "" {
			continue
		}
		value, err := generateSecret(secret)
		if err != nil {
			return nil, nil, fmt.Errorf("generate %s: %w", secret.Name, err)
		}
		if secret.Description != "" {
			fmt.Fprintf(&added, "# %s\n", secret.Description)
		}
		fmt.Fprintf(&added, "%s=%s\n", secret.EnvVar(), value)
		generated = append(generated, secret.Name)
	}
	return generated, added.Bytes(), nil
}

// appendLines is the secrets file with added at its end; a new file
// starts with a header that says what it is.
func appendLines(existing, added []byte) []byte {
	content := existing
	if len(content) == 0 {
		content = []byte("# obcd secrets: generated by `obcd secrets init`. Keep this file private (mode 0600).\n" +
			"# OBCD_SECRET_<NAME> in the environment overrides a value here.\n")
	} else if content[len(content)-1] != '\n' {
		content = append(content, '\n')
	}
	return append(content, added...)
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// generateSecret draws a value from crypto/rand in the secret's format.
// alnum is ASCII so SCRAM needs no SASLprep; fernet is 32 random bytes in
// padded base64url, the key format of cryptography's Fernet.
func generateSecret(s *stackhcl.Secret) (string, error) {
	switch s.Format {
	case "hex":
		return hex.EncodeToString(randomBytes((s.Length + 1) / 2))[:s.Length], nil
	case "fernet":
		return base64.URLEncoding.EncodeToString(randomBytes(32)), nil
	case "base64url":
		return base64.RawURLEncoding.EncodeToString(randomBytes(s.Length))[:s.Length], nil
	}
	return randomAlnum(s.Length)
}

// randomBytes are n bytes from crypto/rand, whose Read never fails.
func randomBytes(n int) []byte {
	raw := make([]byte, n)
	_, _ = rand.Read(raw)
	return raw
}

// randomAlnum is n characters drawn uniformly from alnum.
func randomAlnum(n int) (string, error) {
	out := make([]byte, n)
	limit := big.NewInt(int64(len(alnum)))
	for i := range out {
		index, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return "", err
		}
		out[i] = alnum[index.Int64()]
	}
	return string(out), nil
}

// ErrUnstorable says a value cannot be written to the dotenv file as it
// is read back.
var ErrUnstorable = errors.New("the value cannot be stored in the secrets file")

// Rotate gives secret a new value in the file at path: value, or when
// it is "" a new one drawn as Init draws them. The line that held the
// old value is replaced where it was (comments, other values and unknown
// keys stay byte for byte), or appended when there was none. The new
// content is parsed first, to prove it holds the new value, then written
// atomically with mode 0600. It never returns or prints a value.
func Rotate(path string, secret *stackhcl.Secret, value string) error {
	existing, err := readSecretsFile(path)
	if err != nil {
		return err
	}
	if value == "" {
		if value, err = generateSecret(secret); err != nil {
			return fmt.Errorf("generate %s: %w", secret.Name, err)
		}
	}
	line, err := dotenvLine(secret.EnvVar(), value)
	if err != nil {
		return fmt.Errorf("%s: %w", secret.Name, err)
	}
	content, replaced := replaceLine(existing, secret.EnvVar(), line)
	if !replaced {
		content = appendLines(existing, []byte(line+"\n"))
	}
	parsed, err := dotenv.UnmarshalBytesWithLookup(content, func(string) (string, bool) { return "", false })
	if err != nil || parsed[secret.EnvVar()] != value {
		return fmt.Errorf("%s: %w: it would not read back the same; nothing was written", secret.Name, ErrUnstorable)
	}
	return atomicfile.WriteFile(path, content, 0o600)
}

// dotenvLine writes KEY=value so that the dotenv parser (compose-go's,
// which docker compose --env-file uses too) reads value back exactly:
//   - bare when it is plain;
//   - in single quotes when it holds no single quote and no backslash
//     (the parser reads \' there as an escaped quote): nothing inside is
//     interpolated;
//   - else in double quotes, with \ " and $ escaped as \\ \" and \$.
//
// Any value round-trips but one with a newline, a carriage return or a
// NUL, which no environment variable can hold either.
func dotenvLine(key, value string) (string, error) {
	if strings.ContainsAny(value, "\n\r\x00") {
		return "", fmt.Errorf("%w: it holds a newline, a carriage return or a NUL; choose a value without them", ErrUnstorable)
	}
	plain := true
	for _, r := range value {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.+/=:@%", r)) {
			plain = false
			break
		}
	}
	switch {
	case plain:
		return key + "=" + value, nil
	case !strings.ContainsAny(value, `'\`):
		return key + "='" + value + "'", nil
	}
	escaped := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`).Replace(value)
	return key + `="` + escaped + `"`, nil
}

// replaceLine replaces the first line that sets key (KEY=… or export
// KEY=…) with line, and drops any later one, so the file sets key once.
func replaceLine(content []byte, key, line string) ([]byte, bool) {
	var out bytes.Buffer
	replaced := false
	for _, l := range bytes.SplitAfter(content, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		trimmed := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(l)), "export "))
		if strings.HasPrefix(trimmed, key+"=") || strings.HasPrefix(trimmed, key+" =") {
			if !replaced {
				out.WriteString(line + "\n")
				replaced = true
			}
			continue
		}
		out.Write(l)
	}
	return out.Bytes(), replaced
}
