package main

import (
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/spf13/cobra"

	stackhcl "github.com/obcd/obcd/hcl"
)

// completeEnvironments completes the ENV argument of every command that
// takes one with the environments the stack file declares. It reads the
// file's environment blocks without evaluating anything, so that a stack
// with an error still completes, and a file it cannot read completes
// nothing.
func completeEnvironments(o *globalOptions) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []cobra.Completion
		for _, name := range stackEnvironments(o.stackFile) {
			if strings.HasPrefix(name, toComplete) {
				names = append(names, name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// stackEnvironments are the labels of the environment blocks of the stack
// file at path, sorted; none when it cannot be read or parsed.
func stackEnvironments(path string) []string {
	info, err := os.Stat(path)
	if err != nil || !info.Mode().IsRegular() || info.Size() > stackhcl.MaxStackSize {
		return nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	file, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() || file == nil {
		return nil
	}
	content, _, _ := file.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "environment", LabelNames: []string{"name"}}}})
	seen := map[string]bool{}
	var names []string
	for _, block := range content.Blocks {
		if name := block.Labels[0]; !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// withEnvironmentCompletion gives every command whose first argument is
// ENV the completion of environment names.
func withEnvironmentCompletion(cmd *cobra.Command, o *globalOptions) {
	for _, sub := range cmd.Commands() {
		if fields := strings.Fields(sub.Use); len(fields) > 1 && fields[1] == "ENV" && sub.ValidArgsFunction == nil {
			sub.ValidArgsFunction = completeEnvironments(o)
		}
		withEnvironmentCompletion(sub, o)
	}
}
