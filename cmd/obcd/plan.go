package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/internal/atomicfile"
	"github.com/obcd/obcd/orchestrator"
)

type planOptions struct {
	*globalOptions
	json bool
	out  string
}

func newPlanCommand(global *globalOptions) *cobra.Command {
	opts := &planOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:     "plan ENV",
		Short:   "Show what a deploy would change, and why",
		Long:    planLong,
		Example: planExample,
		Args:    exactEnv,
		RunE:    func(_ *cobra.Command, args []string) error { return runPlan(opts, args[0]) },
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the plan as JSON")
	cmd.Flags().StringVarP(&opts.out, "out", "o", "", "also save the plan to FILE, for deploy --plan FILE")
	return cmd
}

func runPlan(opts *planOptions, env string) error {
	inputs, err := opts.inputs()
	if err != nil {
		return err
	}
	environment, d, err := opts.openDeployerWith(env, inputs, nil)
	if err != nil {
		return err
	}
	defer environment.close()
	ctx := context.Background()
	if d.OnSwarm() {
		if opts.out != "" {
			return usageError{fmt.Errorf("plan --out: a saved plan is not supported on a swarm yet (environment %s has engine = \"swarm\"); run obcd plan %s without it", env, env)}
		}
		plan, err := d.PlanSwarm(ctx)
		if err != nil {
			return err
		}
		if err := printPlan(opts.globalOptions, plan, opts.json); err != nil {
			return err
		}
		if plan.HasWork() {
			return reportedError{errors.New("changes"), ExitFound}
		}
		return nil
	}
	planned, err := d.Plan(ctx)
	if err != nil {
		return err
	}
	if opts.out != "" {
		if err := writePlanFile(opts.out, planFile{stackInputs: inputs, SavedPlan: d.SavePlan(planned)}); err != nil {
			return err
		}
		fmt.Fprintf(opts.stderr, "Saved the plan to %s; apply it with: obcd deploy %s --plan %s\n", opts.out, env, opts.out)
	}
	if err := printPlan(opts.globalOptions, planned.Plan, opts.json); err != nil {
		return err
	}
	if planned.Plan.HasWork() {
		return reportedError{errors.New("changes"), ExitFound}
	}
	return nil
}

func printPlan(o *globalOptions, plan orchestrator.Plan, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(o.stdout).Encode(plan)
	}
	_, err := fmt.Fprint(o.stdout, plan.String())
	return err
}

// planFile is a saved plan: the stack inputs it was made with, so deploy
// --plan loads the stack the same way, and the plan itself.
type planFile struct {
	stackInputs
	orchestrator.SavedPlan
}

func writePlanFile(path string, plan planFile) error {
	data, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	return atomicfile.WriteFile(path, append(data, '\n'), 0o600)
}

func readPlanFile(path string) (planFile, error) {
	var plan planFile
	data, err := os.ReadFile(path)
	if err != nil {
		return plan, fmt.Errorf("read plan: %w", err)
	}
	if err := json.Unmarshal(data, &plan); err != nil {
		return plan, fmt.Errorf("%s is not a plan saved by obcd plan --out: %w", path, err)
	}
	if plan.Format == 0 || plan.Environment == "" {
		return plan, fmt.Errorf("%s is not a plan saved by obcd plan --out (no format or environment)", path)
	}
	return plan, nil
}

const planLong = `Plan renders the stack, observes what runs on the environment's Docker engine
(one snapshot, by compose labels) and prints the steps a deploy would take,
wave by wave: build (an image the engine lacks), backup (a pg_dump before
migrations), run (one-off jobs such as migrate), create, recreate (old
container -> new one), remove, and the containers it keeps, each with its
cause. The steps of one wave run together. Secret values are never shown.

--out FILE saves the plan (mode 0600, no secret value) for obcd deploy
ENV --plan FILE, which applies exactly it, and refuses it when the stack,
a secret, the release history or the engine changed since.

Exit codes: 0 nothing would change; 2 something would change (or a deploy would
prove containers a killed deploy left unproven); 1 error.`

const planExample = `  obcd plan staging
  obcd plan production --var app_version=1.4.2 --out release.plan
  obcd plan staging --json | jq '.actions[] | select(.wave == 1)'`
