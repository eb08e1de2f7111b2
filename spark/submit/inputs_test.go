package submit_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/k8s/material"
	"github.com/ppml-project/ppml/spark/submit"
)

func TestNormalizeArgs(t *testing.T) {
	takesValue := func(o string) bool { return o == "master" || o == "conf" }
	for _, tc := range []struct{ in, want []string }{
		{[]string{"--sgx-enabled", "true", "--master", "k8s://x", "app.jar", "--sgx-enabled", "true"},
			[]string{"--sgx-enabled=true", "--master", "k8s://x", "app.jar", "--sgx-enabled", "true"}},
		{[]string{"--sgx-enabled", "app.jar"}, []string{"--sgx-enabled", "app.jar"}},
		{[]string{"--conf", "true", "--sgx-enabled", "false", "x.py", "a"}, []string{"--conf", "true", "--sgx-enabled=false", "x.py", "a"}},
		{[]string{"--master=local", "--sgx-enabled"}, []string{"--master=local", "--sgx-enabled"}},
	} {
		if got := submit.NormalizeArgs(tc.in, takesValue); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	pw := []byte("prepare-Test-pw")
	files, err := material.GeneratePasswordFiles(pw, nil)
	if err != nil {
		t.Fatal(err)
	}
	pwDir := filepath.Join(dir, "password")
	if err := material.WritePasswordDir(pwDir, files, pw, "", false); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "driver.yaml")
	os.WriteFile(base, []byte("apiVersion: v1\nkind: Pod\n"), 0o600)
	t.Setenv("SPARK_HOME", "/opt/spark")
	t.Setenv("LOCAL_IP", "")
	t.Setenv("RUNTIME_DRIVER_HOST", "10.0.0.9")
	t.Setenv("RUNTIME_DRIVER_PORT", "4040")
	t.Setenv("secure_password", "from-env")

	var o submit.Options
	work, err := submit.Prepare(&o, submit.Inputs{PasswordDir: pwDir, PasswordDirGiven: true, DriverTemplate: base, ExecutorTemplate: filepath.Join(dir, "none.yaml"), WorkDir: filepath.Join(dir, "work")})
	if err != nil {
		t.Fatal(err)
	}
	if work != filepath.Join(dir, "work") || o.PropertiesFile != filepath.Join(work, "spark-secrets.properties") || o.DriverTemplate != filepath.Join(work, "spark-driver-template.yaml") {
		t.Errorf("work dir %s, files %s %s", work, o.PropertiesFile, o.DriverTemplate)
	}
	if o.SparkHome != "/opt/spark" || o.DriverHost != "10.0.0.9" || o.DriverPort != 4040 {
		t.Errorf("from the environment: %q %q %d", o.SparkHome, o.DriverHost, o.DriverPort)
	}
	if string(o.Password) != string(pw) {
		t.Errorf("a given --password-dir comes before $secure_password: %q", o.Password)
	}
	if !strings.Contains(string(o.DriverTemplateBase), "kind: Pod") || o.ExecutorTemplateBase != nil {
		t.Errorf("templates: %q %q", o.DriverTemplateBase, o.ExecutorTemplateBase)
	}

	// Not given: $secure_password first, and a new work directory.
	o = submit.Options{}
	if work, err = submit.Prepare(&o, submit.Inputs{PasswordDir: pwDir}); err != nil || string(o.Password) != "from-env" || !strings.HasPrefix(filepath.Base(work), "ppml-submit-") {
		t.Errorf("defaults: %q %s %v", o.Password, work, err)
	}
	for _, tc := range []struct {
		in   submit.Inputs
		env  string
		want string
	}{
		{submit.Inputs{PasswordDir: filepath.Join(dir, "missing"), PasswordDirGiven: true}, "", "--password-dir: open "},
		{submit.Inputs{DriverTemplate: filepath.Join(dir, "missing.yaml"), DriverTemplateGiven: true}, "", "pod template: open "},
		{submit.Inputs{}, "x", `RUNTIME_DRIVER_PORT="x"`},
	} {
		t.Setenv("RUNTIME_DRIVER_PORT", tc.env)
		o := submit.Options{}
		if _, err := submit.Prepare(&o, tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.in, err, tc.want)
		}
	}
	// With --no-security no password is read at all.
	t.Setenv("RUNTIME_DRIVER_PORT", "")
	if _, err := submit.Prepare(&submit.Options{NoSecurity: true}, submit.Inputs{PasswordDir: filepath.Join(dir, "missing"), PasswordDirGiven: true}); err != nil {
		t.Errorf("--no-security: %v", err)
	}
}
