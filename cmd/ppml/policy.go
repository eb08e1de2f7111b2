package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/quote/policy"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Store and show attestation policies of your app in the Attestation Service",
		Long: `Attestation policies are quote/policy JSON documents (mr_enclave, mr_signer,
isv_prod_id, min_isv_svn, mr_td, rtmr0..3, accepted_tcb_statuses,
accepted_advisory_ids, allow_debug, require_crl, allow_expired_collateral,
report_data, allow_simulated). Each belongs to the app that created it; pass
its id as policy_id to POST /v1/attestation/verify (or as policyID / policyId
to the BigDL AS and eHSM APIs).`,
	}
	var cf clientFlags
	var file string
	create := &cobra.Command{
		Use:   "create --file policy.json",
		Short: "Store a policy and print its id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("--file is required: the policy JSON document")
			}
			doc, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("reading --file: %w", err)
			}
			if _, err := policy.Parse(doc); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			a, err := attestationClient(&cf)
			if err != nil {
				return err
			}
			p, err := a.CreatePolicy(cmd.Context(), doc)
			if err != nil {
				return err
			}
			return cf.print(cmd.OutOrStdout(), p, func(w io.Writer) { fmt.Fprintln(w, p.ID) })
		},
	}
	cf.register(create)
	create.Flags().StringVar(&file, "file", "", "policy JSON file (required)")

	var sf clientFlags
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Print a stored policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := attestationClient(&sf)
			if err != nil {
				return err
			}
			p, err := a.GetPolicy(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return sf.print(cmd.OutOrStdout(), p, func(w io.Writer) {
				fmt.Fprintf(w, "policy_id:  %s\norigin:     %s\ncreated_at: %s\npolicy:     %s\n", p.ID, p.Origin,
					p.CreatedAt.Format("2006-01-02T15:04:05Z07:00"), p.Policy)
			})
		},
	}
	sf.register(show)
	cmd.AddCommand(create, show, newPolicyFromSigstructCmd())
	return cmd
}

func attestationClient(f *clientFlags) (*client.Attestation, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	return client.NewAttestation(cfg)
}
