package client

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ppml-project/ppml/internal/atomicfile"
)

// shareFile is the content of a share-N.json file (keys in this order).
type shareFile struct {
	Content string `json:"content"` // standard base64
	Index   int    `json:"index"`
}

// WriteShareFiles writes each share to share-N.json in dir (created 0700),
// atomically, fsynced and 0600, so a crash never leaves a half-written share.
func WriteShareFiles(dir string, shares []Share) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, s := range shares {
		b, _ := json.Marshal(shareFile{Content: base64.StdEncoding.EncodeToString(s.Content), Index: s.Index})
		if err := atomicfile.WriteFile(filepath.Join(dir, fmt.Sprintf("share-%d.json", s.Index)), append(b, '\n'), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ShareFilesIn lists the share-N.json files in dir.
func ShareFilesIn(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "share-*.json"))
	return m
}

// ReadShareFile reads a share written by WriteShareFiles.
func ReadShareFile(path string) (Share, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Share{}, err
	}
	var s shareFile
	if err := json.Unmarshal(b, &s); err != nil {
		return Share{}, fmt.Errorf("%s is not a share file {\"index\":N,\"content\":\"...\"}: %v", path, err)
	}
	content, err := base64.StdEncoding.DecodeString(s.Content)
	if err != nil {
		return Share{}, fmt.Errorf("%s: content is not base64", path)
	}
	return Share{Index: s.Index, Content: content}, nil
}

// ReadOrCreateTokenFile returns the BigDL KMS user token in path (trimmed).
// A missing file is created (0600, atomically) with a random token, and
// created says so: remove it again when the user is not created after all.
func ReadOrCreateTokenFile(path string) (token string, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		raw := make([]byte, 24)
		if _, err := rand.Read(raw); err != nil {
			return "", false, err
		}
		token = base64.RawURLEncoding.EncodeToString(raw)
		if err := atomicfile.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			return "", false, fmt.Errorf("writing --bigdl-token-file: %w", err)
		}
		return token, true, nil
	case err != nil:
		return "", false, fmt.Errorf("reading --bigdl-token-file: %w", err)
	}
	token = strings.TrimSpace(string(b))
	if token == "" {
		return "", false, fmt.Errorf("--bigdl-token-file %s is empty: put the user's token in it, or remove it to have one generated", path)
	}
	return token, false, nil
}

// ReadAdminTokenFile returns the admin token in path without trailing
// newlines and spaces, or "" when the file cannot be read (the server then
// answers whether it needs one).
func ReadAdminTokenFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(b), "\r\n ")
}
