package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/dataformat/files"
	"github.com/ppml-project/ppml/dataformat/keysource"
)

// cryptFlags are the flags shared by `ppml encrypt` and `ppml decrypt`.
type cryptFlags struct {
	kmsFlags       clientFlags
	keyID          string
	bigdlKMS       string
	bigdlUser      string
	bigdlTokenFile string
	bigdlPK        string
	in, out        string
	format         string
	primaryKeyFile string
	chunkSize      int
	parquetAlg     string
	force          bool
	quiet          bool
	workers        int
	allowUnauth    bool
}

func (f *cryptFlags) register(cmd *cobra.Command, encrypt bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.in, "in", "", "input file or directory (required)")
	fl.StringVar(&f.out, "out", "", "output file or directory (default for a file: input plus/minus the format's extension)")
	if encrypt {
		fl.StringVar(&f.format, "format", "ppml", "output format: ppml (authenticated chunked AES-256-GCM), bigdl (BigDL/Spark .cbc + .meta), parquet-modular (BigDL-compatible Parquet encryption)")
		fl.IntVar(&f.chunkSize, "chunk-size", 0, "ppml format: plaintext chunk size in bytes (default 65536)")
		fl.StringVar(&f.parquetAlg, "parquet-algorithm", "AES_GCM_V1", "parquet-modular: AES_GCM_V1 or AES_GCM_CTR_V1")
	} else {
		fl.StringVar(&f.format, "format", "auto", "expected input format: auto (detect from content), ppml, bigdl, parquet-modular, or bigdl-nativeaescbc (BigDL's unauthenticated variant: needs --allow-unauthenticated and --primary-key-plaintext-file)")
		fl.BoolVar(&f.allowUnauth, "allow-unauthenticated", false, "accept bigdl-nativeaescbc input, which has no integrity protection: a modified file decrypts to modified plaintext undetected")
	}
	fl.StringVar(&f.primaryKeyFile, "primary-key-plaintext-file", "", "file whose first line is a base64 AES primary key (BigDL's spark.bigdl.primaryKey.<name>.plainText mode)")
	// Our KMS or any eHSM-compatible KMS: data keys by GenerateDataKey/Decrypt.
	fl.StringVar(&f.kmsFlags.kms, "kms", "", "KMS URL (ours or eHSM-compatible) for data keys (env PPML_KMS when no other key source is given)")
	fl.StringVar(&f.kmsFlags.appID, "app-id", os.Getenv("PPML_APP_ID"), "KMS app id (env PPML_APP_ID)")
	fl.StringVar(&f.kmsFlags.apiKey, "api-key", "", "KMS API key; prefer --api-key-file or PPML_API_KEY")
	fl.StringVar(&f.kmsFlags.apiKeyFile, "api-key-file", "", "file holding the KMS API key (env PPML_API_KEY holds the key itself)")
	fl.StringVar(&f.kmsFlags.caFile, "ca-file", os.Getenv("PPML_CA_FILE"), "PEM CA certificate(s) to trust besides the system roots (env PPML_CA_FILE)")
	fl.StringVar(&f.keyID, "key-id", "", "KMS primary key id for new data keys (decryption finds it in the file header or .meta)")
	// A BigDL KMS: data keys are named and read back by name.
	fl.StringVar(&f.bigdlKMS, "bigdl-kms", "", "BigDL KMS URL (ours or upstream's) for data keys")
	fl.StringVar(&f.bigdlUser, "bigdl-user", "", "BigDL KMS user")
	fl.StringVar(&f.bigdlTokenFile, "bigdl-token-file", "", "file holding the BigDL KMS user token")
	fl.StringVar(&f.bigdlPK, "bigdl-primary-key", "", "BigDL KMS primary key name")
	fl.BoolVar(&f.force, "force", false, "replace existing output files")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar or summary")
	fl.IntVar(&f.workers, "workers", 0, "files processed at once (default: number of CPUs)")
	cmd.MarkFlagRequired("in")
}

// keySource opens the key source the flags name; $PPML_KMS is the KMS
// when no source is given.
func (f *cryptFlags) keySource() (keysource.Source, error) {
	if f.primaryKeyFile == "" && f.bigdlKMS == "" && f.kmsFlags.kms == "" {
		f.kmsFlags.kms = os.Getenv("PPML_KMS")
	}
	kms, err := f.kmsFlags.kmsConfig()
	if err != nil {
		return nil, err
	}
	keys, err := kmskeys.Select(kmskeys.Choice{PlaintextKeyFile: f.primaryKeyFile, KMS: kms, KeyID: f.keyID,
		BigDL: &kmskeys.BigDLLogin{URL: f.bigdlKMS, User: f.bigdlUser, TokenFile: f.bigdlTokenFile, PrimaryKey: f.bigdlPK, CAFile: f.kmsFlags.caFile}})
	if errors.Is(err, kmskeys.ErrNoSource) {
		return nil, errors.New("no key source: give --kms URL --app-id ID --api-key-file F --key-id KEY (our KMS or eHSM), --bigdl-kms URL --bigdl-user U --bigdl-token-file F --bigdl-primary-key NAME, or --primary-key-plaintext-file FILE (a base64 AES key, e.g. `openssl rand -base64 32 > key.txt`)")
	}
	return keys, err
}

