package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/orchestrator/secrets"
	"github.com/obcd/obcd/orchestrator/state"
)

func newSecretsCommand(global *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Manage the secret values of an environment",
		Long:  secretsLong,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newSecretsInitCommand(global), newSecretsRotateCommand(global))
	return cmd
}

type secretsRotateOptions struct {
	*globalOptions
	fromStdin bool
	json      bool
	stdin     io.Reader
}

func newSecretsRotateCommand(global *globalOptions) *cobra.Command {
	opts := &secretsRotateOptions{globalOptions: global, stdin: os.Stdin}
	cmd := &cobra.Command{
		Use:     "rotate ENV NAME",
		Short:   "Give a secret a new value; the next deploy applies it with no downtime",
		Long:    secretsRotateLong,
		Example: secretsRotateExample,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageError{fmt.Errorf("secrets rotate takes the environment and the secret's name, as in: obcd secrets rotate staging obcms_user_password")}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error { return runSecretsRotate(opts, args[0], args[1]) },
	}
	cmd.Flags().BoolVar(&opts.fromStdin, "value-from-stdin", false, "read the new value from standard input (one trailing newline is dropped) instead of generating one")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the result as JSON")
	return cmd
}

func runSecretsRotate(opts *secretsRotateOptions, env, name string) error {
	stack, err := opts.loadStack(env)
	if err != nil {
		return err
	}
	secret := stack.Secret(name)
	if secret == nil {
		names := make([]string, 0, len(stack.Secrets))
		for _, s := range stack.Secrets {
			names = append(names, s.Name)
		}
		return fmt.Errorf("the stack declares no secret %q; its secrets are: %s", name, strings.Join(names, ", "))
	}
	if _, set := os.LookupEnv(secret.EnvVar()); set {
		return fmt.Errorf("%s is set in this environment and overrides the secrets file, so a rotation there would not take effect; unset it, or change it where it is set", secret.EnvVar())
	}
	value := ""
	if opts.fromStdin {
		if value, err = readSecretValue(opts.stdin); err != nil {
			return err
		}
	}
	path := opts.secretsPath(env)
	store, err := secrets.Load(path, nil)
	if err != nil {
		return err
	}
	before := "none"
	if old, err := store.Value(name); err == nil {
		before = state.SecretVersion(name, old)
		if opts.fromStdin && old == value {
			return fmt.Errorf("the value on standard input is %s's current value; a rotation needs a new one", name)
		}
	}
	if err := secrets.Rotate(path, secret, value); err != nil {
		return err
	}
	rotated, err := secrets.Load(path, nil)
	if err != nil {
		return err
	}
	now, err := rotated.Value(name)
	if err != nil {
		return err
	}
	after := state.SecretVersion(name, now)
	if opts.json {
		return json.NewEncoder(opts.stdout).Encode(map[string]any{"file": path, "secret": name, "previous_version": before, "version": after,
			"generated": !opts.fromStdin})
	}
	fmt.Fprintf(opts.stdout, "rotated %s (version %s -> %s)\n", name, before, after)
	fmt.Fprintf(opts.stderr, "%s: written (mode 0600). Nothing running has changed yet: obcd plan %s shows what the next deploy reloads and restarts, and obcd deploy %s applies it.\n",
		path, env, env)
	return nil
}

// readSecretValue reads a secret value from r: the whole input, less one
// trailing newline, and never empty.
func readSecretValue(r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<10+1))
	if err != nil {
		return "", fmt.Errorf("read the value from standard input: %w", err)
	}
	if len(data) > 64<<10 {
		return "", fmt.Errorf("the value on standard input is longer than 64 KiB")
	}
	value := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if value == "" {
		return "", fmt.Errorf("standard input is empty: pipe the new value in, as in: printf %%s \"$NEW\" | obcd secrets rotate ENV NAME --value-from-stdin")
	}
	return value, nil
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

const secretsRotateLong = `Rotate gives one secret a new value in <state-dir>/<env>.secrets: a strong
random one in the secret's format, or with --value-from-stdin the one you
pipe in. Only that line changes; the file is written atomically, mode 0600.
No value is ever printed: the output names the secret and its versions
before and after (the same HMACs obcd history records).

Nothing running changes until the next deploy, which applies the new value
with no downtime:
  - a database role's password: the primary applies the new roles.sql
    (ALTER ROLE ... PASSWORD with the new SCRAM verifier) in place;
  - PgBouncer: its userlist is replaced and it re-reads it on SIGHUP;
  - the services that read the secret are replaced, start-first where they
    roll so.
obcd plan ENV shows those steps first. A rollback afterwards renders the
target release's password files with today's values, so logins keep
working.

An OBCD_SECRET_<NAME> variable in the environment overrides the file, so a
rotation while it is set is refused.

Exit codes: 0 rotated; 1 error (nothing was written); 64 usage.`

const secretsRotateExample = `  obcd secrets rotate staging obcms_user_password
  printf %s "$NEW_DSN" | obcd secrets rotate production sentry_dsn --value-from-stdin
  obcd plan staging && obcd deploy staging`
