// Package toolcheck runs the real consumers of a render on its files:
// compose-go's loader on the compose file, nginx -t on nginx.conf,
// promtool on prometheus.yml and its rule files, and amtool on
// alertmanager.yml. Tests use it to prove that what validate accepts,
// the tools accept too.
package toolcheck

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	stackhcl "github.com/obcd/obcd/hcl"
	"github.com/obcd/obcd/internal/testcert"
	"github.com/obcd/obcd/templates"
)

// Files names the files of one render, as absolute paths; an empty path
// is a file the render does not have (no nginx service, for example).
type Files struct {
	Compose      string
	Project      string            // the compose project name
	Environment  map[string]string // what compose interpolates: OBCD_SECRET_* and the like
	Nginx        string
	Prometheus   string
	Alertmanager string
}

// Render names the files of stack rendered into dir, with the secret
// values compose interpolates.
func Render(dir string, stack *stackhcl.Stack, secrets map[string]string) Files {
	f := Files{
		Compose:     filepath.Join(dir, templates.ComposeFilePath(stack.Environment)),
		Project:     templates.ProjectName(stack),
		Environment: map[string]string{},
	}
	for name, value := range secrets {
		f.Environment[stackhcl.SecretEnvVar(name)] = value
	}
	for path, field := range map[string]*string{templates.PathNginx: &f.Nginx, templates.PathPrometheus: &f.Prometheus, templates.PathAlertmanager: &f.Alertmanager} {
		if _, err := os.Stat(filepath.Join(dir, path)); err == nil {
			*field = filepath.Join(dir, path)
		}
	}
	return f
}

// Check runs every tool that has a file to read and returns their
// refusals, each naming the tool and quoting its output. A tool that is
// not installed is an error too: a check that cannot run proves nothing
// (bash .ci/deps installs them all).
func Check(ctx context.Context, f Files) error {
	var errs []error
	if f.Compose != "" {
		if _, err := loader.LoadWithContext(ctx, types.ConfigDetails{
			WorkingDir:  filepath.Dir(f.Compose),
			ConfigFiles: []types.ConfigFile{{Filename: f.Compose}},
			Environment: f.Environment,
		}, func(o *loader.Options) { o.SetProjectName(f.Project, true) }); err != nil {
			errs = append(errs, fmt.Errorf("compose-go refuses %s: %w", f.Compose, err))
		}
	}
	if f.Nginx != "" {
		errs = append(errs, Nginx(ctx, f.Nginx))
	}
	if f.Prometheus != "" {
		errs = append(errs, tool(ctx, "promtool", "check", "config", f.Prometheus))
	}
	if f.Alertmanager != "" {
		errs = append(errs, tool(ctx, "amtool", "check-config", f.Alertmanager))
	}
	return errors.Join(errs...)
}

// tlsPath is an ssl_certificate or ssl_certificate_key directive.
var tlsPath = regexp.MustCompile(`(?m)^(\s*ssl_certificate(?:_key)?\s+)(\S+);`)

// Nginx runs the real nginx -t on a copy of conf whose certificate and
// key paths point at a self-signed pair made for the test: the rendered
// paths are the container's, which this machine does not have. Nothing
// else in the copy changes.
func Nginx(ctx context.Context, conf string) error {
	src, err := os.ReadFile(conf)
	if err != nil {
		return err
	}
	prefix, err := os.MkdirTemp("", "obcd-nginx-t-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(prefix)
	cert, key := filepath.Join(prefix, "fullchain.pem"), filepath.Join(prefix, "privkey.pem")
	if err := testcert.Write(cert, key, []string{"localhost"}); err != nil {
		return err
	}
	copied := tlsPath.ReplaceAllStringFunc(string(src), func(line string) string {
		m := tlsPath.FindStringSubmatch(line)
		if strings.Contains(m[1], "_key") {
			return m[1] + key + ";"
		}
		return m[1] + cert + ";"
	})
	path := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(path, []byte(copied), 0o644); err != nil {
		return err
	}
	bin := "/usr/sbin/nginx"
	if _, err := os.Stat(bin); err != nil {
		bin = "nginx"
	}
	out, err := exec.CommandContext(ctx, bin, "-t", "-q", "-e", "stderr", "-p", prefix+"/", "-c", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx -t refuses %s: %v\n%s", conf, err, out)
	}
	return nil
}

// tool runs a real binary and returns an error quoting its output unless
// it exits 0.
func tool(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
