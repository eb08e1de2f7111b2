package bigdlkms

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ppml-project/ppml/fault"
	"github.com/ppml-project/ppml/kms"
)

// Import moves one user's primary key and data keys from an upstream
// database into ppml. Keys already present in ppml are left alone and
// reported; the upstream database is never modified.
type Import struct {
	User, Token string
	RootKey     []byte // upstream ROOT_KEY, decoded
	PrimaryKey  string
	DataKeys    []string
}

// ReadRootKeyFile reads upstream's ROOT_KEY (standard base64, surrounding
// white space ignored) from a file.
func ReadRootKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading --upstream-root-key-file: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, errors.New("--upstream-root-key-file must hold upstream's ROOT_KEY: standard base64")
	}
	return key, nil
}

// Report says what happened to each name.
type Report struct {
	Lines []string
}

// Run performs the import into svc.
func (im Import) Run(ctx context.Context, db *DB, svc *kms.Service) (Report, error) {
	var r Report
	if err := db.CheckUser(ctx, im.User, im.Token); err != nil {
		return r, err
	}
	// Read and unwrap everything first: a wrong root key or name changes nothing.
	pk, err := db.Key(ctx, im.User, im.PrimaryKey, im.RootKey)
	if err != nil {
		return r, err
	}
	dks := make([][]byte, len(im.DataKeys))
	for i, name := range im.DataKeys {
		if dks[i], err = db.Key(ctx, im.User, name, pk); err != nil {
			return r, err
		}
	}
	c := kms.Caller{ID: kms.BigDLOwner(im.User), API: "operator"}
	switch err := svc.CreateBigDLUser(ctx, c, im.User, im.Token); {
	case err == nil:
		r.Lines = append(r.Lines, fmt.Sprintf("user [%s]: created (token stored as an argon2id hash)", im.User))
	case fault.KindOf(err) == fault.Conflict:
		if err := svc.AuthenticateBigDLUser(ctx, im.User, im.Token); err != nil {
			return r, fmt.Errorf("user [%s] already exists in ppml with another token", im.User)
		}
		r.Lines = append(r.Lines, fmt.Sprintf("user [%s]: already present", im.User))
	default:
		return r, err
	}
	switch _, err := svc.ImportNamedPrimaryKey(ctx, c, im.PrimaryKey, pk); {
	case err == nil:
		r.Lines = append(r.Lines, fmt.Sprintf("primary key [%s]: imported (%d bits), re-wrapped with AES-GCM", im.PrimaryKey, len(pk)*8))
	case fault.KindOf(err) == fault.Conflict:
		r.Lines = append(r.Lines, fmt.Sprintf("primary key [%s]: already present, kept", im.PrimaryKey))
	default:
		return r, err
	}
	for i, name := range im.DataKeys {
		switch err := svc.ImportNamedDataKey(ctx, c, im.PrimaryKey, name, dks[i]); {
		case err == nil:
			r.Lines = append(r.Lines, fmt.Sprintf("data key [%s]: imported (%d bits)", name, len(dks[i])*8))
		case fault.KindOf(err) == fault.Conflict:
			r.Lines = append(r.Lines, fmt.Sprintf("data key [%s]: already present, kept", name))
		default:
			return r, err
		}
	}
	return r, nil
}
