package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/templates"
)

type renderOptions struct {
	*globalOptions
	out  string
	json bool
}

func newRenderCommand(global *globalOptions) *cobra.Command {
	opts := &renderOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:     "render ENV",
		Short:   "Render every artifact of an environment into a directory",
		Long:    renderLong,
		Example: renderExample,
		Args:    exactEnv,
		RunE:    func(_ *cobra.Command, args []string) error { return runRender(opts, args[0]) },
	}
	cmd.Flags().StringVarP(&opts.out, "out", "o", "", "output directory (default build/<env>)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the manifest as JSON on stdout")
	return cmd
}

func runRender(opts *renderOptions, env string) error {
	stack, err := opts.loadStack(env)
	if err != nil {
		return err
	}
	store, err := opts.secrets(env)
	if err != nil {
		return err
	}
	var artifacts []templates.Artifact
	opts.bounded("rendering "+opts.stackFile, func() { artifacts, err = templates.Render(stack, store) })
	if err != nil {
		return fmt.Errorf("%w; nothing was written", err)
	}
	out := opts.out
	if out == "" {
		out = filepath.Join("build", env)
	}
	if err := templates.WriteDir(out, artifacts); err != nil {
		return err
	}
	return printRendered(opts, out, artifacts)
}

func printRendered(opts *renderOptions, out string, artifacts []templates.Artifact) error {
	manifest := artifacts[len(artifacts)-1]
	if opts.json {
		var m templates.Manifest
		if err := json.Unmarshal(manifest.Data, &m); err != nil {
			return fmt.Errorf("read manifest: %w", err)
		}
		enc := json.NewEncoder(opts.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Out string `json:"out"`
			templates.Manifest
		}{out, m})
	}
	tw := tabwriter.NewWriter(opts.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tMODE\tBYTES")
	for _, a := range artifacts {
		fmt.Fprintf(tw, "%s\t%04o\t%d\n", filepath.Join(out, a.Path), a.Mode.Perm(), len(a.Data))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(opts.stderr, "Rendered %d files into %s.\n", len(artifacts), out)
	return nil
}

const renderLong = `Render evaluates the stack file for one environment and writes every
artifact it implies: docker-compose.<env>.yml, .env.<env>, and under config/
the PgBouncer ini and userlist, Postgres roles and pg_hba, Prometheus with its
rules, Alertmanager, Grafana provisioning and dashboards, nginx.conf and the
backup script, plus manifest.json with the sha256 of each file.

The output is byte-identical from run to run. Everything is written to a
temporary directory and renamed into place, so a failed render changes
nothing. Files derived from secrets (the userlist, roles.sql) are mode 0600;
secret values themselves are never written: compose reads them from
OBCD_SECRET_<NAME> at deploy time.

Exit codes: 0 rendered; 1 invalid stack file, missing secret, or write error.`

const renderExample = `  obcd render staging --stack stacks/obcms.hcl
  obcd render production -f stacks/obcms.hcl --out /tmp/prod --json`
