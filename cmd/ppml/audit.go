package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/audit"
	"github.com/ppml-project/ppml/server"
)

func newAuditCmd() *cobra.Command {
	a := &cobra.Command{Use: "audit", Short: "Audit log: verify its hash chain and signed checkpoints"}
	var pubFile, output string
	v := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check an audit log's hash chain and checkpoint signatures; name the first record altered, removed or reordered",
		Long: `Every audit record carries the SHA-256 of the one before it, and the server
signs a checkpoint (ES256, the key audit-checkpoint.key of its data directory)
every 100 records, every minute and when it stops. verify checks both and
names the first record that was altered, removed or reordered, or the first
checkpoint whose signature fails (history rewritten with recomputed hashes).
Records after the last checkpoint are counted: cutting them off would not be
noticed. Keep a copy of audit-checkpoint.pub away from the server. Exit 1 on
a problem.`,
		Example: `  ppml audit verify ~/.local/share/ppml/audit.log --public-key audit-checkpoint.pub`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pubFile == "" {
				pubFile = filepath.Join(filepath.Dir(args[0]), server.AuditCheckpointPub)
			}
			pb, err := os.ReadFile(pubFile)
			if err != nil {
				return fmt.Errorf("--public-key: %w", err)
			}
			pub, err := audit.ParsePublicKey(pb)
			if err != nil {
				return fmt.Errorf("--public-key %s: %w", pubFile, err)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			rep, err := audit.Verify(f, pub)
			if err != nil {
				return fmt.Errorf("reading %s: %w", args[0], err)
			}
			if output == "json" {
				if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else if rep.Problem == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "ok: %d chained records (%d before the chain), %d checkpoints, the last at record %d; %d record(s) after it\n",
					rep.Records, rep.Unchained, rep.Checkpoints, rep.LastSigned, rep.Uncovered)
			}
			if rep.Problem != "" {
				return fmt.Errorf("%s: %s", args[0], rep.Problem)
			}
			return nil
		},
	}
	v.Flags().StringVar(&pubFile, "public-key", "", "PEM public key of the checkpoints (default: audit-checkpoint.pub next to FILE)")
	v.Flags().StringVar(&output, "output", "text", "text or json")
	a.AddCommand(v)
	return a
}
