package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// outputFlag is the --output flag of every command that prints a result:
// JSON for programs, text for people.
type outputFlag struct{ format string }

// register adds --output to cmd and checks its value before the command
// runs; note is appended to the usage line.
func (o *outputFlag) register(cmd *cobra.Command, note ...string) {
	usage := "output format: text or json"
	for _, n := range note {
		usage += " " + n
	}
	cmd.Flags().StringVar(&o.format, "output", "text", usage)
	cmd.PreRunE = func(*cobra.Command, []string) error { return o.check() }
}

func (o *outputFlag) check() error {
	if o.format != "text" && o.format != "json" {
		return fmt.Errorf("--output %q: want text or json", o.format)
	}
	return nil
}

func (o *outputFlag) json() bool { return o.format == "json" }

// print writes v as indented JSON, or calls text.
func (o *outputFlag) print(w io.Writer, v any, text func(io.Writer)) error {
	if o.json() {
		return writeJSON(w, v)
	}
	text(w)
	return nil
}

// writeJSON writes v as indented JSON, the form of every JSON output.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
