package main

import (
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Load generators for the services"}
	cmd.AddCommand(newBenchKMSCmd(), newBenchReleaseCmd())
	return cmd
}
