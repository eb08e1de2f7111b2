package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// engines is what scripts/engines.sh installed.
var engines struct {
	// JavaHome is the Java 11 Spark runs on; JDKHome a JDK 17 (javac).
	JavaHome, JDKHome, SparkHome, ParquetJars string
	// BigDLJars holds BigDL PPML's classes compiled from the upstream
	// source at BigDLTag (commit BigDLCommit), with BigDL-core's Java
	// wrappers (commit BigDLCoreCommit), and the libraries they need
	// besides Spark's jars; BigDLExcluded names the upstream classes not
	// built, and why.
	BigDLJars, BigDLTag, BigDLCommit, BigDLCoreCommit, BigDLExcluded string
}

var (
	ppmlBin        string // ppml built from ../cmd/ppml
	driverJar      string // java/ compiled against Spark and parquet-mr
	bigdlDriverJar string // bigdl/java/ compiled against BigDL's classes
)

// TestMain builds ppml and the JVM drivers. The engines are the NAME=VALUE
// lines of scripts/engines.sh: from the file $PPML_ENGINES (scripts/test.sh
// runs it once), or, for a plain `go test ./interop`, from running it here
// (it is cached and installs what is missing). A missing engine fails every
// test.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ppml-interop")
	if err != nil {
		panic(err)
	}
	code := 1
	if err := setup(dir); err != nil {
		fmt.Fprintf(os.Stderr, "interop: %v\n", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func setup(dir string) error {
	var out []byte
	var err error
	if f := os.Getenv("PPML_ENGINES"); f != "" {
		out, err = os.ReadFile(f) // written by scripts/test.sh
	} else {
		cmd := exec.Command("../scripts/engines.sh")
		cmd.Stderr = os.Stderr
		out, err = cmd.Output()
	}
	if err != nil {
		return fmt.Errorf("scripts/engines.sh: %v", err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vars[k] = v
		}
	}
	engines.JavaHome, engines.JDKHome = vars["JAVA_HOME"], vars["JDK_HOME"]
	engines.SparkHome, engines.ParquetJars = vars["SPARK_HOME"], vars["PARQUET_JARS"]
	engines.BigDLJars, engines.BigDLTag = vars["BIGDL_PPML_JARS"], vars["BIGDL_PPML_TAG"]
	engines.BigDLCommit, engines.BigDLExcluded = vars["BIGDL_PPML_COMMIT"], vars["BIGDL_PPML_EXCLUDED"]
	engines.BigDLCoreCommit = vars["BIGDL_CORE_COMMIT"]
	for _, p := range []string{engines.JavaHome + "/bin/java", engines.JDKHome + "/bin/javac", engines.SparkHome + "/bin/spark-submit", engines.ParquetJars,
		engines.BigDLJars + "/UPSTREAM_COMMIT"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("engine missing (run scripts/engines.sh): %v", err)
		}
	}

	ppmlBin = filepath.Join(dir, "ppml")
	if out, err := exec.Command("go", "build", "-o", ppmlBin, "../cmd/ppml").CombinedOutput(); err != nil {
		return fmt.Errorf("building ppml: %v\n%s", err, out)
	}

	driverJar = filepath.Join(dir, "ppml-interop.jar")
	if err := compileDrivers("java/ppml/interop/*.java", sparkClassPath(), driverJar); err != nil {
		return err
	}
	bigdlDriverJar = filepath.Join(dir, "ppml-bigdl-clients.jar")
	return compileDrivers("bigdl/java/ppml/bigdl/*.java", bigdlClassPath(), bigdlDriverJar)
}

// compileDrivers compiles the Java files glob names against classPath
// into the jar out.
func compileDrivers(glob, classPath, out string) error {
	sources, _ := filepath.Glob(glob)
	classes, err := os.MkdirTemp(filepath.Dir(out), "classes")
	if err != nil {
		return err
	}
	args := append([]string{"-d", classes, "-cp", classPath, "--release", "8", "-nowarn"}, sources...)
	if msg, err := exec.Command(engines.JDKHome+"/bin/javac", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("javac %s: %v\n%s", strings.Join(sources, " "), err, msg)
	}
	if msg, err := exec.Command(engines.JDKHome+"/bin/jar", "cf", out, "-C", classes, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("jar: %v\n%s", err, msg)
	}
	return nil
}

// bigdlClassPath is BigDL's classes and their libraries in front of Spark's
// jars, as BigDL's jar-with-dependencies runs (its org.json 20231013 before
// the org.json clone Spark bundles).
func bigdlClassPath() string {
	return engines.BigDLJars + "/*:" + engines.SparkHome + "/jars/*"
}

// sparkClassPath is parquet-mr 1.13 in front of Spark's jars (Spark 3.1.3
// bundles parquet 1.10.1, which has no modular encryption), as BigDL PPML
// 2.4.0 runs it.
func sparkClassPath() string {
	return engines.ParquetJars + "/*:" + engines.SparkHome + "/jars/*"
}

// server is a `ppml serve` process on loopback.
type server struct {
	URL, DataDir, CAFile, AdminTokenFile string
	// Lines are the lines the server logged so far.
	log *bytes.Buffer
	// urls receives the URL of each further listener (--bigdl-kms-addr,
	// --bigdl-as-addr), in that order, as the server logs them.
	urls chan string
}

var listenRe = regexp.MustCompile(`url=(https://127\.0\.0\.1:\d+)`)

// startServe runs `ppml serve` on a loopback port and waits for it to listen.
func startServe(t *testing.T, extra ...string) *server {
	t.Helper()
	dataDir := t.TempDir()
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, extra...)
	cmd := exec.Command(ppmlBin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := &server{DataDir: dataDir, CAFile: filepath.Join(dataDir, "tls", "server.crt"),
		AdminTokenFile: filepath.Join(dataDir, "admin.token"), log: &bytes.Buffer{}, urls: make(chan string, 4)}
	found := make(chan string, 1)
	go func() {
		first := true
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.log.WriteString(sc.Text() + "\n")
			if m := listenRe.FindStringSubmatch(sc.Text()); m != nil {
				if first {
					found <- m[1]
					first = false
				} else {
					select {
					case s.urls <- m[1]:
					default:
					}
				}
			}
		}
	}()
	select {
	case s.URL = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("ppml serve did not report its listener")
	}
	return s
}

