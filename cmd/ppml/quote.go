package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/quote/policy"
	"github.com/ppml-project/ppml/quote/source"
	"github.com/ppml-project/ppml/quote/verify"
)

func newQuoteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quote",
		Short: "Inspect and verify Intel SGX/TDX DCAP quotes",
		Long: `Inspect and verify Intel DCAP ECDSA quotes: SGX quote v3 and TDX quote v4/v5
with certification data type 5 (type 6 wrapping 5 for TDX).

Verification checks the PCK chain to the pinned Intel SGX Root CA, the CRLs,
the QE report and quote signatures, the attestation-key binding, the TCB info
and QE identity signatures, and evaluates the TCB level.`,
	}
	cmd.AddCommand(newQuoteShowCmd(), newQuoteVerifyCmd())
	return cmd
}

func readQuoteFile(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("--quote is required: pass the file holding the raw binary quote")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the quote: %w", err)
	}
	return b, nil
}

func newQuoteShowCmd() *cobra.Command {
	var quotePath string
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "show --quote FILE [--output json]",
		Short: "Print the fields of a quote without verifying it",
		Long: `Parse a raw quote and print its TEE type, measurements and PCK certificate facts
(FMSPC, CA type). Nothing is verified: do not trust these values before
running "ppml quote verify".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			raw, err := readQuoteFile(quotePath)
			if err != nil {
				return err
			}
			res, err := verify.Inspect(raw)
			if res == nil {
				return fmt.Errorf("%s is not a supported quote: %w", quotePath, err)
			}
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
			}
			shown, err := showOutput(res)
			if err != nil {
				return err
			}
			return out.print(cmd.OutOrStdout(), shown.Sorted(), shown.WriteText)
		},
	}
	f := cmd.Flags()
	f.StringVar(&quotePath, "quote", "", "file holding the raw binary quote (required)")
	out.register(cmd)
	return cmd
}

func newQuoteVerifyCmd() *cobra.Command {
	var (
		quotePath, colPath, colDir, pccsURL, pccsKey, pccsCache string
		atStr, policyPath, rootPath, simDir                     string
		rejectTrailing                                          bool
		output                                                  outputFlag
	)
	cmd := &cobra.Command{
		Use:   "verify --quote FILE (--collateral FILE | --collateral-dir DIR | --pccs-url URL) [--at RFC3339] [--policy FILE] [--output json]",
		Short: "Verify a quote against collateral and, optionally, a policy",
		Long: `Verify a quote against DCAP collateral and print one verdict object (with
--output json: the keys tee, verified, tcb_status, advisory_ids, crl_checked,
collateral_expired, fmspc, the measurements, error, simulated and, with a
policy, policy: {accepted, reasons}).

Collateral comes from exactly one of --collateral (one JSON file in the
offline layout), --collateral-dir (a directory of such files, indexed by TEE,
FMSPC and PCK CA) or --pccs-url (an Intel PCS or PCCS v4 endpoint).

The trust anchor is the pinned Intel SGX Root CA unless --sim-dir (the
simulation root of "ppml sim") or --root is given; any other anchor makes the
verdict say simulated: true.

Exit status 0 only when the quote is verified and, with --policy, accepted.
A policy with allow_expired_collateral may accept a quote whose only failure
is expired collateral; the verdict still says verified: false.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			raw, err := readQuoteFile(quotePath)
			if err != nil {
				return err
			}
			n := 0
			for _, s := range []string{colPath, colDir, pccsURL} {
				if s != "" {
					n++
				}
			}
			if n != 1 {
				return errors.New("give exactly one collateral source: --collateral FILE, --collateral-dir DIR or --pccs-url URL")
			}
			now := time.Now()
			if atStr != "" {
				if now, err = time.Parse(time.RFC3339, atStr); err != nil {
					return fmt.Errorf("--at %q is not an RFC 3339 time (example: 2025-07-01T00:00:00Z): %v", atStr, err)
				}
			}
			var pol *policy.Policy
			if policyPath != "" {
				if pol, err = policy.LoadFile(policyPath); err != nil {
					return err
				}
			}
			cfg := source.Config{Now: func() time.Time { return now }, RejectTrailingBytes: rejectTrailing}
			if cfg.Root, _, err = source.Anchor(simDir, rootPath); err != nil {
				return err
			}
			cfg.Collateral, err = source.CollateralSettings{File: colPath, Dir: colDir, PCCSURL: pccsURL, PCCSAPIKey: pccsKey,
				PCCSCacheDir: pccsCache, Now: cfg.Now, Warn: func(err error) { fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err) }}.Open()
			if err != nil {
				return err
			}
			src, err := source.New(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			res, verr := src.VerifyRaw(ctx, raw)
			var se *source.Error
			if errors.As(verr, &se) {
				if se.Reason == source.ReasonChain {
					return fmt.Errorf("cannot select collateral: the quote's PCK certificate does not decode: %v", se)
				}
				return se
			}
			if res == nil {
				return verr
			}
			out := verifyOutput{Result: res}
			if pol != nil {
				d := pol.Evaluate(res)
				out.Policy = &d
			}
			text, err := out.text()
			if err != nil {
				return err
			}
			if err := output.print(cmd.OutOrStdout(), out, text.WriteText); err != nil {
				return err
			}
			switch {
			case pol != nil && !out.Policy.Accepted:
				return fmt.Errorf("quote refused by policy %s: %s", policyPath, strings.Join(out.Policy.Reasons, "; "))
			case pol == nil && verr != nil:
				return fmt.Errorf("quote not verified (%s): %v", res.Failure, verr)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&quotePath, "quote", "", "file holding the raw binary quote (required)")
	f.StringVar(&colPath, "collateral", "", "collateral JSON file (fields pck_crl_issuer_chain, root_ca_crl, pck_crl, tcb_info_issuer_chain, tcb_info, tcb_info_signature, qe_identity_issuer_chain, qe_identity, qe_identity_signature)")
	f.StringVar(&colDir, "collateral-dir", "", "offline collateral cache: directory of collateral *.json files, selected by the quote's TEE, FMSPC and PCK CA")
	f.StringVar(&pccsURL, "pccs-url", "", "fetch collateral from this Intel PCS / PCCS v4 base URL (e.g. https://pccs:8081)")
	f.StringVar(&pccsKey, "pccs-api-key", "", "Intel PCS subscription key (sent as Ocp-Apim-Subscription-Key), if the endpoint needs one")
	f.StringVar(&pccsCache, "pccs-cache-dir", "", "with --pccs-url: also store fetched collateral in this directory (usable later with --collateral-dir)")
	f.StringVar(&atStr, "at", "", "verify as of this RFC 3339 time instead of the current time (e.g. 2025-07-01T00:00:00Z)")
	f.StringVar(&policyPath, "policy", "", "attestation policy JSON file; the exit status then also requires policy acceptance")
	output.register(cmd)
	f.StringVar(&rootPath, "root", "", "PEM trust anchor to use instead of the pinned Intel SGX Root CA (results are marked simulated: true)")
	f.StringVar(&simDir, "sim-dir", "", "trust the simulation root in this directory (created by \"ppml sim init\"); results are marked simulated: true")
	f.BoolVar(&rejectTrailing, "reject-trailing-bytes", false, "refuse quotes with bytes after the signature data (default: tolerated and reported)")
	return cmd
}
