package source

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/ppml-project/ppml/internal/limit"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/sim"
)

// CollateralSettings name the collateral sources of a command or server,
// tried in this order: one file, an offline directory, a PCS/PCCS endpoint.
type CollateralSettings struct {
	File         string // --collateral
	Dir          string // --collateral-dir
	PCCSURL      string // --pccs-url
	PCCSAPIKey   string
	PCCSCacheDir string // also store fetched collateral here
	// PCCSLimit bounds the fetches in flight (nil: unbounded, as a
	// one-shot command needs); PCCSNegativeTTL is how long a failed fetch
	// is remembered (0: collateral.DefaultNegativeTTL).
	PCCSLimit       *limit.Limiter
	PCCSNegativeTTL time.Duration
	Now             func() time.Time // the fetcher's clock
	// Named words errors with the setting names (--collateral,
	// --collateral-dir, --pccs-url), as a server with several sources
	// does; otherwise a lone source's own error is the message.
	Named    bool
	Warn     func(error)                       // see Collateral.Warn
	NoSource func(tee, fmspc, ca string) error // see Collateral.NoSource
}

// Open loads the file and the directory and returns the Getter: the file
// itself (Fixed) when it is the lone, unnamed source.
func (cs CollateralSettings) Open() (Getter, error) {
	c := &Collateral{Warn: cs.Warn, NoSource: cs.NoSource}
	add := func(name string, g Getter) {
		if !cs.Named {
			name = ""
		}
		c.Sources = append(c.Sources, Named{Name: name, Getter: g})
	}
	wrap := func(name string, err error) error {
		if cs.Named {
			return fmt.Errorf("%s: %w", name, err)
		}
		return err
	}
	if cs.File != "" {
		col, err := collateral.LoadFile(cs.File)
		if err != nil {
			return nil, wrap("--collateral", err)
		}
		add("--collateral", Fixed{Collateral: col})
	}
	if cs.Dir != "" {
		d, err := collateral.LoadDir(cs.Dir)
		if err != nil {
			return nil, wrap("--collateral-dir", err)
		}
		add("--collateral-dir", d)
	}
	if cs.PCCSURL != "" {
		add("--pccs-url", &collateral.Fetcher{BaseURL: cs.PCCSURL, APIKey: cs.PCCSAPIKey, CacheDir: cs.PCCSCacheDir, Now: cs.Now,
			Limit: cs.PCCSLimit, NegativeTTL: cs.PCCSNegativeTTL})
	}
	if f, ok := c.only().(Fixed); ok && !cs.Named {
		return f, nil
	}
	return c, nil
}

// only returns the lone source's Getter, or nil.
func (c *Collateral) only() Getter {
	if len(c.Sources) != 1 {
		return nil
	}
	return c.Sources[0].Getter
}

// Empty reports whether no source is configured.
func (c *Collateral) Empty() bool { return len(c.Sources) == 0 }

// Anchor returns the trust anchor a command names: the root of the
// simulation in simDir (which is returned too), a PEM file (--root), or
// neither (nil: the pinned Intel SGX Root CA).
func Anchor(simDir, rootFile string) (*x509.Certificate, *sim.SimTEE, error) {
	switch {
	case simDir != "" && rootFile != "":
		return nil, nil, errors.New("--root and --sim-dir both set a trust anchor: give only one")
	case simDir != "":
		s, err := sim.Load(simDir)
		if err != nil {
			return nil, nil, err
		}
		return s.Root(), s, nil
	case rootFile != "":
		root, err := ReadRoot("--root", rootFile)
		return root, nil, err
	}
	return nil, nil, nil
}