// nextURL is the URL of the server's next listener.
func (s *server) nextURL(t *testing.T) string {
	t.Helper()
	select {
	case u := <-s.urls:
		return u
	case <-time.After(30 * time.Second):
		t.Fatal("ppml serve did not report its further listener")
		return ""
	}
}

// app is an enrolled eHSM app: its id and a 0600 file with its API key.
type app struct{ ID, KeyFile string }

func (s *server) enroll(t *testing.T) app {
	t.Helper()
	out := s.ppml(t, nil, "enroll", "--admin-token-file", s.AdminTokenFile, "--output", "json")
	var r struct{ AppID, APIKey string }
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.AppID == "" || r.APIKey == "" {
		t.Fatalf("enroll output %q: %v", out, err)
	}
	f := filepath.Join(t.TempDir(), "app.key")
	if err := os.WriteFile(f, []byte(r.APIKey), 0o600); err != nil {
		t.Fatal(err)
	}
	return app{ID: r.AppID, KeyFile: f}
}

// env is the client environment for the app.
func (s *server) env(a app) []string {
	return []string{"PPML_KMS=" + s.URL, "PPML_CA_FILE=" + s.CAFile, "PPML_APP_ID=" + a.ID}
}

// ppml runs a ppml client command against the server and returns its stdout.
func (s *server) ppml(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(ppmlBin, args...)
	cmd.Env = append(os.Environ(), append([]string{"PPML_KMS=" + s.URL, "PPML_CA_FILE=" + s.CAFile}, env...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ppml %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// sparkSubmit runs $SPARK_HOME/bin/spark-submit and returns its combined
// output; it fails the test when spark-submit fails.
func sparkSubmit(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, engines.SparkHome+"/bin/spark-submit", args...)
	cmd.Env = append(os.Environ(), append([]string{"JAVA_HOME=" + engines.JavaHome, "SPARK_HOME=" + engines.SparkHome}, env...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("spark-submit %s: %v\n%s", strings.Join(args, " "), err, tailString(out, 6000))
	}
	return string(out)
}

func tailString(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// writeFile0600 writes a file only its owner reads.
func writeFile0600(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// jsonField is one string field of a JSON object.
func jsonField(t *testing.T, doc, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("%q: %v", doc, err)
	}
	v, _ := m[field].(string)
	if v == "" {
		t.Fatalf("no %q in %s", field, doc)
	}
	return v
}
