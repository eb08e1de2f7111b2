// Command testsummary sits behind `go test -json` in scripts/test.sh: it
// prints what plain `go test` would (package results, and the output of
// failed or skipped tests), records the run's counts in a state file, and
// with -report prints the summary of every recorded run: packages, tests
// passed, failed and skipped (skipped ones by name), fuzz executions, and
// the bar of 0 skipped. Its last line is "N passed, N failed, N skipped"
// alone, which CI reads.
//
//	go test -json ./... | testsummary -state F -label tests
//	testsummary -state F -report
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// run is what one `go test` invocation did.
type run struct {
	Label        string   `json:"label"`
	Packages     int      `json:"packages"`
	NoTests      int      `json:"no_tests"`
	FailedPkgs   []string `json:"failed_packages"`
	Passed       int      `json:"passed"`
	Failed       []string `json:"failed"`
	Skipped      []string `json:"skipped"`
	Excluded     []string `json:"excluded"` // skips that say why: "EXCLUDED ..." in their output
	FuzzTargets  int      `json:"fuzz_targets"`
	FuzzExecs    int64    `json:"fuzz_execs"`
	NonJSONLines int      `json:"non_json_lines"`
}

var execsRE = regexp.MustCompile(`^fuzz: elapsed: \S+, execs: (\d+) `)

// filter copies the plain-go-test view of events from r to w and counts.
func filter(r io.Reader, w io.Writer, label string) (*run, error) {
	res := &run{Label: label}
	held := map[string][]string{} // package/test -> output, shown if it fails or skips
	fuzz := map[string]int64{}    // package/test -> last reported execs
	pkgs := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			res.NonJSONLines++ // e.g. a build error, printed as is
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		key := e.Package + "/" + e.Test
		if e.Test == "" {
			switch e.Action {
			case "output", "build-output":
				if e.Output != "PASS\n" { // plain go test prints only the ok line
					fmt.Fprint(w, e.Output)
				}
				if m := execsRE.FindStringSubmatch(e.Output); m != nil {
					n, _ := strconv.ParseInt(m[1], 10, 64)
					fuzz[key] = n
				}
			case "pass", "fail", "skip":
				if !pkgs[e.Package] {
					pkgs[e.Package] = true
					res.Packages++
				}
				if e.Action == "skip" {
					res.NoTests++
				}
				if e.Action == "fail" {
					res.FailedPkgs = append(res.FailedPkgs, e.Package)
					unfinished(res, held, e.Package, w)
				}
			}
			continue
		}
		switch e.Action {
		case "output":
			held[key] = append(held[key], e.Output)
			if m := execsRE.FindStringSubmatch(e.Output); m != nil {
				n, _ := strconv.ParseInt(m[1], 10, 64)
				fuzz[key] = n
			}
		case "pass":
			res.Passed++
			delete(held, key)
		case "fail", "skip":
			name := e.Package + "." + e.Test
			switch reason := excludedReason(held[key]); {
			case e.Action == "fail":
				res.Failed = append(res.Failed, name)
			case reason != "":
				res.Excluded = append(res.Excluded, name+": "+reason)
			default:
				res.Skipped = append(res.Skipped, name)
			}
			for _, o := range held[key] {
				fmt.Fprint(w, o)
			}
			delete(held, key)
		}
	}
	for _, n := range fuzz {
		if n > 0 {
			res.FuzzTargets++
			res.FuzzExecs += n
		}
	}
	return res, sc.Err()
}

// unfinished reports the tests of a failed package that never ended: a
// timeout or a crash kills the test binary with no "fail" event for the
// running tests, and their output (the goroutine dump) would be lost.
func unfinished(res *run, held map[string][]string, pkg string, w io.Writer) {
	var keys []string
	for k := range held {
		if strings.HasPrefix(k, pkg+"/") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, o := range held[k] {
			fmt.Fprint(w, o)
		}
		res.Failed = append(res.Failed, pkg+"."+strings.TrimPrefix(k, pkg+"/")+" (did not finish: the test binary timed out or crashed)")
		delete(held, k)
	}
}

