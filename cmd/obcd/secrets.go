package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/orchestrator/secrets"
)

func newSecretsCommand(global *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Manage the secret values of an environment",
		Long:  secretsLong,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newSecretsInitCommand(global))
	return cmd
}

type secretsInitOptions struct {
	*globalOptions
	json bool
}

func newSecretsInitCommand(global *globalOptions) *cobra.Command {
	opts := &secretsInitOptions{globalOptions: global}
	cmd := &cobra.Command{
		Use:     "init ENV",
		Short:   "Generate a strong random value for every declared secret that has none",
		Long:    secretsInitLong,
		Example: secretsInitExample,
		Args:    exactEnv,
		RunE:    func(_ *cobra.Command, args []string) error { return runSecretsInit(opts, args[0]) },
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the result as JSON")
	return cmd
}

func runSecretsInit(opts *secretsInitOptions, env string) error {
	stack, err := opts.loadStack(env)
	if err != nil {
		return err
	}
	path := opts.secretsPath(env)
	generated, err := secrets.Init(path, stack.Secrets)
	if err != nil {
		return err
	}
	if opts.json {
		if generated == nil {
			generated = []string{}
		}
		return json.NewEncoder(opts.stdout).Encode(map[string]any{"file": path, "generated": generated})
	}
	for _, name := range generated {
		fmt.Fprintf(opts.stdout, "generated %s\n", name)
	}
	fmt.Fprintf(opts.stderr, "%s: %d generated, %d already set.\n", path, len(generated), len(stack.Secrets)-len(generated))
	return nil
}

const secretsLong = `Secrets are declared by name in the stack file (secret "name" {}); their
values live in <state-dir>/<env>.secrets, a dotenv file of mode 0600 keyed
by OBCD_SECRET_<NAME>. An OBCD_SECRET_<NAME> environment variable overrides
the file.`

const secretsInitLong = `Init generates a value with crypto/rand for every secret the stack declares
that has no value yet, and appends it to <state-dir>/<env>.secrets (mode
0600, written atomically). It never changes a value that exists, so it is
safe to run again after adding a secret. Values are never printed.

Exit codes: 0 done (also when nothing was missing); 1 error.`

const secretsInitExample = `  obcd secrets init staging --stack stacks/obcms.hcl`
