package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/sim"
)

func newSimCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulated SGX/TDX platform: a test PKI, collateral and quotes (NOT secure)",
		Long: `Simulate an Intel SGX/TDX platform on machines without one.

"ppml sim init" creates a simulation PKI (root CA, PCK Platform CA, PCK
certificate with the SGX extension, TCB signing certificate, attestation key)
and matching signed collateral. "ppml sim quote" produces quotes in the real
SGX v3 and TDX v4 binary layouts. Verify them with
"ppml quote verify --sim-dir DIR --collateral DIR/collateral-<tee>.json";
every such verdict says simulated: true. Simulated quotes prove nothing about
real hardware: never trust a simulation root in production.`,
	}
	cmd.AddCommand(newSimInitCmd(), newSimQuoteCmd())
	return cmd
}

func newSimInitCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "init --sim-dir DIR",
		Short: "Create a simulation PKI and collateral in DIR",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			if dir == "" {
				return errors.New("--sim-dir is required: the directory to create the simulation in")
			}
			s, err := sim.Init(dir)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "simulation created in %s (keys are private to this directory; NOT FOR PRODUCTION)\n", s.Dir())
			fmt.Fprintf(w, "trust anchor:    %s\n", filepath.Join(s.Dir(), "root_ca.pem"))
			fmt.Fprintf(w, "SGX collateral:  %s\n", s.CollateralPath(abi.SGX))
			fmt.Fprintf(w, "TDX collateral:  %s\n", s.CollateralPath(abi.TDX))
			fmt.Fprintf(w, "next: ppml sim quote --sim-dir %s --tee sgx --mr-enclave HEX --report-data HEX --out quote.bin\n", s.Dir())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "sim-dir", "", "directory to create the simulation in (required; must not already hold one)")
	return cmd
}

func newSimQuoteCmd() *cobra.Command {
	var (
		dir, tee, mrEnclave, mrSigner, mrTD, reportData, out string
		rtmr                                                 [4]string
		isvProdID, isvSVN                                    uint16
		debug                                                bool
	)
	cmd := &cobra.Command{
		Use:   "quote --sim-dir DIR --tee sgx|tdx [measurements] --report-data HEX --out FILE",
		Short: "Produce a simulated SGX v3 or TDX v4 quote",
		Long: `Produce a quote signed by the simulation in --sim-dir. SGX quotes take
--mr-enclave, --mr-signer, --isv-prod-id and --isv-svn; TDX quotes take --mr-td
and --rtmr0..--rtmr3. Omitted measurements are zero. --report-data is up to 64
bytes of hex, zero-padded on the right.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			if dir == "" || out == "" {
				return errors.New("--sim-dir and --out are required")
			}
			fl := cmd.Flags()
			var m sim.Measurements
			var err error
			hexInto := func(dst []byte, field, val string, n int, exact bool) {
				if err != nil {
					return
				}
				var b []byte
				if b, err = sim.ParseHex("--"+field, val, n, exact); err == nil {
					copy(dst, b)
				}
			}
			var t abi.TEE
			switch tee {
			case "sgx":
				t = abi.SGX
				for _, f := range []string{"mr-td", "rtmr0", "rtmr1", "rtmr2", "rtmr3"} {
					if fl.Changed(f) {
						return fmt.Errorf("--%s applies to TDX quotes; with --tee sgx use --mr-enclave, --mr-signer, --isv-prod-id, --isv-svn", f)
					}
				}
				hexInto(m.MREnclave[:], "mr-enclave", mrEnclave, 32, true)
				hexInto(m.MRSigner[:], "mr-signer", mrSigner, 32, true)
				m.ISVProdID, m.ISVSVN = isvProdID, isvSVN
			case "tdx":
				t = abi.TDX
				for _, f := range []string{"mr-enclave", "mr-signer", "isv-prod-id", "isv-svn"} {
					if fl.Changed(f) {
						return fmt.Errorf("--%s applies to SGX quotes; with --tee tdx use --mr-td and --rtmr0..--rtmr3", f)
					}
				}
				hexInto(m.MRTD[:], "mr-td", mrTD, 48, true)
				for i := range 4 {
					hexInto(m.RTMR[i][:], fmt.Sprintf("rtmr%d", i), rtmr[i], 48, true)
				}
			default:
				return fmt.Errorf("--tee %q is not supported: use sgx or tdx", tee)
			}
			hexInto(m.ReportData[:], "report-data", reportData, 64, false)
			if err != nil {
				return err
			}
			m.Debug = debug
			s, err := sim.Load(dir)
			if err != nil {
				return err
			}
			q, err := s.Quote(t, m)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, q, 0o644); err != nil {
				return fmt.Errorf("writing the quote: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote simulated %s quote (%d bytes) to %s\nverify: ppml quote verify --quote %s --sim-dir %s --collateral %s\n",
				tee, len(q), out, out, dir, s.CollateralPath(t))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "sim-dir", "", "simulation directory created by \"ppml sim init\" (required)")
	f.StringVar(&tee, "tee", "sgx", "quote type: sgx (quote v3) or tdx (quote v4)")
	f.StringVar(&mrEnclave, "mr-enclave", "", "SGX MRENCLAVE, 32 bytes hex (default zeros)")
	f.StringVar(&mrSigner, "mr-signer", "", "SGX MRSIGNER, 32 bytes hex (default zeros)")
	f.Uint16Var(&isvProdID, "isv-prod-id", 0, "SGX ISVPRODID")
	f.Uint16Var(&isvSVN, "isv-svn", 0, "SGX ISVSVN")
	f.BoolVar(&debug, "debug", false, "set the DEBUG attribute (SGX ATTRIBUTES.FLAGS bit 1, TDX TD_ATTRIBUTES bit 0)")
	f.StringVar(&mrTD, "mr-td", "", "TDX MRTD, 48 bytes hex (default zeros)")
	for i := range 4 {
		f.StringVar(&rtmr[i], fmt.Sprintf("rtmr%d", i), "", fmt.Sprintf("TDX RTMR%d, 48 bytes hex (default zeros)", i))
	}
	f.StringVar(&reportData, "report-data", "", "report data, up to 64 bytes hex, zero-padded on the right (e.g. SHA-256 of a nonce and a public key)")
	f.StringVar(&out, "out", "", "file to write the binary quote to (required)")
	return cmd
}
