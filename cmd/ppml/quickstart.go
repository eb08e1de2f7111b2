//go:build cgo

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/quickstart"
)

func newQuickstartCmd() *cobra.Command {
	var o quickstart.Options
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "Run the whole privacy-preserving workflow on this machine with a simulated enclave, narrating each step",
		Long: `Run the whole workflow on embedded defaults, no cluster and no SGX: start the
KMS and Attestation Service in process, enroll a workload app and a data
owner app, register the simulated enclave's measurements as a policy, create
a primary key bound to it, generate and encrypt a people dataset, attest in a
simulated enclave and run BigDL's simple query (developers aged 20 to 40)
with ppml sql, decrypt the result as the data owner, and show an enclave with
other measurements being refused. Everything stays in --dir, with
commands.sh to repeat each step by hand.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Out = cmd.OutOrStdout()
			_, err := quickstart.Run(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("quickstart: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "ppml-quickstart", "working directory (replaced if an earlier quickstart made it)")
	cmd.Flags().IntVar(&o.Rows, "rows", 100000, "rows of the generated people dataset")
	return cmd
}
