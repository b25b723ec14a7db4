package templates

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"

	stackhcl "github.com/obcd/obcd/hcl"
)

// SCRAMIterations is the PBKDF2 iteration count of every verifier obcd
// writes, and of the salt derivation. It is PostgreSQL's default.
const SCRAMIterations = 4096

// scramSaltLen is the salt length PostgreSQL itself generates.
const scramSaltLen = 16

// SCRAMVerifier returns the SCRAM-SHA-256 verifier of password, in the
// form PostgreSQL stores in pg_authid and PgBouncer reads from its
// auth_file:
//
//	SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
//
// The password must already be ASCII: Go has no SASLprep, and for ASCII
// input PostgreSQL's SASLprep is the identity. It panics only when
// crypto/pbkdf2 refuses the parameters, which happens in FIPS 140-only
// mode with a salt shorter than 16 bytes.
func SCRAMVerifier(password string, salt []byte, iterations int) string {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		panic("templates: SCRAMVerifier: " + err.Error())
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return "SCRAM-SHA-256$" + strconv.Itoa(iterations) + ":" + b64(salt) +
		"$" + b64(storedKey[:]) + ":" + b64(serverKey)
}

func hmacSHA256(key []byte, msg string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	return mac.Sum(nil)
}

// MD5Verifier returns PostgreSQL's md5 password form of user's password:
// "md5" followed by hex(md5(password + user)).
func MD5Verifier(user, password string) string {
	sum := md5.Sum([]byte(password + user))
	return "md5" + hex.EncodeToString(sum[:])
}

// SCRAMSalt is the salt of user's verifier in one environment of a stack.
//
// Rendering must be byte-identical across runs, so the salt cannot be
// random; it is derived from the password itself. It is the first 16
// bytes of PBKDF2-HMAC-SHA256(password, "obcd-scram-salt" NUL stack NUL
// env NUL user, 4096 iterations). A fast hash of the password as the salt
// would be a shortcut: whoever reads the userlist could test guesses
// against the salt at the cost of one SHA-256 each and skip the verifier's
// PBKDF2 entirely. Deriving it with the same PBKDF2 cost keeps a guess
// exactly as expensive as against a randomly salted verifier. The stack,
// environment and user in the salt keep equal passwords from producing
// equal verifiers across users and environments.
func SCRAMSalt(password, stack, env, user string) []byte {
	context := "obcd-scram-salt\x00" + stack + "\x00" + env + "\x00" + user
	derived, err := pbkdf2.Key(sha256.New, password, []byte(context), SCRAMIterations, sha256.Size)
	if err != nil {
		panic("templates: SCRAMSalt: " + err.Error())
	}
	return derived[:scramSaltLen]
}

// InvalidSecretError says that a secret's value cannot be used where the
// stack needs it. It names the secret, never its value.
type InvalidSecretError struct {
	Name   string // secret name as declared
	Reason string
}

func (e *InvalidSecretError) Error() string {
	return fmt.Sprintf("secret %q cannot be used: %s", e.Name, e.Reason)
}

// Password forms a role can be given.
const (
	authSCRAM = "scram-sha-256"
	authMD5   = "md5"
)

// roleVerifier reads the secret that holds user's password and returns the
// verifier written both to PostgreSQL and to PgBouncer's auth_file: the
// md5 form when authType is "md5", SCRAM-SHA-256 otherwise. A missing
// secret returns the SecretSource's error, wrapped.
func roleVerifier(stack *stackhcl.Stack, secrets SecretSource, user, secretName, authType string) (string, error) {
	password, err := secrets.Value(secretName)
	if err != nil {
		return "", fmt.Errorf("password of database role %q: %w", user, err)
	}
	if password == "" {
		return "", &InvalidSecretError{Name: secretName, Reason: fmt.Sprintf("the password of database role %q is empty", user)}
	}
	if !printableASCII(password) {
		return "", &InvalidSecretError{Name: secretName, Reason: fmt.Sprintf(
			"the password of database role %q must be printable ASCII, because obcd computes SCRAM verifiers without SASLprep; regenerate it with `obcd secrets init`", user)}
	}
	if authType == authMD5 {
		return MD5Verifier(user, password), nil
	}
	salt := SCRAMSalt(password, stack.Name, stack.Environment, user)
	return SCRAMVerifier(password, salt, SCRAMIterations), nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
