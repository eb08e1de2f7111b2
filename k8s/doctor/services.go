package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/ppml-project/ppml/internal/tlsutil"
)

// ServiceChecks checks the KMS and AS (reachable with valid TLS, healthy,
// initialized and unsealed, ready) and the PCCS when configured.
func ServiceChecks(ctx context.Context, opts Options) []Check {
	o := opts.withDefaults()
	var out []Check
	if o.KMSURL == "" {
		out = append(out, skip("KMS", "not checked: pass --kms-url https://HOST:9000 (or set PPML_KMS)"))
	} else {
		out = append(out, kmsChecks(ctx, o)...)
	}
	if o.PCCSURL == "" {
		out = append(out, skip("PCCS", "not checked: pass --pccs-url when the KMS/AS or the images use a PCCS"))
	} else {
		out = append(out, pccsCheck(ctx, o))
	}
	return out
}

func httpClient(caFile string, o Options) (*http.Client, error) {
	cfg, err := tlsutil.ClientConfig(caFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr, Timeout: o.Timeout}, nil
}

type answer struct {
	status int
	body   []byte
}

func get(ctx context.Context, h *http.Client, url string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return answer{}, err
	}
	resp, err := h.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{resp.StatusCode, b}, nil
}

// connProblem turns a transport error into a problem and a fix.
func connProblem(what, url, caFlag string, err error) (string, string) {
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var cie x509.CertificateInvalidError
	var rec tls.RecordHeaderError
	switch {
	case errors.As(err, &uae):
		return fmt.Sprintf("TLS: the certificate of %s is signed by an unknown authority", url),
			fmt.Sprintf("pass %s with the CA of its certificate, e.g. kubectl get secret ssl-keys -o jsonpath='{.data.server\\.crt}' | base64 -d > ca.crt; %s ca.crt", caFlag, caFlag)
	case errors.As(err, &hne):
		return fmt.Sprintf("TLS: the certificate of %s is not valid for this host name: %v", url, hne),
			"use the host name in the certificate, or regenerate ssl-keys with it: ppml tls generate --dns HOST --apply (then restart the pods)"
	case errors.As(err, &cie):
		return fmt.Sprintf("TLS: the certificate of %s is invalid: %v", url, cie),
			"renew the certificate: ppml tls generate --apply (then restart the pods)"
	case errors.As(err, &rec):
		return fmt.Sprintf("%s at %s does not speak TLS", what, url), "use an https:// URL of a TLS listener"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("%s at %s does not answer (timeout)", what, url), "check the Service and NetworkPolicy: kubectl get svc,endpoints,networkpolicy"
	}
	return fmt.Sprintf("%s at %s is not reachable: %v", what, url, err),
		"check that it runs: kubectl get pods -l app.kubernetes.io/name=ppml; kubectl logs deploy/ppml (or statefulset/ppml); from outside the cluster: kubectl port-forward svc/ppml 9000"
}

