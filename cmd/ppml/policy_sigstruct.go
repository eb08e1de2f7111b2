package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/enclave/sigstruct"
)

func newPolicyFromSigstructCmd() *cobra.Command {
	var (
		cf                clientFlags
		format, bigdlType string
		allowDebug, apply bool
	)
	cmd := &cobra.Command{
		Use:   "from-sigstruct FILE.sig",
		Short: "Derive the attestation policy of a signed enclave from its SIGSTRUCT (Gramine's .sig)",
		Long: `Read the SIGSTRUCT that gramine-sgx-sign wrote (FILE.sig), check it (size,
headers, exponent 3, 3072-bit modulus, RSA signature, q1 and q2) and print
the policy that accepts exactly that enclave: tee sgx, mr_enclave, mr_signer
(SHA-256 of the signing key's modulus), isv_prod_id and min_isv_svn.

--format bigdl prints instead the body of a BigDL Attestation Service
registerPolicy request (SGXMREnclavePolicy, or --bigdl-policy-type
SGXMRSignerPolicy), without appID and apiKey. --apply registers the native
policy with the ppml Attestation Service and prints its id (BigDL's
verifyQuote takes it as policyID too). A debug enclave (sgx.debug = true) is
refused unless --allow-debug.`,
		Example: `  ppml policy from-sigstruct ppml.sig
  ppml policy from-sigstruct ppml.sig --apply --kms https://ppml:9000 --app-id $APP --api-key-file app.key
  ppml policy from-sigstruct ppml.sig --format bigdl`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "native" && format != "bigdl" {
				return fmt.Errorf("--format %q: want native or bigdl", format)
			}
			if apply && format == "bigdl" {
				return errors.New("--apply registers the native policy with ppml (BigDL clients use its id as policyID); --format bigdl only prints a body for another BigDL AS: choose one")
			}
			if bigdlType != "" && format != "bigdl" {
				return errors.New("--bigdl-policy-type needs --format bigdl")
			}
			s, err := sigstruct.ParseFile(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if format == "bigdl" {
				body, err := s.BigDLPolicy(bigdlType, allowDebug)
				if err != nil {
					return err
				}
				return writeJSON(w, body)
			}
			p, err := s.Policy(allowDebug)
			if err != nil {
				return err
			}
			doc, err := json.Marshal(p)
			if err != nil {
				return err
			}
			out := struct {
				Sigstruct sigstruct.Summary `json:"sigstruct"`
				Policy    json.RawMessage   `json:"policy"`
				PolicyID  string            `json:"policy_id,omitempty"`
			}{s.Summary(), doc, ""}
			if apply {
				a, err := attestationClient(&cf)
				if err != nil {
					return err
				}
				stored, err := a.CreatePolicy(cmd.Context(), doc)
				if err != nil {
					return err
				}
				out.PolicyID = stored.ID
			}
			return cf.print(w, out, func(w io.Writer) {
				if out.PolicyID != "" {
					fmt.Fprintln(w, out.PolicyID)
					return
				}
				writeJSON(w, p)
			})
		},
	}
	cf.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&format, "format", "native", "native (quote/policy JSON) or bigdl (BigDL AS registerPolicy body)")
	fs.StringVar(&bigdlType, "bigdl-policy-type", "", "with --format bigdl: "+sigstruct.BigDLMREnclave+" (default) or "+sigstruct.BigDLMRSigner)
	fs.BoolVar(&allowDebug, "allow-debug", false, "accept a debug enclave (its memory is readable by the host; tests only)")
	fs.BoolVar(&apply, "apply", false, "register the policy with the Attestation Service (--kms, --app-id, --api-key-file) and print its id")
	return cmd
}