// merge adds up runs with the same label (the fuzz targets run one by one).
func merge(runs []run) []run {
	var out []run
	at := map[string]int{}
	for _, r := range runs {
		i, seen := at[r.Label]
		if !seen {
			at[r.Label] = len(out)
			out = append(out, r)
			continue
		}
		m := &out[i]
		m.Packages += r.Packages
		m.NoTests += r.NoTests
		m.FailedPkgs = append(m.FailedPkgs, r.FailedPkgs...)
		m.Passed += r.Passed
		m.Failed = append(m.Failed, r.Failed...)
		m.Skipped = append(m.Skipped, r.Skipped...)
		m.Excluded = append(m.Excluded, r.Excluded...)
		m.FuzzTargets += r.FuzzTargets
		m.FuzzExecs += r.FuzzExecs
		m.NonJSONLines += r.NonJSONLines
	}
	return out
}

// excludedReason is the text of an "EXCLUDED (...)" skip message, the form a
// test that cannot run here uses to say so (see interop/bigdl_test.go).
func excludedReason(output []string) string {
	for _, o := range output {
		if i := strings.Index(o, "EXCLUDED ("); i >= 0 {
			return strings.TrimSpace(o[i:])
		}
	}
	return ""
}

func report(w io.Writer, runs []run) (ok bool) {
	runs = merge(runs)
	var passed, failed, skipped int
	var execs int64
	var skippedNames, failedPkgs, excluded []string
	fmt.Fprintln(w, "\n== test summary ==")
	for _, r := range runs {
		fmt.Fprintf(w, "%-10s %3d packages (%d without tests, %d failed): %d passed, %d failed, %d skipped, %d excluded",
			r.Label+":", r.Packages, r.NoTests, len(r.FailedPkgs), r.Passed, len(r.Failed), len(r.Skipped), len(r.Excluded))
		if r.FuzzTargets > 0 {
			fmt.Fprintf(w, "; %d fuzz targets, %d executions", r.FuzzTargets, r.FuzzExecs)
		}
		fmt.Fprintln(w)
		passed += r.Passed
		failed += len(r.Failed)
		skipped += len(r.Skipped)
		execs += r.FuzzExecs
		skippedNames = append(skippedNames, r.Skipped...)
		excluded = append(excluded, r.Excluded...)
		failedPkgs = append(failedPkgs, r.FailedPkgs...)
		for _, f := range r.Failed {
			fmt.Fprintf(w, "  FAILED %s\n", f)
		}
	}
	fmt.Fprintf(w, "fuzz executions: %d\n", execs)
	for _, x := range excluded {
		fmt.Fprintf(w, "excluded (cannot run here, says why): %s\n", x)
	}
	slices.Sort(skippedNames)
	if len(skippedNames) == 0 {
		fmt.Fprintln(w, "bar: 0 skipped: met")
	} else {
		fmt.Fprintf(w, "bar: 0 skipped: NOT met, %d skipped:\n  %s\n", len(skippedNames), strings.Join(skippedNames, "\n  "))
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", passed, failed, skipped+len(excluded))
	return failed == 0 && len(failedPkgs) == 0 && skipped == 0
}

func main() {
	state := flag.String("state", "", "file collecting the counts of each run (JSON lines)")
	label := flag.String("label", "tests", "name of this run in the summary")
	doReport := flag.Bool("report", false, "print the summary of the runs in -state; exit 1 on failures or skips")
	flag.Parse()
	if *state == "" {
		fmt.Fprintln(os.Stderr, "testsummary: -state FILE is required")
		os.Exit(2)
	}
	if *doReport {
		b, err := os.ReadFile(*state)
		if err != nil && !os.IsNotExist(err) {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
		var runs []run
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r run
			if l != "" && json.Unmarshal([]byte(l), &r) == nil {
				runs = append(runs, r)
			}
		}
		if !report(os.Stdout, runs) {
			os.Exit(1)
		}
		return
	}
	res, err := filter(os.Stdin, os.Stdout, *label)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary: reading go test -json:", err)
		os.Exit(2)
	}
	b, _ := json.Marshal(res)
	f, err := os.OpenFile(*state, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = f.Write(append(b, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary: writing", *state+":", err)
		os.Exit(2)
	}
}
