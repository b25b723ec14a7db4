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
	{
		Code: "secrets.S004", Severity: SeverityWarning, Priority: PriorityHigh, Category: CategorySecurity,
		Title:  "A declared secret has no value yet",
		Impact: "The environment cannot be deployed until it has one; validate --deploy (and so deploy) refuses it as deploy.D002.",
		Fix:    "Run obcd secrets init <env> to generate the missing values into .obcd/<env>.secrets, or export OBCD_SECRET_<NAME>.",
		Source: "obcd",
		Check:  checkMissingSecrets,
	},
	{
		Code: "secrets.S005", Severity: SeverityError, Priority: PriorityHigh, Category: CategoryDatabase,
		Title:  "A replication password does not fit primary_conninfo",
		Impact: "A replica's primary_conninfo holds at most 1024 bytes: with a longer password the replica never streams, while its healthcheck stays green.",
		Fix:    fmt.Sprintf("Use a replication password of at most %d bytes (a ' or \\ counts twice): remove the value and run obcd secrets init <env>, or obcd secrets rotate <env> <name>.", stackhcl.MaxReplicationPassword),
		Source: "obcd",
		Check:  checkReplicationPasswordFits,
	},
}

// checkReplicationPasswordFits finds a replication password, of a
// postgres service with replicas, whose value (as given, not as
// generated: hcl refuses a declared length that is too long) is longer,
// quoted as libpq quotes it, than primary_conninfo can hold with the
// rest of the connection string.
func checkReplicationPasswordFits(in *Input) []Finding {
	var out []Finding
	for _, svc := range in.Stack.ServicesOf(stackhcl.KindPostgres) {
		if svc.Postgres == nil || svc.Replicas == 0 {
			continue
		}
		secret := in.Stack.Secret(svc.Postgres.ReplicationPassword)
		if secret == nil {
			continue
		}
		value := in.SecretValue(secret.Name)
		quoted := len(value) + strings.Count(value, "'") + strings.Count(value, `\`)
		if quoted > stackhcl.MaxReplicationPassword {
			out = append(out, Finding{
				Message: fmt.Sprintf("secret %q (%s), the replication password of %q, takes %d bytes in primary_conninfo; at most %d fit",
					secret.Name, secret.EnvVar(), svc.Name, quoted, stackhcl.MaxReplicationPassword),
				Range: secret.DeclRange,
			})
		}
	}
	return out
}

// checkMissingSecrets finds the declared secrets with no value, when a
// secret source was given at all (a render-only check has none).
func checkMissingSecrets(in *Input) []Finding {
	if in.Secrets == nil {
		return nil
	}
	var out []Finding
	for _, secret := range in.Stack.Secrets {
		if in.SecretValue(secret.Name) == "" {
			out = append(out, Finding{
				Message: fmt.Sprintf("secret %q (%s) has no value", secret.Name, secret.EnvVar()),
				Range:   secret.DeclRange,
			})
		}
	}
	return out
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

func checkDebugOff(in *Input) []Finding {
	s := in.Stack
	if !s.Django.Debug || s.Tier == stackhcl.TierDevelopment {
		return nil
	}
	return []Finding{{
		Message: fmt.Sprintf("django.debug is true in %s; DEBUG may be on only in tier development", environmentOf(s)),
		Range:   djangoAttrRange(s, "debug"),
	}}
}