func kmsChecks(ctx context.Context, o Options) []Check {
	base := strings.TrimRight(o.KMSURL, "/")
	h, err := httpClient(o.CAFile, o)
	if err != nil {
		return []Check{fail("KMS reachable (TLS valid)", fmt.Sprintf("--ca-file: %v", err), "pass a PEM CA certificate file with --ca-file")}
	}
	a, err := get(ctx, h, base+"/healthz")
	if err != nil {
		p, f := connProblem("the KMS", base, "--ca-file", err)
		return []Check{fail("KMS reachable (TLS valid)", p, f)}
	}
	out := []Check{}
	if a.status != http.StatusOK {
		out = append(out, fail("KMS reachable (TLS valid)", fmt.Sprintf("GET %s/healthz answered HTTP %d", base, a.status), "kubectl logs deploy/ppml (or statefulset/ppml)"))
	} else {
		out = append(out, pass("KMS reachable (TLS valid)", base))
	}

	const sealedName = "KMS initialized and unsealed"
	a, err = get(ctx, h, base+"/v1/operator/status")
	var st struct {
		Sealed          bool   `json:"sealed"`
		Initialized     bool   `json:"initialized"`
		RootKeyProvider string `json:"root_key_provider"`
		OpenEnrollment  *bool  `json:"open_enrollment"`
	}
	switch {
	case err != nil:
		out = append(out, fail(sealedName, fmt.Sprintf("GET /v1/operator/status: %v", err), "kubectl logs deploy/ppml"))
	case a.status != http.StatusOK || json.Unmarshal(a.body, &st) != nil:
		out = append(out, fail(sealedName, fmt.Sprintf("GET /v1/operator/status answered HTTP %d: %.200s", a.status, a.body), "is this a ppml KMS? check --kms-url"))
	case !st.Initialized && st.RootKeyProvider == "shamir":
		out = append(out, fail(sealedName, "the KMS has no root key yet", fmt.Sprintf("ppml operator init --kms %s --admin-token-file admin.token --shares-dir shares", base)))
	case st.Sealed:
		out = append(out, fail(sealedName, "the KMS is sealed (every replica is unsealed separately)", fmt.Sprintf("ppml operator unseal --kms %s --admin-token-file admin.token --share-file shares/share-1.json --share-file ... (3 of 5)", base)))
	default:
		out = append(out, pass(sealedName, "root key provider "+st.RootKeyProvider))
	}

	if st.OpenEnrollment != nil {
		out = append(out, enrollmentCheck(base, *st.OpenEnrollment))
	}

	a, err = get(ctx, h, base+"/readyz")
	switch {
	case err != nil:
		out = append(out, fail("KMS ready", fmt.Sprintf("GET /readyz: %v", err), "kubectl logs deploy/ppml"))
	case a.status != http.StatusOK:
		out = append(out, fail("KMS ready", fmt.Sprintf("GET /readyz answered HTTP %d: %.200s (sealed, or the store is unreachable)", a.status, strings.TrimSpace(string(a.body))),
			"unseal it (see above) or check the store: kubectl logs deploy/ppml; the --db PostgreSQL URL and the ppml-postgres Secret"))
	default:
		out = append(out, pass("KMS ready", ""))
	}

	asBase := strings.TrimRight(o.ASURL, "/")
	a, err = get(ctx, h, asBase+"/v1/attestation/jwks")
	switch {
	case err != nil:
		p, f := connProblem("the Attestation Service", asBase, "--ca-file", err)
		out = append(out, fail("AS reachable", p, f))
	case a.status == http.StatusNotFound:
		out = append(out, fail("AS reachable", fmt.Sprintf("%s does not serve the Attestation Service (GET /v1/attestation/jwks: 404)", asBase), "run a ppml version with the Attestation Service, or pass --as-url"))
	case a.status != http.StatusOK:
		out = append(out, fail("AS reachable", fmt.Sprintf("GET %s/v1/attestation/jwks answered HTTP %d", asBase, a.status), "kubectl logs deploy/ppml"))
	default:
		out = append(out, pass("AS reachable", asBase))
	}
	return out
}

func pccsCheck(ctx context.Context, o Options) Check {
	const name = "PCCS reachable"
	base := strings.TrimRight(o.PCCSURL, "/")
	h, err := httpClient(o.PCCSCAFile, o)
	if err != nil {
		return fail(name, fmt.Sprintf("--pccs-ca-file: %v", err), "pass a PEM CA certificate file with --pccs-ca-file")
	}
	url := base + "/sgx/certification/v4/rootcacrl"
	a, err := get(ctx, h, url)
	if err != nil {
		p, f := connProblem("the PCCS", base, "--pccs-ca-file", err)
		return fail(name, p+" (quote generation then fails with 0xE019/0xE011)", f)
	}
	if a.status != http.StatusOK || len(a.body) == 0 {
		return fail(name, fmt.Sprintf("GET %s answered HTTP %d", url, a.status),
			"check the PCCS (its Intel PCS API key and Internet access) and that the platform is registered")
	}
	return pass(name, base)
}

// enrollmentCheck says how apps and BigDL users get enrolled: eHSM Enroll,
// BigDL POST /user and BigDL AS GET /enroll need the admin credential
// unless the server runs with --open-enrollment.
func enrollmentCheck(base string, open bool) Check {
	const name = "Enrollment"
	if open {
		return pass(name, "open (--open-enrollment): anyone who reaches the KMS can create apps and BigDL users; keep it to a trusted network")
	}
	return pass(name, fmt.Sprintf("admin credential required (eHSM Enroll, BigDL POST /user, BigDL AS GET /enroll). Two ways: the operator enrolls once, "+
		"`ppml enroll --kms %[1]s --admin-token-file admin.token` (app id + API key for eHSM/BigDL AS/native clients) or "+
		"`ppml enroll --kms %[1]s --admin-token-file admin.token --bigdl-user NAME --bigdl-token-file FILE` (a BigDL KMS user); "+
		"or, on a trusted network only, run the server with --open-enrollment", base))
}
