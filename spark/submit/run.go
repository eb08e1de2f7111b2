package submit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DryRun writes the command line, the properties file (secrets redacted)
// and the templates.
func (p *Plan) DryRun(w io.Writer) error {
	var b strings.Builder
	if p.Dir != "" {
		fmt.Fprintf(&b, "# SGX client mode: the driver runs inside Gramine-SGX; in %s, with\n", p.Dir)
		b.WriteString("# sgx_command set to the spark-submit line below:\n")
		fmt.Fprintf(&b, "cd %s && sgx_command=\"$(cat <<'EOF'\n", ShellQuote(p.Dir))
		writeArgv(&b, p.SparkSubmit)
		b.WriteString("EOF\n)\" ")
		b.WriteString(ShellJoin(p.Command))
		b.WriteString("\n")
	} else {
		writeArgv(&b, p.Command)
	}
	if len(p.Properties) > 0 {
		fmt.Fprintf(&b, "\n# %s (mode 0600; secrets redacted here)\n", p.PropertiesFile)
		b.Write(p.RedactedProperties())
	}
	if p.Kubernetes {
		fmt.Fprintf(&b, "\n# %s\n", p.DriverTemplatePath)
		b.Write(p.DriverTemplate)
		fmt.Fprintf(&b, "\n# %s\n", p.ExecutorTemplatePath)
		b.Write(p.ExecutorTemplate)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeArgv(b *strings.Builder, argv []string) {
	b.WriteString(ShellQuote(argv[0]))
	for i := 1; i < len(argv); i++ {
		b.WriteString(" \\\n  " + ShellQuote(argv[i]))
		if strings.HasPrefix(argv[i], "--") && i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "--") {
			b.WriteString(" " + ShellQuote(argv[i+1]))
			i++
		}
	}
	b.WriteString("\n")
}

// RedactedProperties is the properties file with the values masked.
func (p *Plan) RedactedProperties() []byte {
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(p.Properties), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok {
			b.WriteString(k + "=" + Redacted + "\n")
		}
	}
	return []byte(b.String())
}

// WriteFiles writes the templates and the properties file (0600).
func (p *Plan) WriteFiles() error {
	write := func(path string, data []byte, mode os.FileMode) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), ".ppml-submit-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if err := tmp.Chmod(mode); err != nil {
			tmp.Close()
			return err
		}
		if _, err := tmp.Write(data); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		return os.Rename(tmp.Name(), path)
	}
	if p.Kubernetes {
		if err := write(p.DriverTemplatePath, p.DriverTemplate, 0o644); err != nil {
			return fmt.Errorf("driver template: %w", err)
		}
		if err := write(p.ExecutorTemplatePath, p.ExecutorTemplate, 0o644); err != nil {
			return fmt.Errorf("executor template: %w", err)
		}
	}
	if len(p.Properties) > 0 {
		if err := write(p.PropertiesFile, p.Properties, 0o600); err != nil {
			return fmt.Errorf("properties file: %w", err)
		}
	}
	return nil
}

// Run writes the files and runs the command, waiting for it; the
// properties file is removed afterwards.
func (p *Plan) Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	if strings.HasPrefix(p.SparkSubmit[0], "$SPARK_HOME") {
		return errors.New("SPARK_HOME is not set: spark-submit is $SPARK_HOME/bin/spark-submit (use --spark-home or --dry-run)")
	}
	if err := p.WriteFiles(); err != nil {
		return err
	}
	if len(p.Properties) > 0 {
		defer os.Remove(p.PropertiesFile)
	}
	cmd := exec.CommandContext(ctx, p.Command[0], p.Command[1:]...)
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", p.Command[0], err)
	}
	return nil
}

// CheckCluster verifies, against a reachable cluster, that the Secrets the
// pods reference (with their keys) and the driver's service account exist
// in the job namespace. What the submitting identity may not read is not
// an error: the spark service account that ppml k8s setup creates may not
// read Secrets or service accounts (least privilege), and submitting with
// its kubeconfig is the usual case; each such check is returned in
// unchecked instead, for the caller to show.
func (p *Plan) CheckCluster(ctx context.Context, cs kubernetes.Interface) (unchecked []string, err error) {
	if !p.Kubernetes {
		return nil, nil
	}
	var errs []error
	for _, name := range sortedKeys(p.Secrets) {
		s, err := cs.CoreV1().Secrets(p.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsForbidden(err) {
			unchecked = append(unchecked, fmt.Sprintf("Secret %s/%s (this kubeconfig may not read Secrets)", p.Namespace, name))
			continue
		}
		if apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("Secret %s/%s is missing (%s)", p.Namespace, name, secretHint(name)))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("Secret %s/%s: %w", p.Namespace, name, err))
			continue
		}
		for _, k := range p.Secrets[name] {
			if _, ok := s.Data[k]; !ok {
				errs = append(errs, fmt.Errorf("Secret %s/%s has no key %q (%s)", p.Namespace, name, k, secretHint(name)))
			}
		}
	}
	if p.ServiceAccount != "" {
		_, err := cs.CoreV1().ServiceAccounts(p.Namespace).Get(ctx, p.ServiceAccount, metav1.GetOptions{})
		if apierrors.IsForbidden(err) {
			unchecked = append(unchecked, fmt.Sprintf("ServiceAccount %s/%s (this kubeconfig may not read service accounts)", p.Namespace, p.ServiceAccount))
		} else if apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("ServiceAccount %s/%s is missing (ppml k8s setup creates it)", p.Namespace, p.ServiceAccount))
		} else if err != nil {
			errs = append(errs, fmt.Errorf("ServiceAccount %s/%s: %w", p.Namespace, p.ServiceAccount, err))
		}
	}
	return unchecked, errors.Join(errs...)
}

func secretHint(name string) string {
	switch name {
	case SSLKeysSecret:
		return "create it with: ppml tls generate --apply"
	case SparkSecret:
		return "create it with: ppml password generate --apply"
	case KMSSecret:
		return "needed with --attestation: kubectl create secret generic kms-secret --from-literal=app_id=... --from-literal=api_key=... --from-literal=policy_id=..."
	case KubeconfigSecret:
		return "the driver mounts it at /root/.kube: kubectl create secret generic kubeconfig-secret --from-file=config=KUBECONFIG"
	}
	return "referenced by the pod templates"
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
