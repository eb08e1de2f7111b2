package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/agent"
	"github.com/ppml-project/ppml/quote/policy"
)

func newAttestCmd() *cobra.Command {
	var (
		c            agent.Config
		server       agent.ServerCheck
		serverPolicy string
		dataKeys     []string
		aad          string
	)
	cmd := &cobra.Command{
		Use:   "attest [flags] [-- CMD ARGS...]",
		Short: "Attest this enclave, receive its data keys, then run the workload (BigDL attestation.sh replacement)",
		Long: `Run inside the enclave before the workload. It obtains a quote over fresh
report data, has it verified by the attestation service, and prints BigDL's
verdict lines with BigDL's exit codes:
  Attestation Success!                      exit 0
  Attestation Fail! Application killed!     exit 1 (the reason goes to stderr)
With ATTESTATION_TYPE=PPMLAttestationService (our native service) the report
data commits to a server nonce and an ephemeral X25519 key, and each
--data-key WRAPPED=DEST is released to that key (HPKE) and delivered only on
success: DEST is a file (written 0600), gramine:NAME (/dev/attestation/keys/NAME)
gramine-legacy:NAME (BigDL's 15-character key of existing encrypted-fsd
volumes) or env:NAME (in the environment of CMD). After "--", CMD is executed with
that environment once attestation passed.

Environment (flags override): ATTESTATION_URL (host:port or URL), APP_ID,
API_KEY, ATTESTATION_POLICYID, ATTESTATION_TYPE (EHSMAttestationService
default, BigDLRemoteAttestationService or BigDL, PPMLAttestationService; any
case), QUOTE_TYPE (gramine default, occlum, TDX; any case, so the Python
CLI's Gramine/Occlum work), ATTESTATION_DEBUG (true: continue after a
failure, loudly, with no key released), ATTESTATION_CHALLENGE (attest the
service first: it must quote itself over SHA-256 of the challenge, checked
here with --server-collateral-dir / --server-pccs-url), ATTESTATION (only "true" attests;
unset or any other value skips attestation with a warning line and runs CMD,
as BigDL's attestation.sh does; --data-key then fails: no key without attestation),
ATTESTATION_PORXY_HOST / ATTESTATION_PORXY_PORT (BigDL's spelling: the HTTPS
proxy).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, set := os.LookupEnv("ATTESTATION")
			if skip, warning := agent.Skip(v, set); skip {
				if len(c.DataKeys) > 0 || len(dataKeys) > 0 {
					return fmt.Errorf("ATTESTATION=%q but --data-key was given: keys are released only after attestation; set ATTESTATION=true", v)
				}
				fmt.Fprintln(cmd.OutOrStdout(), "[INFO] Attestation is disabled!")
				fmt.Fprintln(cmd.ErrOrStderr(), warning)
				return execWorkload(args, nil)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "[INFO] Attestation is enabled!")
			if server.Challenge != "" {
				if serverPolicy != "" {
					p, err := policy.LoadFile(serverPolicy)
					if err != nil {
						return err
					}
					server.Policy = p
				}
				c.Server = &server
			}
			keys, err := agent.ParseDataKeys(dataKeys)
			if err != nil {
				return err
			}
			c.DataKeys = append(c.DataKeys, keys...)
			if aad != "" {
				c.DataKeyAAD = []byte(aad)
			}
			agent.SetBigDLProxy()
			c.Stdout, c.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			res := agent.Run(cmd.Context(), c)
			if res.ExitCode != 0 {
				return exitError{code: res.ExitCode}
			}
			return execWorkload(args, res.Env)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&c.URL, "url", "u", os.Getenv("ATTESTATION_URL"), "attestation service, host:port or https URL (env ATTESTATION_URL)")
	f.StringVarP(&c.AppID, "app-id", "i", agent.Getenv(os.Stderr, "APP_ID", "ATTESTATION_ID"), "app id (env APP_ID)")
	f.StringVarP(&c.APIKey, "api-key", "k", "", "API key; prefer env API_KEY (arguments are visible to other processes)")
	f.StringVarP(&c.PolicyID, "policy-id", "o", os.Getenv("ATTESTATION_POLICYID"), "attestation policy id (env ATTESTATION_POLICYID)")
	f.StringVarP(&c.Type, "type", "t", os.Getenv("ATTESTATION_TYPE"), "service type: EHSMAttestationService (default), BigDLRemoteAttestationService (or BigDL) or PPMLAttestationService, any case (env ATTESTATION_TYPE)")
	f.StringVarP(&c.QuoteType, "quote-type", "O", os.Getenv("QUOTE_TYPE"), "gramine (default), occlum or TDX, any case (env QUOTE_TYPE)")
	f.StringVarP(&c.UserReportData, "report-data", "p", "", "legacy services: user report data string, 1..32 bytes (default 010203040506); the native service binds a nonce instead")
	f.BoolVar(&c.Debug, "debug", os.Getenv("ATTESTATION_DEBUG") == "true", "continue after a failed attestation (env ATTESTATION_DEBUG=true); never releases keys")
	f.StringVar(&c.AttestationDir, "attestation-dir", "", "Gramine attestation directory (default /dev/attestation), or a simulated enclave made by ppml sim enclave")
	f.StringVar(&c.TSMDir, "tsm-dir", "", "TDX configfs-tsm report directory (default /sys/kernel/config/tsm/report)")
	f.StringVar(&c.CAFile, "ca-file", os.Getenv("PPML_CA_FILE"), "PEM CA certificate(s) to trust besides the system roots (env PPML_CA_FILE)")
	f.StringArrayVar(&dataKeys, "data-key", nil, "WRAPPED=DEST: release the data key of WRAPPED (a ppml or BigDL .cbc encrypted file, a .meta, or a wrapped key file) to DEST (file path, gramine:NAME, gramine-legacy:NAME or env:NAME); repeatable; native service only")
	f.StringVarP(&server.Challenge, "challenge", "c", os.Getenv("ATTESTATION_CHALLENGE"), "attest the attestation service first: base64 challenge it must bind into its own quote (env ATTESTATION_CHALLENGE; eHSM GenerateQuote)")
	f.StringVar(&server.CollateralDir, "server-collateral-dir", "", "collateral to verify the attestation service's quote (offline layout)")
	f.StringVar(&server.PCCSURL, "server-pccs-url", os.Getenv("PCCS_URL"), "PCCS / Intel PCS v4 URL to fetch the collateral of the attestation service's quote (env PCCS_URL)")
	f.StringVar(&server.SimDir, "server-sim-dir", "", "trust the simulation PKI in this directory for the attestation service's quote (testing only)")
	f.StringVar(&serverPolicy, "server-policy", "", "policy file the attestation service's measurements must satisfy (default: policy defaults)")
	f.StringVar(&aad, "data-key-aad", "", "AAD the data keys were wrapped with (default BigDL's \"test\", as ppml encrypt uses)")
	cmd.PreRun = func(cmd *cobra.Command, args []string) {
		if c.APIKey == "" {
			c.APIKey = agent.Getenv(os.Stderr, "API_KEY", "ATTESTATION_KEY")
		}
	}
	return cmd
}

// exitError ends the process with a chosen status (the verdict line is
// already printed).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string {
	if e.msg == "" {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.msg
}
func (e exitError) ExitCode() int { return e.code }

// execWorkload replaces this process with args, adding env.
func execWorkload(args, env []string) error {
	if len(args) == 0 {
		return nil
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		return fmt.Errorf("workload %q: %w", args[0], err)
	}
	return syscall.Exec(path, args, append(os.Environ(), env...))
}
