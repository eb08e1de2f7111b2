package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/client"
)

func adminTokenFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "admin-token-file", filepath.Join(defaultDataDir(), "admin.token"), "file holding the server's admin token")
}

func newEnrollCmd() *cobra.Command {
	var f clientFlags
	var tokenFile, bigdlUser, bigdlTokenFile string
	cmd := &cobra.Command{
		Use:   "enroll",
		Short: "Enroll a new app (or, with --bigdl-user, a BigDL KMS user) with the KMS",
		Long: `Enroll a new app: its app id and API key serve eHSM, BigDL AS and native
clients. Store the API key in a file and pass --api-key-file to later
commands; it is printed only once.

With --bigdl-user NAME --bigdl-token-file FILE it creates the BigDL KMS user
NAME (BigDL's POST /user/NAME?token=) with the token in FILE, created with a
random token (0600) when it does not exist: the one-time step before BigDL
clients use the KMS (their ppml-conf / kms-secret then name the user and token).

Enrollment needs the server's admin token (--admin-token-file), unless the
server runs with --open-enrollment (on a trusted network only).`,
		Example: `  ppml enroll --admin-token-file ~/.local/share/ppml/admin.token --output json
  ppml enroll --admin-token-file admin.token --bigdl-user alice --bigdl-token-file alice.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			cfg.AdminToken = client.ReadAdminTokenFile(tokenFile)
			if bigdlUser != "" || bigdlTokenFile != "" {
				return enrollBigDLUser(cmd, &f, cfg, bigdlUser, bigdlTokenFile)
			}
			n, err := client.NewNative(cfg)
			if err != nil {
				return err
			}
			appID, apiKey, err := n.Enroll(cmd.Context())
			if err != nil {
				return err
			}
			return f.print(cmd.OutOrStdout(), map[string]string{"appid": appID, "apikey": apiKey}, func(w io.Writer) {
				fmt.Fprintf(w, "appid:  %s\napikey: %s\n", appID, apiKey)
			})
		},
	}
	f.register(cmd)
	adminTokenFlag(cmd, &tokenFile)
	cmd.Flags().StringVar(&bigdlUser, "bigdl-user", "", "create this BigDL KMS user instead of an app")
	cmd.Flags().StringVar(&bigdlTokenFile, "bigdl-token-file", "", "file with the BigDL user's token (created with a random token, 0600, if missing)")
	return cmd
}

// enrollBigDLUser creates a BigDL KMS user whose token is kept in a file,
// never in argv.
func enrollBigDLUser(cmd *cobra.Command, f *clientFlags, cfg client.Config, user, tokenFile string) error {
	if user == "" || tokenFile == "" {
		return fmt.Errorf("a BigDL KMS user needs both --bigdl-user NAME and --bigdl-token-file FILE")
	}
	token, created, err := client.ReadOrCreateTokenFile(tokenFile)
	if err != nil {
		return err
	}
	b, err := client.NewBigDLKMS(cfg.URL, user, token, cfg.CAFile)
	if err != nil {
		return err
	}
	if err := b.CreateUser(cmd.Context(), cfg.AdminToken); err != nil {
		if created {
			os.Remove(tokenFile) // no user has this token
		}
		return err
	}
	return f.print(cmd.OutOrStdout(), map[string]any{"bigdl_user": user, "token_file": tokenFile, "token_file_created": created}, func(w io.Writer) {
		fmt.Fprintf(w, "BigDL KMS user %s created; its token is in %s\n", user, tokenFile)
	})
}

func printKey(f *clientFlags, w io.Writer, k client.Key) error {
	return f.print(w, k, func(w io.Writer) {
		fmt.Fprintf(w, "keyid:   %s\nspec:    %s\nstate:   %s\nversion: %d\n", k.ID, k.Spec, k.State, k.Version)
		if !k.DeletionAt.IsZero() {
			fmt.Fprintf(w, "deletion scheduled: %s\n", k.DeletionAt.Format("2006-01-02T15:04:05Z07:00"))
		}
	})
}

func newKeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Create, list, rotate, disable and delete primary keys in the KMS"}
	withNative := func(use, short string, args cobra.PositionalArgs, extra func(*cobra.Command), run func(cmd *cobra.Command, f *clientFlags, n *client.Native, args []string) error) *cobra.Command {
		var f clientFlags
		c := &cobra.Command{Use: use, Short: short, Args: args, RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			n, err := client.NewNative(cfg)
			if err != nil {
				return err
			}
			return run(cmd, &f, n, args)
		}}
		f.register(c)
		if extra != nil {
			extra(c)
		}
		return c
	}
	var spec, usage, name string
	var policies, decrypters []string
	var days int
	cmd.AddCommand(
		withNative("create", "Create a primary key and print its id", cobra.NoArgs, func(c *cobra.Command) {
			c.Flags().StringVar(&spec, "spec", "EH_AES_GCM_256", "key spec: EH_AES_GCM_128/192/256, EH_SM4_CTR, EH_SM4_CBC (both SM4-GCM), EH_RSA_2048/3072/4096, EH_EC_P256/P384/P521, EH_SM2")
			c.Flags().StringVar(&usage, "usage", "", "EH_KEYUSAGE_ENCRYPT_DECRYPT or EH_KEYUSAGE_SIGN_VERIFY (default by spec)")
			c.Flags().StringVar(&name, "name", "", "optional name, unique per app")
			c.Flags().StringArrayVar(&policies, "release-policy", nil, "bind the key to this attestation policy id (repeatable): its plaintext then reaches only attested workloads")
			c.Flags().StringArrayVar(&decrypters, "decrypter", nil, "app id allowed to decrypt a bound key without attestation, e.g. the data owner reading results (repeatable)")
		}, func(cmd *cobra.Command, f *clientFlags, n *client.Native, args []string) error {
			k, err := n.CreateKey(cmd.Context(), client.KeyOptions{Spec: spec, Usage: usage, Name: name, ReleasePolicies: policies, Decrypters: decrypters})
			if err != nil {
				return err
			}
			return printKey(f, cmd.OutOrStdout(), k)
		}),
		withNative("list", "List the app's keys", cobra.NoArgs, nil, func(cmd *cobra.Command, f *clientFlags, n *client.Native, args []string) error {
			keys, err := n.ListKeys(cmd.Context())
			if err != nil {
				return err
			}
			return f.print(cmd.OutOrStdout(), keys, func(w io.Writer) {
				fmt.Fprintf(w, "%-36s  %-16s  %-16s  %s\n", "KEYID", "SPEC", "STATE", "VERSION")
				for _, k := range keys {
					fmt.Fprintf(w, "%-36s  %-16s  %-16s  %d\n", k.ID, k.Spec, k.State, k.Version)
				}
			})
		}),
		withNative("rotate KEYID", "Add a new version to a key; new encryptions use it, old versions still decrypt", cobra.ExactArgs(1), nil,
			func(cmd *cobra.Command, f *clientFlags, n *client.Native, args []string) error {
				k, err := n.KeyAction(cmd.Context(), args[0], "rotate", nil)
				if err != nil {
					return err
				}
				return printKey(f, cmd.OutOrStdout(), k)
			}),
		withNative("enable KEYID", "Enable a disabled key", cobra.ExactArgs(1), nil, keyAction("enable", nil)),
		withNative("disable KEYID", "Disable a key (reversible)", cobra.ExactArgs(1), nil, keyAction("disable", nil)),
		withNative("delete KEYID", "Schedule a key's deletion (cancellable until the date)", cobra.ExactArgs(1), func(c *cobra.Command) {
			c.Flags().IntVar(&days, "days", 7, "days until the key is destroyed (at least 1)")
		}, func(cmd *cobra.Command, f *clientFlags, n *client.Native, args []string) error {
			return keyAction("schedule-deletion", map[string]int{"days": days})(cmd, f, n, args)
		}),
		withNative("cancel-deletion KEYID", "Cancel a scheduled deletion; the key comes back disabled", cobra.ExactArgs(1), nil, keyAction("cancel-deletion", nil)),
	)
	return cmd
}

func keyAction(action string, body any) func(cmd *cobra.Command, f *clientFlags, n *client.Native, args []string) error {
	return func(cmd *cobra.Command, f *clientFlags, n *client.Native, args []string) error {
		k, err := n.KeyAction(cmd.Context(), args[0], action, body)
		if err != nil {
			return err
		}
		return printKey(f, cmd.OutOrStdout(), k)
	}
}

func newOperatorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "operator", Short: "Root key operations: init, unseal, status, rotate, rekey, rewrap"}
	var f clientFlags
	var tokenFile, sharesDir string
	var shareFiles []string
	native := func() (*client.Native, error) {
		cfg, err := f.config()
		if err != nil {
			return nil, err
		}
		cfg.AdminToken = client.ReadAdminTokenFile(tokenFile)
		return client.NewNative(cfg)
	}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create the root key of a KMS started with --root-key-provider shamir and write its 5 shares",
		Long: `Create the root key and write its five shares, one file per custodian, into
--shares-dir (mode 0600). Any three unseal the KMS after a restart. Hand each
file to a different person and delete the directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if sharesDir == "" {
				return fmt.Errorf("--shares-dir is required: the shares are written there, never printed")
			}
			if old := client.ShareFilesIn(sharesDir); len(old) > 0 {
				return fmt.Errorf("%s already holds share files (%s): give a new or empty --shares-dir, so no custodian's share is overwritten", sharesDir, filepath.Base(old[0]))
			}
			n, err := native()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(sharesDir, 0o700); err != nil {
				return err
			}
			// The shares exist only in the answer: if it is lost, the root
			// key may exist with no shares. It is still usable while the
			// server runs, and rekey (two steps) makes new shares from it.
			const lost = "run ppml operator status: if it says initialized and unsealed, run ppml operator rekey --shares-dir NEWDIR now, before the server restarts, to get shares for this root key"
			shares, err := n.InitRootKey(cmd.Context())
			var ae *client.APIError
			if err != nil && !errors.As(err, &ae) {
				return fmt.Errorf("%w\nthe answer with the shares did not arrive; %s", err, lost)
			}
			if err != nil {
				return err
			}
			if err := client.WriteShareFiles(sharesDir, shares); err != nil {
				return fmt.Errorf("the root key was created but its shares could not be written: %w; %s", err, lost)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "root key created; %d shares written to %s (any 3 unseal)\n", len(shares), sharesDir)
			return nil
		},
	}
	rotateCmd := &cobra.Command{
		Use:   "rotate",
		Short: "Start a new root key term: new wraps use it on every replica; the unseal shares stay the same",
		Long: `Start a new root key term. Every replica uses it for new wraps at once; rows
wrapped under older terms keep decrypting (run ppml operator rewrap to move
them to the new term). The unseal shares or key file do not change: to replace
the shares, run ppml operator rekey.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := native()
			if err != nil {
				return err
			}
			term, err := n.RotateRootKey(cmd.Context())
			if err != nil {
				return err
			}
			return f.print(cmd.OutOrStdout(), map[string]int{"term": term}, func(w io.Writer) {
				fmt.Fprintf(w, "root key rotated: new wraps use term %d\n", term)
			})
		},
	}
	var rekeyDir string
	rekeyCmd := &cobra.Command{
		Use:   "rekey --shares-dir NEWDIR",
		Short: "Replace the 5 unseal shares (same keys); the new shares are written before the old ones stop working",
		Long: `Create new unseal shares for the same root keyring. The server prepares them,
this command writes share-1.json ... share-5.json into --shares-dir (a new or
empty directory; each file 0600, written atomically and fsynced), and only
then tells the server to commit: until that commit the old shares keep
working, so a failure at any point never leaves a KMS nobody can unseal.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if rekeyDir == "" {
				return fmt.Errorf("--shares-dir is required: the new shares are written there, never printed")
			}
			if old := client.ShareFilesIn(rekeyDir); len(old) > 0 {
				return fmt.Errorf("%s already holds share files: give a new, empty directory, so the old shares stay intact until the new ones are committed", rekeyDir)
			}
			n, err := native()
			if err != nil {
				return err
			}
			id, shares, err := n.PrepareRekey(cmd.Context())
			if err != nil {
				return err
			}
			if err := client.WriteShareFiles(rekeyDir, shares); err != nil {
				return fmt.Errorf("writing the new shares failed, so the rekey was not committed and the old shares still work: %w", err)
			}
			for attempt := 0; ; attempt++ {
				err = n.CommitRekey(cmd.Context(), id)
				if err == nil {
					break
				}
				if attempt == 4 {
					return fmt.Errorf("the rekey was not committed (%v): the old shares still work and the files in %s are NOT valid; delete them and run ppml operator rekey again", err, rekeyDir)
				}
				time.Sleep(time.Second)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rekeyed: %d new shares in %s (any 3 unseal); the old shares no longer work\n", len(shares), rekeyDir)
			return nil
		},
	}
	rekeyCmd.Flags().StringVar(&rekeyDir, "shares-dir", "", "new, empty directory to write the new share-N.json files into")
	rewrapCmd := &cobra.Command{
		Use:   "rewrap",
		Short: "Re-wrap rows under older root key terms with the current term (background job on the replica, resumable)",
		Long: `Start the re-wrap job on the replica --kms points at and follow its progress
until it finishes. Interrupting this command does not stop the job; running it
again joins it, or resumes after a restart (rows already moved are skipped).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := native()
			if err != nil {
				return err
			}
			st, err := n.StartRewrap(cmd.Context())
			for err == nil && st.Running {
				fmt.Fprintf(cmd.ErrOrStderr(), "re-wrapping to term %d: %d rows scanned, %d moved\n", st.Term, st.Scanned, st.Rewrapped)
				time.Sleep(500 * time.Millisecond)
				st, err = n.Rewrap(cmd.Context())
			}
			if err != nil {
				return err
			}
			if st.Error != "" {
				return fmt.Errorf("re-wrap stopped after %d rows (%s); run ppml operator rewrap again to resume", st.Scanned, st.Error)
			}
			return f.print(cmd.OutOrStdout(), st, func(w io.Writer) {
				fmt.Fprintf(w, "re-wrap done: %d rows scanned, %d moved to term %d\n", st.Scanned, st.Rewrapped, st.Term)
			})
		},
	}
	initCmd.Flags().StringVar(&sharesDir, "shares-dir", "", "directory to write share-N.json files into")
	unsealCmd := &cobra.Command{
		Use:   "unseal --share-file F [--share-file F ...]",
		Short: "Submit root key shares to a sealed KMS (3 of 5 unseal it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(shareFiles) == 0 {
				return fmt.Errorf("give at least one --share-file (as written by ppml operator init)")
			}
			n, err := native()
			if err != nil {
				return err
			}
			for _, p := range shareFiles {
				s, err := client.ReadShareFile(p)
				if err != nil {
					return err
				}
				held, sealed, err := n.Unseal(cmd.Context(), s)
				if err != nil {
					return err
				}
				if !sealed {
					fmt.Fprintln(cmd.OutOrStdout(), "unsealed")
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "share %d accepted (%d/3)\n", s.Index, held)
			}
			return nil
		},
	}
	unsealCmd.Flags().StringArrayVar(&shareFiles, "share-file", nil, "share file (repeatable)")
	statusCmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the KMS is sealed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := native()
			if err != nil {
				return err
			}
			st, err := n.Status(cmd.Context())
			if err != nil {
				return err
			}
			return f.print(cmd.OutOrStdout(), st, func(w io.Writer) {
				fmt.Fprintf(w, "sealed: %v\ninitialized: %v\nroot key provider: %v\nroot key term: %v\n", st["sealed"], st["initialized"], st["root_key_provider"], st["term"])
			})
		},
	}
	cmd.AddCommand(newImportBigDLCmd())
	for _, c := range []*cobra.Command{initCmd, unsealCmd, statusCmd, rotateCmd, rekeyCmd, rewrapCmd} {
		c.Flags().StringVar(&f.kms, "kms", os.Getenv("PPML_KMS"), "KMS URL (env PPML_KMS)")
		c.Flags().StringVar(&f.caFile, "ca-file", os.Getenv("PPML_CA_FILE"), "PEM CA certificate(s) to trust besides the system roots (env PPML_CA_FILE)")
		f.outputFlag.register(c)
		adminTokenFlag(c, &tokenFile)
		cmd.AddCommand(c)
	}
	return cmd
}
