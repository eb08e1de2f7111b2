package source_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/collateral"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/quote/source"
)

func simQuote(t *testing.T, s *sim.SimTEE) *abi.Quote {
	t.Helper()
	raw, err := s.Quote(abi.SGX, sim.Measurements{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := abi.ParseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func reason(err error) string {
	var se *source.Error
	if errors.As(err, &se) {
		return se.Reason
	}
	return ""
}

// A simulated quote is verified against the simulation anchor with its own
// collateral, refused without it, and never against the Intel root's
// collateral sources.
func TestSimulationAnchor(t *testing.T) {
	s, err := sim.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	q := simQuote(t, s)
	ctx := context.Background()
	intelCols := &source.Collateral{Sources: []source.Named{{Name: "--collateral-dir", Getter: failing{}}}}

	src, _ := source.New(source.Config{Collateral: intelCols, Sim: s, RefuseSimulated: true, Now: time.Now})
	res, err := src.Verify(ctx, q)
	if err != nil || !res.Verified || !res.Simulated {
		t.Fatalf("with the simulation anchor: %v %+v", err, res)
	}

	src, _ = source.New(source.Config{Collateral: intelCols, RefuseSimulated: true, Now: time.Now})
	res, err = src.Verify(ctx, q)
	if reason(err) != source.ReasonSimulated || res == nil || !res.Simulated || res.Verified {
		t.Fatalf("without the simulation anchor: %v %+v", err, res)
	}

	// The simulation root as the only anchor (ppml quote verify --sim-dir),
	// its collateral by TEE.
	src, _ = source.New(source.Config{Root: s.Root(), Collateral: source.SimCollateral{Sim: s}, Now: time.Now})
	if res, err := src.Verify(ctx, q); err != nil || !res.Verified || !res.Simulated {
		t.Fatalf("simulation root as the anchor: %v", err)
	}

	// The Intel root with the quote's own collateral: the chain is refused.
	col, _ := s.Collateral(abi.SGX)
	src, _ = source.New(source.Config{Collateral: source.Fixed{Collateral: col}, Now: time.Now})
	if res, err := src.Verify(ctx, q); err == nil || res.Verified || res.Failure != "pck_chain" {
		t.Fatalf("simulated chain against the Intel root: %v", err)
	}
}

type failing struct{}

func (failing) Get(context.Context, string, string, string) (*collateral.Collateral, error) {
	return nil, errors.New("not in the directory")
}

type stale struct{ col *collateral.Collateral }

func (s stale) Get(context.Context, string, string, string) (*collateral.Collateral, error) {
	return s.col, &collateral.StaleError{Err: errors.New("PCCS unreachable")}
}

// Sources are tried in order; their failures are named, a lone unnamed
// source's error is its own, and a stale answer is used only with Warn.
func TestCollateralSources(t *testing.T) {
	ctx := context.Background()
	want := &collateral.Collateral{TCBInfo: "x"}
	c := &source.Collateral{Sources: []source.Named{{Name: "--collateral-dir", Getter: failing{}}, {Name: "--pccs-url", Getter: failing{}}}}
	_, err := c.Get(ctx, "sgx", "00a067110000", "processor")
	if err == nil || err.Error() != "no collateral for sgx FMSPC 00a067110000 (processor CA): --collateral-dir: not in the directory; --pccs-url: not in the directory" {
		t.Fatalf("named sources: %v", err)
	}
	c = &source.Collateral{Sources: []source.Named{{Getter: failing{}}}}
	if _, err := c.Get(ctx, "sgx", "f", "processor"); err == nil || err.Error() != "not in the directory" {
		t.Fatalf("lone source: %v", err)
	}
	c = &source.Collateral{Sources: []source.Named{{Name: "--collateral-dir", Getter: failing{}}, {Name: "--collateral", Getter: source.Fixed{Collateral: want}}}}
	if got, err := c.Get(ctx, "sgx", "f", "processor"); err != nil || got != want {
		t.Fatalf("second source: %v", err)
	}
	c = &source.Collateral{NoSource: func(tee, fmspc, ca string) error { return errors.New("none for " + fmspc) }}
	if _, err := c.Get(ctx, "sgx", "f0", "processor"); err == nil || err.Error() != "none for f0" {
		t.Fatalf("no source: %v", err)
	}
	c = &source.Collateral{Sources: []source.Named{{Getter: stale{want}}}}
	if _, err := c.Get(ctx, "sgx", "f", "processor"); err == nil || !strings.Contains(err.Error(), "PCCS unreachable") {
		t.Fatalf("stale without Warn: %v", err)
	}
	var warned error
	c.Warn = func(err error) { warned = err }
	if got, err := c.Get(ctx, "sgx", "f", "processor"); err != nil || got != want || warned == nil {
		t.Fatalf("stale with Warn: %v %v", err, warned)
	}
}

// Settings open to the same sources every consumer used to build itself.
func TestSettings(t *testing.T) {
	dir := t.TempDir()
	s, err := sim.Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	file := s.CollateralPath(abi.SGX)
	g, err := source.CollateralSettings{File: file}.Open()
	if _, ok := g.(source.Fixed); err != nil || !ok {
		t.Fatalf("a lone file: %T %v", g, err)
	}
	g, err = source.CollateralSettings{File: file, Named: true}.Open()
	if _, ok := g.(*source.Collateral); err != nil || !ok {
		t.Fatalf("a named file: %T %v", g, err)
	}
	if _, err := (source.CollateralSettings{File: dir + "/missing.json", Named: true}).Open(); err == nil || !strings.HasPrefix(err.Error(), "--collateral: ") {
		t.Fatalf("named load error: %v", err)
	}
	if _, err := (source.CollateralSettings{Dir: dir + "/missing"}).Open(); err == nil || strings.HasPrefix(err.Error(), "--collateral-dir") {
		t.Fatalf("unnamed load error: %v", err)
	}
	g, _ = source.CollateralSettings{}.Open()
	if c, ok := g.(*source.Collateral); !ok || !c.Empty() {
		t.Fatalf("no settings: %T", g)
	}

	root, got, err := source.Anchor(dir, "")
	if err != nil || got == nil || !root.Equal(s.Root()) {
		t.Fatalf("simulation anchor: %v", err)
	}
	if root, _, err := source.Anchor("", ""); err != nil || root != nil {
		t.Fatalf("Intel anchor: %v %v", root, err)
	}
	if _, _, err := source.Anchor(dir, file); err == nil || !strings.Contains(err.Error(), "give only one") {
		t.Fatalf("two anchors: %v", err)
	}
	if _, _, err := source.Anchor("", file); err == nil || !strings.HasPrefix(err.Error(), "--root "+file+": ") {
		t.Fatalf("a collateral file as the PEM anchor: %v", err)
	}
}
