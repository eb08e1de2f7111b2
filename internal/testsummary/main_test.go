package main

import (
	"bytes"
	"strings"
	"testing"
)

const events = `{"Action":"start","Package":"p/a"}
{"Action":"run","Package":"p/a","Test":"TestOK"}
{"Action":"output","Package":"p/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"pass","Package":"p/a","Test":"TestOK"}
{"Action":"run","Package":"p/a","Test":"TestBad"}
{"Action":"output","Package":"p/a","Test":"TestBad","Output":"    a_test.go:9: boom\n"}
{"Action":"fail","Package":"p/a","Test":"TestBad"}
{"Action":"output","Package":"p/a","Test":"TestGone","Output":"    a_test.go:12: no tool\n"}
{"Action":"skip","Package":"p/a","Test":"TestGone"}
{"Action":"run","Package":"p/a","Test":"TestHang"}
{"Action":"output","Package":"p/a","Test":"TestHang","Output":"panic: test timed out after 1s\n"}
{"Action":"output","Package":"p/a","Output":"FAIL\tp/a\t0.1s\n"}
{"Action":"fail","Package":"p/a"}
{"Action":"output","Package":"p/a","Test":"TestEngine","Output":"    a_test.go:20: EXCLUDED (docs/compatibility.md): no jar here\n"}
{"Action":"skip","Package":"p/a","Test":"TestEngine"}
{"Action":"output","Package":"p/b","Output":"?   \tp/b\t[no test files]\n"}
{"Action":"skip","Package":"p/b"}
{"Action":"output","Package":"p/c","Test":"FuzzX","Output":"fuzz: elapsed: 3s, execs: 1200 (400/sec), new interesting: 1 (total: 3)\n"}
{"Action":"output","Package":"p/c","Test":"FuzzX","Output":"fuzz: elapsed: 5s, execs: 5000 (900/sec), new interesting: 1 (total: 3)\n"}
{"Action":"pass","Package":"p/c","Test":"FuzzX"}
{"Action":"output","Package":"p/c","Output":"ok  \tp/c\t5.1s\n"}
{"Action":"pass","Package":"p/c"}
# github.com/x/y [build failed]
`

func TestFilterAndReport(t *testing.T) {
	var out bytes.Buffer
	r, err := filter(strings.NewReader(events), &out, "tests")
	if err != nil {
		t.Fatal(err)
	}
	o := out.String()
	// Plain go test's view: package lines, failed and skipped tests' output.
	for _, want := range []string{"FAIL\tp/a\t0.1s\n", "?   \tp/b\t[no test files]\n", "ok  \tp/c\t5.1s\n", "boom", "no tool", "# github.com/x/y [build failed]", "panic: test timed out"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if strings.Contains(o, "=== RUN   TestOK") {
		t.Error("a passing test's output was printed")
	}
	if r.Packages != 3 || r.NoTests != 1 || len(r.FailedPkgs) != 1 || r.Passed != 2 || len(r.Failed) != 2 || len(r.Skipped) != 1 || len(r.Excluded) != 1 ||
		r.FuzzTargets != 1 || r.FuzzExecs != 5000 || r.NonJSONLines != 1 {
		t.Fatalf("counts %+v", r)
	}
	var rep bytes.Buffer
	if report(&rep, []run{*r, {Label: "race", Packages: 1, Passed: 4}}) {
		t.Fatal("report with a failure and a skip says ok")
	}
	lines := strings.Split(strings.TrimSpace(rep.String()), "\n")
	if last := lines[len(lines)-1]; last != "6 passed, 2 failed, 2 skipped" {
		t.Fatalf("last line %q", last)
	}
	for _, want := range []string{"bar: 0 skipped: NOT met, 1 skipped:\n  p/a.TestGone", "FAILED p/a.TestBad", "p/a.TestHang (did not finish", "fuzz executions: 5000", "race:", "excluded (cannot run here, says why): p/a.TestEngine: EXCLUDED (docs/compatibility.md): no jar here"} {
		if !strings.Contains(rep.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, rep.String())
		}
	}
	rep.Reset()
	if !report(&rep, []run{{Label: "tests", Packages: 2, Passed: 3, Excluded: []string{"p.T: EXCLUDED (x)"}}}) || !strings.Contains(rep.String(), "bar: 0 skipped: met") {
		t.Fatalf("clean run:\n%s", rep.String())
	}
}
