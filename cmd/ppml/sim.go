package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ppml-project/ppml/enclave"
	"github.com/ppml-project/ppml/enclave/sigstruct"
	"github.com/ppml-project/ppml/internal/atomicfile"
	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/sim"
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
	cmd.AddCommand(newSimInitCmd(), newSimQuoteCmd(), newSimEnclaveCmd(), newSimSigstructCmd())
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

// measurementFlags are the measurement flags shared by sim quote and sim
// enclave; sim.ParseMeasurements reads the ones given.
type measurementFlags struct {
	tee   string
	debug bool
}

func (mf *measurementFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&mf.tee, "tee", "sgx", "TEE: sgx (quote v3) or tdx (quote v4)")
	f.String("mr-enclave", "", "SGX MRENCLAVE, 32 bytes hex (default zeros)")
	f.String("mr-signer", "", "SGX MRSIGNER, 32 bytes hex (default zeros)")
	f.Uint16("isv-prod-id", 0, "SGX ISVPRODID")
	f.Uint16("isv-svn", 0, "SGX ISVSVN")
	f.BoolVar(&mf.debug, "debug", false, "set the DEBUG attribute (SGX ATTRIBUTES.FLAGS bit 1, TDX TD_ATTRIBUTES bit 0)")
	f.String("mr-td", "", "TDX MRTD, 48 bytes hex (default zeros)")
	for i := range 4 {
		f.String(fmt.Sprintf("rtmr%d", i), "", fmt.Sprintf("TDX RTMR%d, 48 bytes hex (default zeros)", i))
	}
}

func (mf *measurementFlags) parse(cmd *cobra.Command) (abi.TEE, sim.Measurements, error) {
	given := map[string]string{}
	cmd.Flags().Visit(func(f *pflag.Flag) { given[f.Name] = f.Value.String() })
	return sim.ParseMeasurements(mf.tee, given, mf.debug)
}

func newSimQuoteCmd() *cobra.Command {
	var (
		mf                   measurementFlags
		dir, reportData, out string
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
			t, m, err := mf.parse(cmd)
			if err != nil {
				return err
			}
			rd, err := sim.ParseHex("--report-data", reportData, 64, false)
			if err != nil {
				return err
			}
			copy(m.ReportData[:], rd)
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
				t, len(q), out, out, dir, s.CollateralPath(t))
			return nil
		},
	}
	mf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&dir, "sim-dir", "", "simulation directory created by \"ppml sim init\" (required)")
	f.StringVar(&reportData, "report-data", "", "report data, up to 64 bytes hex, zero-padded on the right (e.g. SHA-256 of a nonce and a public key)")
	f.StringVar(&out, "out", "", "file to write the binary quote to (required)")
	return cmd
}

func newSimEnclaveCmd() *cobra.Command {
	var (
		mf          measurementFlags
		dir, simDir string
	)
	cmd := &cobra.Command{
		Use:   "enclave --dir DIR --sim-dir SIMPKI [measurements]",
		Short: "Prepare a simulated enclave: a directory laid out like /dev/attestation whose quotes come from the simulation",
		Long: `Prepare DIR like Gramine's /dev/attestation (attestation_type, user_report_data,
quote, keys/) for a simulated enclave with the given measurements. Point
"ppml attest --attestation-dir DIR" at it: every quote it reads is produced
by the simulation PKI in --sim-dir (for a server started with
--allow-simulation: <data-dir>/sim) over the report data just written, in the
real SGX v3 / TDX v4 layout. Everything it yields is marked simulated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || simDir == "" {
				return errors.New("--dir and --sim-dir are required")
			}
			t, m, err := mf.parse(cmd)
			if err != nil {
				return err
			}
			if err := enclave.PrepareSim(dir, simDir, string(t), m); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "simulated %s enclave ready in %s (quotes from %s)\n", t, dir, simDir)
			return nil
		},
	}
	mf.register(cmd)
	cmd.Flags().StringVar(&dir, "dir", "", "directory to prepare (required)")
	cmd.Flags().StringVar(&simDir, "sim-dir", "", "simulation PKI directory (ppml sim init, or <data-dir>/sim of ppml serve --allow-simulation) (required)")
	return cmd
}

func newSimSigstructCmd() *cobra.Command {
	var (
		dir, mrEnclave, out string
		prodID, svn         uint16
		debug               bool
	)
	cmd := &cobra.Command{
		Use:   "sigstruct --sim-dir DIR --mr-enclave HEX --out FILE.sig",
		Short: "Sign a simulated enclave: a SIGSTRUCT (Gramine .sig) made with the simulation's enclave key",
		Long: `Write the SIGSTRUCT gramine-sgx-sign would write for an enclave with this
MRENCLAVE, product id and SVN, signed with the simulation's enclave key
(RSA-3072, exponent 3, created in --sim-dir on first use). Try the production
flow without Gramine: ppml policy from-sigstruct FILE.sig derives the policy,
and ppml sim quote --mr-enclave HEX --mr-signer <printed> makes a quote of
that enclave.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || out == "" || mrEnclave == "" {
				return errors.New("--sim-dir, --mr-enclave and --out are required")
			}
			mre, err := sim.ParseHex("--mr-enclave", mrEnclave, 32, true)
			if err != nil {
				return err
			}
			s, err := sim.Load(dir)
			if err != nil {
				return err
			}
			var m [32]byte
			copy(m[:], mre)
			sig, meas, err := s.SignEnclave(sigstruct.GramineFields(m, prodID, svn, debug))
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, sig, 0o644); err != nil {
				return fmt.Errorf("writing the SIGSTRUCT: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (SIMULATED signer)\nmr_enclave: %x\nmr_signer: %x\n", out, meas.MREnclave, meas.MRSigner)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "sim-dir", "", "simulation directory created by \"ppml sim init\" (required)")
	f.StringVar(&mrEnclave, "mr-enclave", "", "MRENCLAVE, 64 hex digits (required)")
	f.Uint16Var(&prodID, "isv-prod-id", 0, "ISVPRODID")
	f.Uint16Var(&svn, "isv-svn", 0, "ISVSVN")
	f.BoolVar(&debug, "debug", false, "sign it as a debug enclave (ATTRIBUTES.DEBUG)")
	f.StringVar(&out, "out", "", "file to write the SIGSTRUCT to (required)")
	return cmd
}
