package secrets

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/templates"
)

func declared() []*stackhcl.Secret {
	return []*stackhcl.Secret{
		{Name: "django_secret_key", Length: 64, Format: "alnum", Description: "Django SECRET_KEY."},
		{Name: "field_key", Length: 44, Format: "fernet"},
		{Name: "url_token", Length: 40, Format: "base64url"},
		{Name: "token", Length: 32, Format: "hex"},
	}
}

func TestInitSecrets_GeneratesStrongValuesWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".obcd", "staging.secrets")
	generated, err := Init(path, declared())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(generated, ",") != "django_secret_key,field_key,url_token,token" {
		t.Errorf("generated = %v", generated)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode = %04o, want 0600", info.Mode().Perm())
	}
	store, err := Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	key, _ := store.Value("django_secret_key")
	if len(key) != 64 || strings.Trim(key, alnum) != "" {
		t.Errorf("secret key %d chars, not alnum", len(key))
	}
	fernet, _ := store.Value("field_key")
	if raw, err := base64.URLEncoding.DecodeString(fernet); err != nil || len(raw) != 32 {
		t.Errorf("field key is not a Fernet key (32 bytes base64url): %v len=%d", err, len(raw))
	}
	urlToken, _ := store.Value("url_token")
	if len(urlToken) != 40 || strings.ContainsAny(urlToken, "+/=") {
		t.Errorf("base64url token %q: want 40 url-safe characters", urlToken)
	}
	token, _ := store.Value("token")
	if len(token) != 32 || strings.Trim(token, "0123456789abcdef") != "" {
		t.Errorf("hex token wrong: len %d", len(token))
	}
	otherPath := filepath.Join(t.TempDir(), "other.secrets")
	if _, err := Init(otherPath, declared()); err != nil {
		t.Fatal(err)
	}
	other, err := Load(otherPath, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if otherKey, _ := other.Value("django_secret_key"); otherKey == key {
		t.Error("two inits produced the same value: not random")
	}
}

func TestInitSecrets_NeverOverwritesExistingValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "staging.secrets")
	original := "# mine\nOBCD_SECRET_DJANGO_SECRET_KEY=keep-me-exactly\nUNRELATED=1\n"
	if err := os.WriteFile(path, []byte(original), 0o600); err != nil {
		t.Fatal(err)
	}
	generated, err := Init(path, declared())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(generated, ",") != "field_key,url_token,token" {
		t.Errorf("generated = %v, want only the missing ones", generated)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), original) {
		t.Errorf("existing content changed:\n%s", data)
	}
	before := string(data)
	generated, err = Init(path, declared())
	if err != nil || len(generated) != 0 {
		t.Fatalf("second run generated %v, %v", generated, err)
	}
	after, _ := os.ReadFile(path)
	if string(after) != before {
		t.Error("a run with nothing missing rewrote the file")
	}
}

func TestSecretStore_EnvironmentOverridesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "staging.secrets")
	if err := os.WriteFile(path, []byte("OBCD_SECRET_DJANGO_SECRET_KEY=from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"OBCD_SECRET_DJANGO_SECRET_KEY": "from-env"}
	store, err := Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := store.Value("django_secret_key"); v != "from-env" {
		t.Errorf("value = %q, want the environment's", v)
	}
}

func TestSecretStore_MissingSecretNamesItAndTheFix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "staging.secrets")
	store, err := Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Value("postgres_password")
	var missing *templates.MissingSecretError
	if !errors.As(err, &missing) || missing.Name != "postgres_password" {
		t.Fatalf("err = %v, want a MissingSecretError", err)
	}
	for _, want := range []string{"postgres_password", "obcd secrets init", "OBCD_SECRET_POSTGRES_PASSWORD", path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}

func TestLoadSecrets_RefusesWorldReadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "staging.secrets")
	if err := os.WriteFile(path, []byte("OBCD_SECRET_X=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, nil); !errors.Is(err, ErrInsecure) {
		t.Fatalf("err = %v, want ErrInsecure", err)
	}
}

