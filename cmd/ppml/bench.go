package main

import (
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Load generators for the services"}
	cmd.AddCommand(newBenchKMSCmd())
	for _, c := range benchCommands {
		cmd.AddCommand(c())
	}
	return cmd
}

// benchCommands are added by files of other capabilities.
var benchCommands []func() *cobra.Command
