//go:build cgo

package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/agent"
	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/dataformat/keysource"
	"github.com/ppml-project/ppml/trustedsql"
)

func newSQLCmd() *cobra.Command {
	var (
		kf                                 clientFlags
		inputs                             []string
		query, output, outFormat           string
		primaryKeyFile, keyID, outputKeyID string
		attest                             bool
		attestDir, quoteType, policyID     string
		memLimit, tempDir                  string
		threads                            int
		force, plaintextBench              bool
	)
	cmd := &cobra.Command{
		Use:   "sql --input NAME=PATH [--input ...] --query SQL --output PATH",
		Short: "Run SQL inside the enclave over encrypted inputs (embedded DuckDB); the result is written encrypted",
		Long: `Runs one SELECT over encrypted inputs with an embedded DuckDB.

Before any input is decrypted every data key is obtained: with --attest the
enclave attests (--attestation-dir, --policy-id) and the keys are released to
it; otherwise from --primary-key-plaintext-file or --kms/--key-id (local use).
CSV inputs (with a header) are streamed into DuckDB through a pipe, Parquet
inputs through an in-memory file: no plaintext file is written. The query can
read no file and write nowhere. The result is written encrypted in the format
of the first input: ppml by default (--output is a file), BigDL .cbc + .meta
or parquet-modular + .meta for BigDL inputs (--output is a new directory).

--temp-dir is DuckDB's spill directory: in an enclave it MUST be the
encrypted mount (spill files hold table data; DuckDB also encrypts them with
a process key). Without it DuckDB cannot spill and a working set above
--memory-limit fails. See docs/sql.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			opt := trustedsql.Options{Query: query, Output: output, OutputFormat: outFormat, TempDir: tempDir,
				MemoryLimit: memLimit, Threads: threads, Overwrite: force, PlaintextInputs: plaintextBench}
			var err error
			if opt.Inputs, err = trustedsql.ParseInputs(inputs); err != nil {
				return err
			}
			if !plaintextBench {
				keys, err := sqlKeySource(cmd, &kf, primaryKeyFile, keyID, outputKeyID, attest, attestDir, quoteType, policyID)
				if err != nil {
					return err
				}
				opt.Keys = keys
			}
			start := time.Now()
			res, err := trustedsql.Run(ctx, opt)
			if err != nil {
				return err
			}
			d := time.Since(start)
			fmt.Fprintf(cmd.ErrOrStderr(), "%d row(s) from %d input byte(s) in %s (%.1f MiB/s) -> %s\n",
				res.Rows, res.InputBytes, d.Round(time.Millisecond), float64(res.InputBytes)/(1<<20)/d.Seconds(), strings.Join(res.Outputs, ", "))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&inputs, "input", nil, "NAME=PATH: an encrypted input queried as table NAME (repeatable)")
	fl.StringVar(&query, "query", "", "the SELECT statement")
	fl.StringVar(&output, "output", "", "output path: a file (ppml format) or a new directory (BigDL formats)")
	fl.StringVar(&outFormat, "output-format", "csv", "csv (with header) or parquet")
	fl.StringVar(&primaryKeyFile, "primary-key-plaintext-file", "", "local use: file whose first line is a base64 AES primary key")
	fl.StringVar(&kf.kms, "kms", os.Getenv("PPML_KMS"), "KMS URL (with --attest: the KMS and attestation service) (env PPML_KMS)")
	fl.StringVar(&kf.appID, "app-id", os.Getenv("PPML_APP_ID"), "KMS app id (env PPML_APP_ID)")
	fl.StringVar(&kf.apiKey, "api-key", "", "KMS API key; prefer --api-key-file or PPML_API_KEY")
	fl.StringVar(&kf.apiKeyFile, "api-key-file", "", "file holding the KMS API key (env PPML_API_KEY holds the key itself)")
	fl.StringVar(&kf.caFile, "ca-file", os.Getenv("PPML_CA_FILE"), "PEM CA certificate(s) to trust besides the system roots (env PPML_CA_FILE)")
	fl.StringVar(&keyID, "key-id", "", "local use with --kms: KMS key id for the output's data key")
	fl.BoolVar(&attest, "attest", false, "attest the enclave and obtain the input keys by attested key release (production)")
	fl.StringVar(&attestDir, "attestation-dir", "", "Gramine attestation directory (default /dev/attestation; or one made by ppml sim enclave)")
	fl.StringVar(&quoteType, "quote-type", "gramine", "quote source: gramine (the only one supported here)")
	fl.StringVar(&policyID, "policy-id", "", "attestation policy id the input keys are bound to")
	fl.StringVar(&outputKeyID, "output-key-id", "", "with --attest: KMS key id for the output's new data key")
	fl.StringVar(&memLimit, "memory-limit", "", "DuckDB memory_limit, e.g. 4GB (default 80% of RAM); beyond it DuckDB spills to --temp-dir")
	fl.StringVar(&tempDir, "temp-dir", "", "DuckDB spill directory; MUST be the enclave's encrypted mount in production (empty: no spilling)")
	fl.IntVar(&threads, "threads", 0, "DuckDB threads (default: all cores)")
	fl.BoolVar(&force, "force", false, "replace an existing output")
	fl.BoolVar(&plaintextBench, "plaintext-benchmark", false, "benchmark baseline: plaintext inputs and output through the same DuckDB path (never for real data)")
	fl.MarkHidden("plaintext-benchmark")
	cmd.MarkFlagRequired("input")
	cmd.MarkFlagRequired("query")
	cmd.MarkFlagRequired("output")
	return cmd
}

func sqlKeySource(cmd *cobra.Command, kf *clientFlags, primaryKeyFile, keyID, outputKeyID string, attest bool, attestDir, quoteType, policyID string) (keysource.Source, error) {
	if attest {
		if primaryKeyFile != "" {
			return nil, errors.New("--attest and --primary-key-plaintext-file exclude each other")
		}
		var cfg client.Config
		if kf.kms != "" && policyID != "" {
			var err error
			if cfg, err = kf.config(); err != nil {
				return nil, err
			}
		}
		keys, err := agent.AttestedKeys(cmd.Context(), agent.Attested{Config: cfg, QuoteType: quoteType, AttestationDir: attestDir,
			PolicyID: policyID, NewKeyID: outputKeyID, Log: cmd.ErrOrStderr()})
		if err != nil {
			return nil, err
		}
		return keys, nil
	}
	kms, err := kf.kmsConfig()
	if err != nil {
		return nil, err
	}
	keys, err := kmskeys.Select(kmskeys.Choice{PlaintextKeyFile: primaryKeyFile, KMS: kms, KeyID: keyID})
	if errors.Is(err, kmskeys.ErrNoSource) {
		return nil, errors.New("no key source: --attest (production), --kms with --key-id, or --primary-key-plaintext-file")
	}
	return keys, err
}
