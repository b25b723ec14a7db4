package checks

// rules_secrets.go holds obcd's own secret hygiene checks (secrets.S*).
// They read values through Input.SecretValue and stay silent about a
// secret whose value is unknown. A finding names the secret, never its
// value, and points at the secret block.

import (
	"fmt"
	"strings"
	"unicode"

	stackhcl "github.com/obcd/obcd/hcl"
)

// secretsRules are the secret-hygiene checks, registered by the catalog.
var secretsRules = []*Rule{
	{
		Code: "secrets.S001", Severity: SeverityError, Priority: PriorityHigh, Category: CategorySecurity,
		Title:  "Secret value is a placeholder",
		Impact: "A publicly known value protects the application: anyone can forge sessions or log in.",
		Fix:    "Replace the value with a generated one: remove it from .obcd/<env>.secrets (or OBCD_SECRET_<NAME>) and run obcd secrets init <env>.",
		Source: "obcd",
		Check:  checkPlaceholderSecrets,
	},
	{
		Code: "secrets.S002", Severity: SeverityError, Priority: PriorityHigh, Category: CategorySecurity,
		Title:  "Secret value is weak",
		Impact: "A short or repetitive secret can be guessed or brute-forced.",
		Fix:    "Use at least 16 characters with at least 6 distinct ones: remove the value and run obcd secrets init <env> to generate it.",
		Source: "obcd",
		Check:  checkWeakSecrets,
	},
	{
		Code: "secrets.S003", Severity: SeverityError, Priority: PriorityHigh, Category: CategorySecurity,
		Title:  "DEBUG is on outside development",
		Impact: "Error pages expose settings, source and stack traces to anyone.",
		Fix:    "Set debug = false in the django block and in the environment's django override.",
		Source: "obcd",
		Check:  checkDebugOff,
	},
}

// Secret strength thresholds of secrets.S002.
const (
	minSecretLength   = 16
	minDistinctSecret = 6
)

// placeholderMarkers are substrings (lowercase) that only placeholder
// values contain.
var placeholderMarkers = []string{"replace_with", "replace-with", "changeme", "change_me", "placeholder"}

// placeholderTokens are words that mark a placeholder when they stand
// alone between separators, so random values do not match by chance.
var placeholderTokens = map[string]bool{"todo": true, "tbd": true, "fixme": true}

// placeholderWords are values that are placeholders once trailing digits
// and punctuation are dropped ("password123!", "admin").
var placeholderWords = map[string]bool{
	"secret": true, "password": true, "admin": true, "changeme": true, "default": true,
}

// looksLikePlaceholder says whether a secret value is a stand-in rather
// than a real secret. "" (unknown) is not.
func looksLikePlaceholder(value string) bool {
	if value == "" {
		return false
	}
	lower := strings.ToLower(strings.TrimSpace(value))
	if strings.HasPrefix(lower, "md5replace") || strings.HasPrefix(lower, "django-insecure-") {
		return true
	}
	for _, marker := range placeholderMarkers {
		if strings.Contains(lower, marker) {
			return true
		}
	}
	tokens := strings.FieldsFunc(lower, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, token := range tokens {
		if placeholderTokens[token] || (len(token) >= 3 && strings.Trim(token, "x") == "") {
			return true
		}
	}
	word := strings.TrimRightFunc(lower, func(r rune) bool { return !unicode.IsLetter(r) })
	return placeholderWords[word]
}

// isWeakSecret says whether a (non-placeholder) value is too short or too
// repetitive.
func isWeakSecret(value string) (weak bool, why string) {
	length := len([]rune(value))
	if length < minSecretLength {
		return true, fmt.Sprintf("is %d characters long; use at least %d", length, minSecretLength)
	}
	distinct := map[rune]bool{}
	for _, r := range value {
		distinct[r] = true
	}
	if len(distinct) < minDistinctSecret {
		return true, fmt.Sprintf("uses only %d distinct characters; use at least %d", len(distinct), minDistinctSecret)
	}
	return false, ""
}

// pgbouncerPasswords are the secrets used as pgbouncer users' passwords,
// whose placeholders are audit.A001's findings.
func pgbouncerPasswords(stack *stackhcl.Stack) map[string]bool {
	out := map[string]bool{}
	for _, svc := range stack.ServicesOf(stackhcl.KindPgBouncer) {
		if svc.PgBouncer == nil {
			continue
		}
		for _, user := range svc.PgBouncer.Users {
			out[user.Password] = true
		}
	}
	return out
}

func checkPlaceholderSecrets(in *Input) []Finding {
	pgbouncer := pgbouncerPasswords(in.Stack)
	var out []Finding
	for _, secret := range in.Stack.Secrets {
		if pgbouncer[secret.Name] || !looksLikePlaceholder(in.SecretValue(secret.Name)) {
			continue
		}
		out = append(out, Finding{
			Message: fmt.Sprintf("secret %q (%s) holds a placeholder value", secret.Name, secret.EnvVar()),
			Range:   secret.DeclRange,
		})
	}
	return out
}

func checkWeakSecrets(in *Input) []Finding {
	var out []Finding
	for _, secret := range in.Stack.Secrets {
		value := in.SecretValue(secret.Name)
		if value == "" || looksLikePlaceholder(value) {
			continue
		}
		if weak, why := isWeakSecret(value); weak {
			out = append(out, Finding{
				Message: fmt.Sprintf("secret %q (%s) %s", secret.Name, secret.EnvVar(), why),
				Range:   secret.DeclRange,
			})
		}
	}
	return out
}

// developmentEnvs are environments where DEBUG may be on.
var developmentEnvs = map[string]bool{"development": true, "dev": true, "local": true, "test": true}

func checkDebugOff(in *Input) []Finding {
	s := in.Stack
	if !s.Django.Debug || developmentEnvs[s.Environment] {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("django.debug is true in environment %q", s.Environment),
		Range:   djangoAttrRange(s, "debug"),
	}}
}
