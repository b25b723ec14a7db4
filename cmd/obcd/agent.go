package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/obcd/obcd/orchestrator/agent"
)

// agentGrace is how long past its deadline the agent may take to write
// its last verdicts before it exits regardless.
const agentGrace = 5 * time.Second

// newAgentCommand is the in-network agent's side: obcd runs it in a
// container on the environment's network (see package agent). It is
// hidden: nobody runs it by hand.
func newAgentCommand(global *globalOptions) *cobra.Command {
	var deadline time.Duration
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Run probes sent on standard input from inside an environment's network (obcd starts it)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if deadline <= 0 {
				return usageError{fmt.Errorf("--deadline must be positive")}
			}
			// Exit at the deadline even if a probe hangs past its own.
			hard := time.AfterFunc(deadline+agentGrace, func() { os.Exit(3) })
			defer hard.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			return agent.Serve(ctx, cmd.InOrStdin(), global.stdout)
		},
	}
	cmd.Flags().DurationVar(&deadline, "deadline", agent.DefaultLifetime, "exit after this long, whatever happens")
	return cmd
}
