package templates

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/testsvc"
)

// hostileChars are the characters a password may hold that break a URL,
// a shell, a conninfo string or compose interpolation when written raw.
const hostileChars = `" ' \ =$%@/:?#&;`

// secretInURL is a secret's interpolation inside a URL: scheme://…${OBCD_SECRET_
var secretInURL = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"']*\$\{OBCD_SECRET_`)

// TestCompose_AnyPasswordReachesItsServiceUnchanged: with every secret
// holding each character that breaks a URL, a shell or interpolation,
// the rendered compose file, loaded by compose-go as obcd deploys it,
// gives each service exactly that value, in an environment variable and
// never inside a URL or on a command line, where it would have to be
// escaped.
func TestCompose_AnyPasswordReachesItsServiceUnchanged(t *testing.T) {
	for _, env := range []string{"staging", "production"} {
		secrets := MapSecrets{}
		for name, value := range testSecrets() {
			secrets[name] = value + hostileChars + "${HOME}%41"
		}
		artifacts, err := Render(loadOBCMS(t, env), secrets)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range artifacts {
			if m := secretInURL.Find(a.Data); m != nil {
				t.Errorf("%s/%s puts a secret inside a URL: %s", env, a.Path, m)
			}
		}
		project := loadRenderedCompose(t, env, artifacts, secrets)
		seen := 0
		for name, svc := range project.Services {
			for _, arg := range append(append([]string{}, svc.Command...), svc.Entrypoint...) {
				for secret, plain := range testSecrets() {
					if strings.Contains(arg, plain) {
						t.Errorf("%s/%s: secret %s is on the command line: %q", env, name, secret, arg)
					}
				}
			}
			for key, value := range svc.Environment {
				if value == nil {
					continue
				}
				for secret, want := range secrets {
					if strings.Contains(*value, testSecrets()[secret]) {
						seen++
						if *value != want {
							t.Errorf("%s/%s: %s = %q, want secret %s exactly, %q", env, name, key, *value, secret, want)
						}
					}
				}
			}
		}
		if seen < 5 {
			t.Errorf("%s: only %d environment variables hold a secret; the stack passes more", env, seen)
		}
	}
}

// TestPostgresExporter_LogsInWithAPasswordThatBreaksAURL: the real
// postgres_exporter, given the environment the rendered compose file
// gives it (loaded by compose-go), logs in to a real PostgreSQL set up by
// the rendered roles.sql and pg_hba.conf, as the stats user whose
// password holds every character that breaks a URL, and runs the
// rendered custom queries: pg_up is 1.
func TestPostgresExporter_LogsInWithAPasswordThatBreaksAURL(t *testing.T) {
	testsvc.RequireBinaries(t, testsvc.PostgresExporterBin)
	stack := loadOBCMS(t, "staging")
	secrets := testSecrets()
	for name, value := range dbTestSecrets() {
		secrets[name] = value
	}
	byPath := renderDatabaseByPath(t, stack, secrets)
	primary := startRenderedPrimary(t, stack, byPath)

	artifacts, err := Render(stack, secrets)
	if err != nil {
		t.Fatal(err)
	}
	project := loadRenderedCompose(t, "staging", artifacts, secrets)
	svc, ok := project.Services["postgres-exporter"]
	if !ok {
		t.Fatal("the rendered stack has no postgres-exporter")
	}
	env := map[string]string{}
	for key, value := range svc.Environment {
		if value != nil {
			env[key] = *value
		}
	}
	db := stack.First(stackhcl.KindPostgres)
	env["DATA_SOURCE_URI"] = strings.Replace(env["DATA_SOURCE_URI"], fmt.Sprintf("%s:%d", db.Name, db.Port), fmt.Sprintf("%s:%d", primary.Host, primary.Port), 1)
	// The rendered queries, at the test's path instead of the container's.
	queries := filepath.Join(testsvc.Dir(t), "queries.yaml")
	testsvc.WriteFile(t, queries, dbArtifact(t, renderedByPath(artifacts), PathPostgresQueries, 0o644), 0o644)
	env["PG_EXPORTER_EXTEND_QUERY_PATH"] = queries
	if pass := env["PGPASSWORD"]; !strings.Contains(pass, hostileChars) {
		t.Fatalf("PGPASSWORD is %d bytes without the hostile characters; the test proves nothing", len(pass))
	}

	exporter := testsvc.StartPostgresExporter(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	metrics, err := exporter.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^pg_up 1$`).MatchString(metrics) {
		t.Fatalf("postgres_exporter did not log in (pg_up is not 1):\n%s\nlog:\n%s", grepLines(metrics, "pg_up"), exporter.Log())
	}
	if strings.Contains(exporter.Log(), dbTestSecrets()["obcms_stats_password"]) {
		t.Error("the exporter's log shows the stats password")
	}
}

func renderedByPath(artifacts []Artifact) map[string]Artifact {
	byPath := map[string]Artifact{}
	for _, a := range artifacts {
		byPath[a.Path] = a
	}
	return byPath
}

func grepLines(text, word string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, word) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