func TestLoadSecrets_ParseErrorDoesNotQuoteTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "staging.secrets")
	if err := os.WriteFile(path, []byte("OBCD_SECRET_X='sup3rs3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, nil)
	if err == nil {
		t.Fatal("want a parse error")
	}
	if strings.Contains(err.Error(), "sup3rs3cret") {
		t.Fatalf("error leaks the value: %v", err)
	}
}

// TestRotate_ReplacesOneValueInPlace: a rotation changes exactly the one
// line, keeps comments and every other key byte for byte, keeps the
// file 0600, and reads back the new value, generated or given; a value
// the file cannot hold is refused with the file untouched.
func TestRotate_ReplacesOneValueInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "staging.secrets")
	before := "# keep me\nOBCD_SECRET_DJANGO_SECRET_KEY=old1\nUNKNOWN=kept\nOBCD_SECRET_TOKEN=tok\n"
	if err := os.WriteFile(path, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}
	read := func() (string, *Store) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		store, err := Load(path, func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return string(data), store
	}
	secret := declared()[0]

	if err := Rotate(path, secret, ""); err != nil {
		t.Fatal(err)
	}
	after, store := read()
	generated, _ := store.Value(secret.Name)
	if generated == "old1" || len(generated) != 64 {
		t.Errorf("generated value has length %d (old kept: %v), want a new 64-character one", len(generated), generated == "old1")
	}
	if want := strings.Replace(before, "old1", generated, 1); after != want {
		t.Errorf("file after rotation:\n%s\nwant only the one line changed:\n%s", after, want)
	}

	for _, value := range []string{"with space & $HOME #not-a-comment", `back\slash"quote`, "plain-Value_1.2", "it's", `it's "$HOME" \$ \\`} {
		if err := Rotate(path, secret, value); err != nil {
			t.Fatalf("rotate to %q: %v", value, err)
		}
		_, store := read()
		if got, _ := store.Value(secret.Name); got != value {
			t.Errorf("read back %q, want %q", got, value)
		}
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o after rotation, want 0600", info.Mode().Perm())
	}

	kept, _ := read()
	for _, bad := range []string{"two\nlines", "carriage\rreturn", "nul\x00byte"} {
		if err := Rotate(path, secret, bad); !errors.Is(err, ErrUnstorable) || strings.Contains(err.Error(), bad) {
			t.Errorf("rotate to an unstorable value: %v; want ErrUnstorable, without the value", err)
		}
		if now, _ := read(); now != kept {
			t.Error("a refused rotation changed the file")
		}
	}

	// A secret the file has no line for yet is appended.
	if err := Rotate(path, declared()[2], ""); err != nil {
		t.Fatal(err)
	}
	if _, store := read(); !store.Has("url_token") {
		t.Error("a rotation of a secret with no line did not add one")
	}
}

// TestLoad_ADollarOutsideSingleQuotesIsRefused: dotenv would expand
// ${HOME} in a value, so a password holding one would silently change;
// the file is refused, naming the line and key, never the value. In
// single quotes, the $ is the value's own.
func TestLoad_ADollarOutsideSingleQuotesIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "staging.secrets")
	for _, line := range []string{`OBCD_SECRET_DB=ab${HOME}cd`, `OBCD_SECRET_DB="ab$HOME"`, `export OBCD_SECRET_DB=x$y`} {
		if err := os.WriteFile(path, []byte("# a comment\n"+line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), "staging.secrets:2") || !strings.Contains(err.Error(), "OBCD_SECRET_DB") || strings.Contains(err.Error(), "HOME") || strings.Contains(err.Error(), "x$y") {
			t.Errorf("%s: Load = %v, want a refusal naming line 2 and the key, not the value", line, err)
		}
	}
	if err := os.WriteFile(path, []byte("OBCD_SECRET_DB='ab${HOME}cd'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := store.values["OBCD_SECRET_DB"]; v != "ab${HOME}cd" {
		t.Errorf("single-quoted value = %q, want it verbatim", v)
	}
}

// TestRotate_AnyValueButANewlineRoundTrips: every byte but newline,
// carriage return and NUL (which no environment variable can hold), in
// any place of a value, with quotes of both kinds, $ and backslashes
// together, is written by rotate and read back by Load unchanged: the
// secrets file is literal, nothing in it is interpolated.
func TestRotate_AnyValueButANewlineRoundTrips(t *testing.T) {
	path := filepath.Join(t.TempDir(), "staging.secrets")
	secret := &stackhcl.Secret{Name: "db_password"}
	values := []string{" leading and trailing ", "\ttab", "#hash", "a#b #c", `'`, `"`, `\`, `$`, "${HOME}", "$HOME", `\$HOME`, `'"'"'`, `"'$\`, "=", "==x==", "é ü ✓", "\xff\xfe invalid utf-8"}
	var all []byte
	for b := 1; b < 256; b++ {
		if b != '\n' && b != '\r' {
			all = append(all, byte(b))
			values = append(values, "x"+string(rune(b))+"y", string([]byte{byte(b)}))
		}
	}
	values = append(values, string(all))
	for _, value := range values {
		if err := Rotate(path, secret, value); err != nil {
			t.Errorf("rotate to %q: %v", value, err)
			continue
		}
		store, err := Load(path, func(string) (string, bool) { return "", false })
		if err != nil {
			t.Errorf("load after rotating to %q: %v", value, err)
			continue
		}
		if got, _ := store.Value(secret.Name); got != value {
			t.Errorf("read back %q, want %q", got, value)
		}
	}
}