func (f *cryptFlags) options(cmd *cobra.Command) (files.Options, func(), error) {
	format, err := files.ParseFormat(f.format)
	if err != nil {
		return files.Options{}, nil, err
	}
	keys, err := f.keySource()
	if err != nil {
		return files.Options{}, nil, err
	}
	var nativeKey string
	if format == files.FormatNativeAESCBC && cmd.Name() == "decrypt" {
		if !f.allowUnauth || f.primaryKeyFile == "" {
			return files.Options{}, nil, errors.New("bigdl-nativeaescbc files carry no MAC, so nothing detects tampering: pass --allow-unauthenticated, with --primary-key-plaintext-file (BigDL's plainText mode, the only one whose key this format determines)")
		}
		if nativeKey, err = keysource.ReadPlainTextFile(f.primaryKeyFile); err != nil {
			return files.Options{}, nil, err
		}
		fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: bigdl-nativeaescbc is unauthenticated: the plaintext is not checked for tampering; re-encrypt it with --format ppml or bigdl")
	}
	alg, err := files.ParseParquetAlgorithm(f.parquetAlg)
	if err != nil {
		return files.Options{}, nil, err
	}
	opt := files.Options{
		Format:           format,
		Keys:             keys,
		Workers:          f.workers,
		Overwrite:        f.force,
		ChunkSize:        f.chunkSize,
		ParquetAlgorithm: alg,
		NativeKey:        nativeKey,
	}
	finish := func() {}
	if !f.quiet {
		finish = files.ShowProgress(os.Stderr, cmd.Name(), &opt)
	}
	return opt, finish, nil
}

func cryptContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signal.NotifyContext(ctx, os.Interrupt)
}

func (f *cryptFlags) summary(cmd *cobra.Command, verb string, res files.Result) {
	if f.quiet {
		return
	}
	w := cmd.ErrOrStderr()
	fmt.Fprintf(w, "%s %d file(s) (%d input bytes)\n", verb, res.Files, res.Bytes)
	if len(res.Outputs) == 1 {
		fmt.Fprintf(w, "  -> %s\n", res.Outputs[0])
	}
	if n := len(res.Skipped); n > 0 {
		fmt.Fprintf(w, "skipped %d hidden file(s) that Spark does not read (names starting with _ or .), e.g. %s\n", n, res.Skipped[0])
	}
}

func newEncryptCmd() *cobra.Command {
	var f cryptFlags
	cmd := &cobra.Command{
		Use:   "encrypt --in PATH [--out PATH] [--format ppml|bigdl|parquet-modular] KEY-SOURCE",
		Short: "Encrypt a file or a directory tree",
		Long: `Encrypt a file or a directory tree.

Formats:
  ppml             default; authenticated chunked AES-256-GCM (docs/format-ppml.md).
                   NAME -> NAME.ppml
  bigdl            BigDL PPML's COMMON format, readable by Spark with BigDL:
                   NAME -> NAME.cbc, plus one .meta per directory
  parquet-modular  Parquet modular encryption as BigDL writes it
                   (needs .parquet inputs; one .meta per directory)

Every output file is written to a temporary file, synced and renamed, so an
interrupted run never leaves a file that looks complete. One data key is
created per run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt, finish, err := f.options(cmd)
			if err != nil {
				return err
			}
			if opt.Format == files.FormatAuto {
				return errors.New("--format auto is for decryption; choose ppml, bigdl or parquet-modular")
			}
			ctx, cancel := cryptContext(cmd)
			defer cancel()
			res, err := files.Encrypt(ctx, f.in, f.out, opt)
			finish()
			if err != nil {
				return fmt.Errorf("encrypt: %w", err)
			}
			f.summary(cmd, "encrypted", res)
			return nil
		},
	}
	f.register(cmd, true)
	return cmd
}

func newDecryptCmd() *cobra.Command {
	var f cryptFlags
	cmd := &cobra.Command{
		Use:   "decrypt --in PATH [--out PATH] KEY-SOURCE",
		Short: "Decrypt a file or a directory tree (format detected from content)",
		Long: `Decrypt a file or a directory tree written by ppml encrypt or by Spark with
BigDL. The format of each file is detected from its content; the data key is
found from the file header (ppml, bigdl) or the directory's .meta (bigdl,
parquet-modular) and opened with the given key source.

Integrity is checked before any plaintext is kept: a modified, truncated or
reordered file makes the command fail, and no output file is left for it.
BigDL .cbc files are verified in a first pass over the file before
decryption starts. Decrypting a directory writes the same relative paths
without the .cbc/.ppml extension.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt, finish, err := f.options(cmd)
			if err != nil {
				return err
			}
			ctx, cancel := cryptContext(cmd)
			defer cancel()
			res, err := files.Decrypt(ctx, f.in, f.out, opt)
			finish()
			if err != nil {
				return fmt.Errorf("decrypt: %w", err)
			}
			f.summary(cmd, "decrypted", res)
			return nil
		},
	}
	f.register(cmd, false)
	return cmd
}
