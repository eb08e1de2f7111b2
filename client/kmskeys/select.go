package kmskeys

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/dataformat/keysource"
)

// Choice is where a command's data keys come from, as its flags name it: at
// most one of the key sources may be set.
type Choice struct {
	// PlaintextKeyFile is BigDL's plainText mode: a file whose first line is
	// a base64 AES primary key (--primary-key-plaintext-file).
	PlaintextKeyFile string
	// KMS is an eHSM-compatible KMS, ours or Intel's, when KMS.URL is set
	// (--kms, --app-id, --api-key-file); KeyID is the primary key for new
	// data keys (--key-id).
	KMS   client.Config
	KeyID string
	// BigDL is a BigDL KMS, ours or upstream's, when BigDL.URL is set; nil
	// when the command offers none.
	BigDL *BigDLLogin
}

// BigDLLogin names a BigDL KMS user and the primary key its data keys are
// made under (--bigdl-kms, --bigdl-user, --bigdl-token-file,
// --bigdl-primary-key).
type BigDLLogin struct {
	URL, User, TokenFile, PrimaryKey string
	CAFile                           string // PEM CA certificate(s) to trust besides the system roots
}

// ErrNoSource says that the choice names no key source; each command says
// which ones it offers.
var ErrNoSource = errors.New("no key source")

// Select opens the one key source the choice names.
func Select(c Choice) (keysource.Source, error) {
	offered := []string{"--primary-key-plaintext-file", "--kms"}
	given := 0
	for _, set := range []bool{c.PlaintextKeyFile != "", c.KMS.URL != "", c.BigDL != nil && c.BigDL.URL != ""} {
		if set {
			given++
		}
	}
	if c.BigDL != nil {
		offered = append(offered, "--bigdl-kms")
	}
	if given > 1 {
		return nil, fmt.Errorf("give one key source: %s or %s", strings.Join(offered[:len(offered)-1], ", "), offered[len(offered)-1])
	}
	switch {
	case c.PlaintextKeyFile != "":
		p, err := keysource.LoadPlainTextFile(c.PlaintextKeyFile)
		if err != nil {
			return nil, err
		}
		return p, nil
	case c.KMS.URL != "":
		if c.KMS.AppID == "" || c.KMS.APIKey == "" {
			return nil, errors.New("--kms needs --app-id and --api-key-file (or PPML_APP_ID / PPML_API_KEY)")
		}
		e, err := client.NewEHSM(c.KMS)
		if err != nil {
			return nil, err
		}
		return &EHSM{Client: e, KeyID: c.KeyID}, nil
	case c.BigDL != nil && c.BigDL.URL != "":
		return c.BigDL.open()
	}
	return nil, ErrNoSource
}

func (l *BigDLLogin) open() (keysource.Source, error) {
	if l.TokenFile == "" {
		return nil, errors.New("--bigdl-kms needs --bigdl-user and --bigdl-token-file")
	}
	b, err := os.ReadFile(l.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("reading --bigdl-token-file: %w", err)
	}
	c, err := client.NewBigDLKMS(l.URL, l.User, strings.TrimSpace(string(b)), l.CAFile)
	if err != nil {
		return nil, err
	}
	return &BigDL{Client: c, PrimaryKey: l.PrimaryKey}, nil
}
