package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newUnlockCommand(global *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock ENV",
		Short: "Break a stale deploy lock",
		Long:  "Unlock removes the environment's lock, printing who held it. Use it only when the holder is gone.\n\nExit codes: 0 removed; 1 no lock or error.",
		Args:  exactEnv,
		RunE:  func(_ *cobra.Command, args []string) error { return runUnlock(global, args[0]) },
	}
}

func runUnlock(global *globalOptions, env string) error {
	environment, err := global.open(env)
	if err != nil {
		return err
	}
	defer environment.close()
	ctx := context.Background()
	_, locker, err := environment.state(ctx)
	if err != nil {
		return err
	}
	info, err := locker.Break(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(global.stdout, "Removed the lock held by %s on %s (pid %d) since %s.\n", info.Holder, info.Host, info.PID, info.Started.Format(time.RFC3339))
	return nil
}
