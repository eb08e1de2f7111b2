package doctor

import (
	"fmt"
	"io"
)

// Report is the outcome of a doctor run, as ppml doctor --output json
// prints it (keys in name order).
type Report struct {
	Checks    []Check `json:"checks"`
	Failed    int     `json:"failed"`
	Namespace string  `json:"namespace"`
	OK        bool    `json:"ok"`
}

// NewReport sums up checks run for namespace.
func NewReport(namespace string, checks []Check) Report {
	failed := Failed(checks)
	return Report{Checks: checks, Failed: failed, Namespace: namespace, OK: failed == 0}
}

// Err is the *Error of a report with failed checks, else nil.
func (r Report) Err() error {
	if r.Failed > 0 {
		return &Error{Failed: r.Failed, Total: len(r.Checks)}
	}
	return nil
}

// WriteText writes one line per check (a failed one with its fix) and,
// when none failed, says so.
func (r Report) WriteText(w io.Writer) {
	for _, c := range r.Checks {
		switch {
		case !c.OK:
			fmt.Fprintf(w, "FAIL  %s: %s\n      fix: %s\n", c.Name, c.Problem, c.Fix)
		case c.Skipped:
			fmt.Fprintf(w, "skip  %s: %s\n", c.Name, c.Detail)
		default:
			d := ""
			if c.Detail != "" {
				d = ": " + c.Detail
			}
			fmt.Fprintf(w, "ok    %s%s\n", c.Name, d)
		}
	}
	if r.OK {
		fmt.Fprintf(w, "all %d checks passed\n", len(r.Checks))
	}
}
