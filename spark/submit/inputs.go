package submit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ppml-project/ppml/k8s/kube"
	"github.com/ppml-project/ppml/k8s/material"
)

// NormalizeArgs turns upstream's "--sgx-enabled true|false" into
// "--sgx-enabled=true|false", in the options only: the first word that is
// not an option is the application, and it and its arguments are kept as
// they are. takesValue says whether an option consumes the next word.
func NormalizeArgs(args []string, takesValue func(option string) bool) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--sgx-enabled" && i+1 < len(args) && (args[i+1] == "true" || args[i+1] == "false") {
			out = append(out, a+"="+args[i+1])
			i++
			continue
		}
		out = append(out, a)
		if !strings.HasPrefix(a, "-") {
			return append(out, args[i+1:]...) // the application and its arguments
		}
		if !strings.Contains(a, "=") && takesValue(strings.TrimLeft(a, "-")) && i+1 < len(args) {
			out = append(out, args[i+1])
			i++
		}
	}
	return out
}

// Inputs are what ppml submit reads besides its options, as BigDL's script
// does: the ssl-password files, the base pod templates, the work directory.
type Inputs struct {
	PasswordDir      string // key.txt and output.bin of ssl-password
	PasswordDirGiven bool   // else $secure_password comes first, and a missing directory is no error

	DriverTemplate, ExecutorTemplate           string // base pod templates, extended when they exist
	DriverTemplateGiven, ExecutorTemplateGiven bool   // then they must exist

	WorkDir string // "" for a new directory under $TMPDIR
}

// Prepare completes o from the environment of BigDL's script ($SPARK_HOME,
// $LOCAL_IP or $RUNTIME_DRIVER_HOST, $RUNTIME_DRIVER_PORT, $secure_password)
// and from in, and places the generated files in the work directory, which
// it returns (not yet created).
func Prepare(o *Options, in Inputs) (workDir string, err error) {
	if o.SparkHome == "" {
		o.SparkHome = os.Getenv("SPARK_HOME")
	}
	if o.DriverHost == "" {
		o.DriverHost = firstEnv("LOCAL_IP", "RUNTIME_DRIVER_HOST")
	}
	if o.DriverPort == 0 {
		if v := os.Getenv("RUNTIME_DRIVER_PORT"); v != "" {
			if _, err := fmt.Sscan(v, &o.DriverPort); err != nil {
				return "", fmt.Errorf("RUNTIME_DRIVER_PORT=%q: %v", v, err)
			}
		}
	}
	if o.Password, err = readPassword(in.PasswordDirGiven, in.PasswordDir, o.NoSecurity); err != nil {
		return "", err
	}
	if o.DriverTemplateBase, err = readBaseTemplate(in.DriverTemplate, in.DriverTemplateGiven); err != nil {
		return "", err
	}
	if o.ExecutorTemplateBase, err = readBaseTemplate(in.ExecutorTemplate, in.ExecutorTemplateGiven); err != nil {
		return "", err
	}
	workDir = in.WorkDir
	if workDir == "" {
		b := make([]byte, 4)
		rand.Read(b)
		workDir = filepath.Join(os.TempDir(), "ppml-submit-"+hex.EncodeToString(b))
	}
	o.DriverTemplate = filepath.Join(workDir, "spark-driver-template.yaml")
	o.ExecutorTemplate = filepath.Join(workDir, "spark-executor-template.yaml")
	o.PropertiesFile = filepath.Join(workDir, "spark-secrets.properties")
	return workDir, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// readPassword recovers the key store password: from the password
// directory when given, else $secure_password, else the default password
// directory when it exists.
func readPassword(dirGiven bool, dir string, noSecurity bool) ([]byte, error) {
	if noSecurity {
		return nil, nil
	}
	if !dirGiven {
		if v := os.Getenv("secure_password"); v != "" {
			return []byte(strings.TrimRight(v, "\r\n")), nil
		}
		if _, err := os.Stat(filepath.Join(dir, material.KeyTxtFile)); err != nil {
			return nil, nil // Build explains what is missing
		}
	}
	key, err := os.ReadFile(filepath.Join(dir, material.KeyTxtFile))
	if err != nil {
		return nil, fmt.Errorf("--password-dir: %w", err)
	}
	out, err := os.ReadFile(filepath.Join(dir, material.OutputBinFile))
	if err != nil {
		return nil, fmt.Errorf("--password-dir: %w", err)
	}
	pw, err := material.RecoverPassword(key, out)
	if err != nil {
		return nil, fmt.Errorf("--password-dir %s: %w", dir, err)
	}
	return pw, nil
}

func readBaseTemplate(path string, given bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !given {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pod template: %w", err)
	}
	return b, nil
}

// CheckClusterOf checks the cluster of kubeconfig ("" for $KUBECONFIG,
// ~/.kube/config or in-cluster) as CheckCluster does. Without a given
// kubeconfig an unreachable cluster is only noted, as is what could not be
// checked.
func (p *Plan) CheckClusterOf(ctx context.Context, kubeconfig string, notes io.Writer) error {
	c, err := kube.Load(kubeconfig, p.Namespace)
	if err != nil {
		if kubeconfig != "" {
			return err
		}
		fmt.Fprintf(notes, "note: no kubeconfig reachable (%v); Secrets and service account not checked\n", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	unchecked, err := p.CheckCluster(ctx, c.Clientset)
	if err != nil {
		return fmt.Errorf("refusing to submit (cluster %s, --skip-cluster-checks to skip):\n%w", c.Config.Host, err)
	}
	for _, u := range unchecked {
		fmt.Fprintf(notes, "note: not checked: %s\n", u)
	}
	return nil
}
