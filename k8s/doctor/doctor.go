// Package doctor checks the prerequisites of BigDL PPML on Kubernetes and
// the troubleshooting items of its prerequisites page, and says for each
// failed check what is wrong and which command fixes it.
package doctor

import (
	"context"
	"fmt"
	"time"

	"github.com/ppml-project/ppml/k8s/kube"
	"github.com/ppml-project/ppml/k8s/setup"
)

// Check is the outcome of one check. A skipped check (not applicable or
// not configured) counts as OK.
type Check struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"`
	// Detail says what was found when the check passed or was skipped.
	Detail string `json:"detail,omitempty"`
	// Problem says what is wrong; Fix is the command (or step) that fixes it.
	Problem string `json:"problem,omitempty"`
	Fix     string `json:"fix,omitempty"`
}

func pass(name, detail string) Check { return Check{Name: name, OK: true, Detail: detail} }
func skip(name, detail string) Check {
	return Check{Name: name, OK: true, Skipped: true, Detail: detail}
}
func fail(name, problem, fix string) Check {
	return Check{Name: name, Problem: problem, Fix: fix}
}

// Options select what to check.
type Options struct {
	// Namespace of the Spark jobs and Secrets ("default" when empty).
	Namespace string
	// ServiceAccount, Binding and TokenSecret default to the names of
	// package setup (spark, spark-role, spark-service-account-token).
	ServiceAccount, Binding, TokenSecret string
	// KMSNamespace holds the KMS's ppml-root-key and ppml-admin-token
	// Secrets (Namespace when empty).
	KMSNamespace string

	// KMSURL (https://host:9000) enables the KMS checks; ASURL (default
	// KMSURL) the Attestation Service check. CAFile is trusted besides the
	// system roots.
	KMSURL, ASURL, CAFile string
	// PCCSURL enables the PCCS check; PCCSCAFile is trusted for it.
	PCCSURL, PCCSCAFile string

	// DevRoot is prefixed to /dev and /proc paths ("/" when empty); TEE is
	// auto (default), sgx, tdx or none.
	DevRoot, TEE string

	// Timeout bounds each network call (10 s when 0).
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.ServiceAccount == "" {
		o.ServiceAccount = setup.DefaultServiceAccount
	}
	if o.Binding == "" {
		o.Binding = setup.DefaultBinding
	}
	if o.TokenSecret == "" {
		o.TokenSecret = setup.DefaultTokenSecret
	}
	if o.KMSNamespace == "" {
		o.KMSNamespace = o.Namespace
	}
	if o.ASURL == "" {
		o.ASURL = o.KMSURL
	}
	if o.DevRoot == "" {
		o.DevRoot = "/"
	}
	if o.TEE == "" {
		o.TEE = "auto"
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	return o
}

// Run runs every check. c may be nil, with loadErr saying why no client
// could be built; the cluster checks then fail with that reason.
func Run(ctx context.Context, c *kube.Client, loadErr error, opts Options) []Check {
	o := opts.withDefaults()
	var out []Check
	if c == nil {
		msg := "no Kubernetes client"
		if loadErr != nil {
			msg = loadErr.Error()
		}
		out = append(out, fail("cluster reachable", msg, "ppml doctor --kubeconfig PATH (or set KUBECONFIG)"))
	} else {
		out = append(out, ClusterChecks(ctx, c, o)...)
	}
	out = append(out, ServiceChecks(ctx, o)...)
	out = append(out, DeviceChecks(o)...)
	return out
}

// Failed counts the checks that failed.
func Failed(checks []Check) int {
	n := 0
	for _, c := range checks {
		if !c.OK {
			n++
		}
	}
	return n
}

// Error is returned by callers when checks failed.
type Error struct{ Failed, Total int }

func (e *Error) Error() string { return fmt.Sprintf("%d of %d checks failed", e.Failed, e.Total) }

// ExitCode is 1 (used by the ppml command).
func (e *Error) ExitCode() int { return 1 }
