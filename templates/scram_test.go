package templates

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	stackhcl "github.com/obcd/obcd/hcl"
)

func TestSCRAM_VerifierMatchesReferenceVector(t *testing.T) {
	salt, err := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	if err != nil {
		t.Fatal(err)
	}
	got := SCRAMVerifier("pencil", salt, 4096)
	want := "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	if got != want {
		t.Fatalf("SCRAMVerifier(pencil) =\n%s\nwant\n%s", got, want)
	}
}

func TestSCRAM_MD5VerifierMatchesReferenceExample(t *testing.T) {
	if got, want := MD5Verifier("admin", "1234"), "md545f2603610af569b6155c45067268c6b"; got != want {
		t.Fatalf("MD5Verifier(admin, 1234) = %s, want %s", got, want)
	}
}

func TestSCRAM_SaltIsDeterministicAndScopedToStackEnvUser(t *testing.T) {
	base := SCRAMSalt("pw", "obcms", "staging", "app")
	if len(base) != 16 {
		t.Fatalf("salt has %d bytes, want 16", len(base))
	}
	if again := SCRAMSalt("pw", "obcms", "staging", "app"); string(again) != string(base) {
		t.Fatal("the same inputs gave two salts")
	}
	for name, other := range map[string][]byte{
		"password":    SCRAMSalt("pw2", "obcms", "staging", "app"),
		"stack":       SCRAMSalt("pw", "other", "staging", "app"),
		"environment": SCRAMSalt("pw", "obcms", "production", "app"),
		"user":        SCRAMSalt("pw", "obcms", "staging", "admin"),
		// The NUL separators keep "a"+"bc" apart from "ab"+"c".
		"boundary": SCRAMSalt("pw", "obcmss", "taging", "app"),
	} {
		if string(other) == string(base) {
			t.Errorf("changing the %s left the salt unchanged", name)
		}
	}
}

func TestSCRAM_RoleVerifierRefusesNonASCIIPasswordNamingOnlyTheSecret(t *testing.T) {
	stack := &stackhcl.Stack{Name: "obcms", Environment: "staging"}
	const value = "pässwörd-VALUE"
	for _, authType := range []string{authSCRAM, authMD5} {
		_, err := roleVerifier(stack, MapSecrets{"app_pw": value}, "app", "app_pw", authType)
		var invalid *InvalidSecretError
		if !errors.As(err, &invalid) {
			t.Fatalf("%s: err = %v, want *InvalidSecretError", authType, err)
		}
		if invalid.Name != "app_pw" || !strings.Contains(err.Error(), `"app_pw"`) {
			t.Errorf("%s: error does not name the secret: %v", authType, err)
		}
		if strings.Contains(err.Error(), value) || strings.Contains(err.Error(), "VALUE") {
			t.Errorf("%s: error leaks the value: %v", authType, err)
		}
	}
}

func TestSCRAM_RoleVerifierSameInputsSameVerifier(t *testing.T) {
	stack := &stackhcl.Stack{Name: "obcms", Environment: "staging"}
	secrets := MapSecrets{"pw": "correct horse"}
	first, err := roleVerifier(stack, secrets, "app", "pw", authSCRAM)
	if err != nil {
		t.Fatal(err)
	}
	second, err := roleVerifier(stack, secrets, "app", "pw", authSCRAM)
	if err != nil {
		t.Fatal(err)
	}
	if first != second || !strings.HasPrefix(first, "SCRAM-SHA-256$4096:") {
		t.Fatalf("verifiers %q and %q", first, second)
	}
	salt := base64.StdEncoding.EncodeToString(SCRAMSalt("correct horse", "obcms", "staging", "app"))
	if want := SCRAMVerifier("correct horse", SCRAMSalt("correct horse", "obcms", "staging", "app"), 4096); first != want {
		t.Fatalf("verifier %q, want %q (salt %s)", first, want, salt)
	}
}
