package setup

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// View is the report as ppml k8s setup --output json prints it.
func (r Report) View() any {
	return struct {
		Report
		Changed bool `json:"changed"`
	}{r, r.Changed()}
}

// WriteText writes one line per object, when the token expires, and
// whether anything changed.
func (r Report) WriteText(w io.Writer) {
	for _, it := range r.Items {
		note := ""
		if it.Note != "" {
			note = " (" + it.Note + ")"
		}
		fmt.Fprintf(w, "%s/%s %s%s\n", strings.ToLower(it.Kind), it.Name, it.Result, note)
	}
	if !r.TokenExpires.IsZero() {
		fmt.Fprintf(w, "the token of the kubeconfig expires %s: run ppml k8s setup again before then to renew it\n", r.TokenExpires.UTC().Format(time.RFC3339))
	}
	if len(r.Items) > 0 {
		if r.Changed() {
			fmt.Fprintf(w, "namespace %s is set up for BigDL PPML jobs\n", r.Namespace)
		} else {
			fmt.Fprintf(w, "nothing to do: namespace %s was already set up\n", r.Namespace)
		}
	}
}
