package material

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// PasswordInput says where ReadPassword takes the password from. It is never
// taken from the command line.
type PasswordInput struct {
	// File is --password-file: the password is its content with trailing
	// newlines removed. "-" means standard input.
	File string
	// Stdin is standard input: read to EOF when it is not a terminal,
	// otherwise (an *os.File that is a terminal) the password is asked twice
	// with echo off.
	Stdin io.Reader
	// Prompt receives the prompts (normally os.Stderr).
	Prompt io.Writer
}

// maxPasswordInput bounds what is read from a file or pipe.
const maxPasswordInput = 64 << 10

// ReadPassword reads and validates the password. Errors never contain it.
func ReadPassword(in PasswordInput) ([]byte, error) {
	var pw []byte
	var err error
	switch {
	case in.File == "-":
		if in.Stdin == nil {
			return nil, errors.New("--password-file -: no standard input")
		}
		pw, err = readLimited(in.Stdin, "standard input")
	case in.File != "":
		f, oerr := os.Open(in.File)
		if oerr != nil {
			return nil, fmt.Errorf("password file: %w", oerr)
		}
		pw, err = readLimited(f, "password file "+in.File)
		f.Close()
	case in.Stdin != nil && terminalFd(in.Stdin) < 0:
		pw, err = readLimited(in.Stdin, "standard input")
	case in.Stdin != nil:
		pw, err = promptTwice(terminalFd(in.Stdin), in.Prompt)
	default:
		return nil, errors.New("no password source: use --password-file, a pipe on standard input or a terminal")
	}
	if err != nil {
		return nil, err
	}
	if err := ValidatePassword(pw); err != nil {
		clear(pw)
		if errors.Is(err, ErrEmptyPassword) && in.File != "" && in.File != "-" {
			return nil, fmt.Errorf("password file %s: %w", in.File, err)
		}
		return nil, err
	}
	return pw, nil
}

func readLimited(r io.Reader, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxPasswordInput+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if len(b) > maxPasswordInput {
		clear(b)
		return nil, fmt.Errorf("%s is larger than %d bytes; it should hold only the password", what, maxPasswordInput)
	}
	t := bytes.TrimRight(b, "\r\n")
	out := append([]byte(nil), t...)
	clear(b)
	return out, nil
}

func promptTwice(fd int, w io.Writer) ([]byte, error) {
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprint(w, "Password: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(w)
	if err != nil {
		return nil, fmt.Errorf("read password from terminal: %w", err)
	}
	if len(a) == 0 {
		return nil, ErrEmptyPassword
	}
	if err := ValidatePassword(a); err != nil {
		clear(a)
		return nil, err
	}
	fmt.Fprint(w, "Repeat password: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(w)
	if err != nil {
		clear(a)
		return nil, fmt.Errorf("read password from terminal: %w", err)
	}
	defer clear(b)
	if !bytes.Equal(a, b) {
		clear(a)
		return nil, errors.New("the two passwords do not match")
	}
	return a, nil
}

// terminalFd returns the descriptor of r when it is a terminal, else -1.
func terminalFd(r io.Reader) int {
	f, ok := r.(*os.File)
	if !ok || f == nil {
		return -1
	}
	fd := int(f.Fd())
	if !term.IsTerminal(fd) {
		return -1
	}
	return fd
}

// ReadPasswordFile reads a password chosen earlier (not checked against
// the rules for new ones) from path, "-" meaning stdin, without trailing
// newlines. Errors never contain it.
func ReadPasswordFile(path string, stdin io.Reader) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, maxPasswordInput))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("--password-file: %w", err)
	}
	pw := append([]byte(nil), bytes.TrimRight(b, "\r\n")...) // no string copy of the password
	clear(b)
	if len(pw) == 0 {
		return nil, fmt.Errorf("--password-file %s is empty", path)
	}
	return pw, nil
}
