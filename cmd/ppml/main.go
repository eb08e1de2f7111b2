// Command ppml is the single binary of the ppml platform: the KMS and
// Attestation Service (`ppml serve`) and the client and operator tools.
// Each subcommand only wires flags to library calls.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/ppml-project/ppml/client"
)

func main() {
	root := newRootCmd()
	err := root.Execute()
	stopCPUProfile()
	if err != nil {
		if e, ok := err.(exitError); ok && e.msg == "" {
			os.Exit(e.code) // the command already said why
		}
		var ae *client.APIError
		if errors.As(err, &ae) {
			fmt.Fprintf(os.Stderr, "ppml: the server refused: %v\n", err)
		} else {
			fmt.Fprintf(os.Stderr, "ppml: %v\n", err)
		}
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// exitCoder lets a command choose its exit status.
type exitCoder interface{ ExitCode() int }
