//go:build !cgo

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Without cgo (the static KMS image) there is no embedded DuckDB, so the
// commands that run SQL say so instead of being unknown.

func newSQLCmd() *cobra.Command        { return withoutCgo("sql") }
func newQuickstartCmd() *cobra.Command { return withoutCgo("quickstart") }

func withoutCgo(name string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              "Not in this build: needs the embedded DuckDB (build with CGO_ENABLED=1)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this ppml was built without cgo, so it has no embedded DuckDB: build it with CGO_ENABLED=1 (and gcc) to use ppml " + name)
		},
	}
}
