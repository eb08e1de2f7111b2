package servertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Postgres is a PostgreSQL cluster of one test, which the test may restart
// or stop (fault injection), unlike the shared PPML_TEST_POSTGRES one. Its
// binaries are found as scripts/postgres.sh finds them (which installs them).
type Postgres struct {
	bin, dir string
	port     int
	t        testing.TB
}

func pgBin() (string, error) {
	dirs := []string{}
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	more, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for _, d := range append(dirs, more...) {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("initdb/pg_ctl not found: scripts/test.sh installs PostgreSQL (scripts/postgres.sh)")
}

// StartPostgres initialises and starts a cluster on a free loopback port; it
// is stopped and removed when the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin, err := pgBin()
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: PostgreSQL runs as the postgres user (it refuses root),
	// which must be able to reach the directory.
	dir, err := os.MkdirTemp("", "ppml-pg-fault-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{bin: bin, dir: dir, t: t}
	if os.Geteuid() == 0 {
		if exec.Command("id", "postgres").Run() != nil {
			if out, err := exec.Command("useradd", "--system", "--no-create-home", "postgres").CombinedOutput(); err != nil {
				t.Fatalf("useradd postgres: %v: %s", err, out)
			}
		}
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v: %s", err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	p.run("initdb", "-D", p.data(), "-U", "postgres", "-A", "trust", "--no-sync")
	p.Start()
	t.Cleanup(func() {
		p.ctl("-m", "immediate", "stop")
		os.RemoveAll(dir)
	})
	return p
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, name)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (p *Postgres) run(name string, args ...string) {
	p.t.Helper()
	if out, err := p.command(name, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
		p.t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out, log)
	}
}

func (p *Postgres) ctl(args ...string) error {
	return p.command("pg_ctl", append([]string{"-D", p.data(), "-w", "-t", "60"}, args...)...).Run()
}

// Start starts the (stopped) cluster and waits until it accepts connections.
func (p *Postgres) Start() {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.data(), "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=300 -c fsync=on", p.port, p.dir), "start")
}

// Stop stops the cluster in immediate mode (like a crash: no checkpoint).
func (p *Postgres) Stop() {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.data(), "-w", "-t", "60", "-m", "immediate", "stop")
}

// RestartImmediate is `pg_ctl restart -m immediate`: every connection is
// cut, the server recovers from its WAL and comes back on the same port.
func (p *Postgres) RestartImmediate() {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.data(), "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60", "-m", "immediate", "restart")
}

// URL is the connection URL of database postgres.
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}
