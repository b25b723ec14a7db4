package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/internal/atomicfile"
	"github.com/obcd/obcd/orchestrator/checks"
)

type auditOptions struct {
	*globalOptions
	live    bool
	format  string
	json    bool
	out     string
	timeout time.Duration
}

func newAuditCommand(global *globalOptions) *cobra.Command {
	opts := &auditOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:     "audit ENV",
		Short:   "Write a deployment-readiness report for an environment",
		Long:    auditLong,
		Example: auditExample,
		Args:    exactEnv,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			if opts.format != "md" && opts.format != "json" {
				return usageError{fmt.Errorf("--format %q: use md or json", opts.format)}
			}
			if opts.json {
				if cmd.Flags().Changed("format") && opts.format != "json" {
					return usageError{fmt.Errorf("--json and --format %s ask for two formats: give one", opts.format)}
				}
				opts.format = "json"
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error { return runAudit(opts, args[0]) },
	}
	cmd.Flags().BoolVar(&opts.live, "live", false, "include live checks against the environment's target")
	cmd.Flags().StringVar(&opts.format, "format", "md", "report format: md or json")
	cmd.Flags().BoolVar(&opts.json, "json", false, "the report as JSON, as --format json, like every command's --json")
	cmd.Flags().StringVarP(&opts.out, "out", "o", "", "write the report to FILE instead of stdout")
	cmd.Flags().DurationVar(&opts.timeout, "timeout", 5*time.Second, "timeout of each live check")
	return cmd
}

func runAudit(opts *auditOptions, env string) error {
	ev, err := opts.evaluate(env, opts.live, opts.timeout)
	if err != nil {
		return err
	}
	report := checks.Audit(ev.stack, ev.findings, opts.live)
	data := []byte(report.Markdown())
	if opts.format == "json" {
		if data, err = report.JSON(); err != nil {
			return fmt.Errorf("encode report: %w", err)
		}
	}
	if opts.out != "" {
		if err := atomicfile.WriteFile(opts.out, data, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(opts.stderr, "Wrote %s: %s.\n", opts.out, report.Headline())
	} else if _, err := opts.stdout.Write(data); err != nil {
		return err
	}
	if !report.Ready {
		return reportedError{fmt.Errorf("not ready to deploy"), ExitFailure}
	}
	return nil
}

const auditLong = `Audit scores the same findings as validate into a readiness report shaped
like a deployment audit: an overall score out of 100, a table of twelve
categories (COMPLETE, GOOD, PARTIAL or NEEDS WORK), the critical blocking
issues, then the high and medium priority ones (each with file, impact and
fix), the positive findings, a checklist, and the scoring rules.

--live adds the live checks of validate --deploy.

Exit codes: 0 ready to deploy; 1 not ready (critical findings or errors;
the report is still written) or an invalid stack file; 64 usage error.`

const auditExample = `  obcd audit staging --stack stacks/obcms.hcl
  obcd audit production --live --format json --out audit.json`
