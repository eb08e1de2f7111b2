package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/ppml-project/ppml/migrate/bigdlkms"
	"github.com/ppml-project/ppml/server"
)

func newImportBigDLCmd() *cobra.Command {
	var (
		cfg                                      server.Config
		from, rootFile, user, tokenFile, primary string
		dataKeys                                 []string
	)
	cmd := &cobra.Command{
		Use:   "import-bigdl-kms --from kms.db --upstream-root-key-file F --user U --token-file T --primary-key PK [--data-key DK ...]",
		Short: "Move a user's keys from an upstream BigDL KMS database into this KMS (offline)",
		Long: `Read an upstream BigDL KMS database (kms.db) and import one user, one
primary key and its data keys into this KMS's store, so that existing BigDL
clients read the same data keys from ppml. Upstream stores names as MD5
hashes, so the names must be given. Keys are re-wrapped with AES-GCM under
this KMS's root key; the upstream database is only read. Run it with the
server stopped (SQLite) or against the server's --db (PostgreSQL), with the
same --data-dir / --root-key-file as the server (file root key provider;
a Shamir-sealed store cannot be opened offline).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" || rootFile == "" || user == "" || tokenFile == "" || primary == "" {
				return errors.New("--from, --upstream-root-key-file, --user, --token-file and --primary-key are required")
			}
			root, err := bigdlkms.ReadRootKeyFile(rootFile)
			if err != nil {
				return err
			}
			token, err := readTrimmed(tokenFile, "--token-file")
			if err != nil {
				return err
			}
			up, err := bigdlkms.Open(from)
			if err != nil {
				return err
			}
			defer up.Close()
			cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			core, err := server.OpenCore(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer core.Close()
			rep, err := bigdlkms.Import{User: user, Token: token, RootKey: root, PrimaryKey: primary, DataKeys: dataKeys}.Run(cmd.Context(), up, core.Service)
			for _, l := range rep.Lines {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "upstream kms.db (SQLite)")
	f.StringVar(&rootFile, "upstream-root-key-file", "", "file holding upstream's ROOT_KEY (base64)")
	f.StringVar(&user, "user", "", "upstream user name")
	f.StringVar(&tokenFile, "token-file", "", "file holding the user's token (checked against upstream, then stored as an argon2id hash)")
	f.StringVar(&primary, "primary-key", "", "primary key name to import")
	f.StringArrayVar(&dataKeys, "data-key", nil, "data key name made under --primary-key (repeatable)")
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "this KMS's data directory (as ppml serve --data-dir)")
	f.StringVar(&cfg.DB, "db", "", "this KMS's store, as ppml serve --db")
	f.StringVar(&cfg.RootKeyFile, "root-key-file", "", "this KMS's root key file, as ppml serve --root-key-file (default <data-dir>/root.key)")
	return cmd
}
