// Package quickstart runs the whole privacy-preserving workflow on one
// machine, narrating each step: KMS + Attestation Service in process, an
// app for the workload and one for the data owner, the simulated enclave's
// measurements as a policy, a primary key bound to it, a people dataset
// encrypted by the data owner, an attested query inside the simulated
// enclave, the result decrypted by the data owner, and an enclave with other
// measurements refused. It leaves everything in one directory, with the
// commands that repeat each step by hand.
package quickstart

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ppml-project/ppml/agent"
	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/client/kmskeys"
	"github.com/ppml-project/ppml/dataformat/files"
	"github.com/ppml-project/ppml/enclave"
	"github.com/ppml-project/ppml/quote/sim"
	"github.com/ppml-project/ppml/server"
	"github.com/ppml-project/ppml/trustedsql"
)

// Query is BigDL's "simple query" example: developers aged 20 to 40.
const Query = "SELECT name, age, job FROM people WHERE job = 'Developer' AND age BETWEEN 20 AND 40 ORDER BY name"

// marker identifies a directory this package created, so a re-run may
// replace it without risking anything else.
const marker = ".ppml-quickstart"

// Options configure a run.
type Options struct {
	Dir  string    // working directory (created; replaced if an earlier quickstart made it)
	Rows int       // people rows (default 100000)
	Out  io.Writer // narration
}

// Summary is what the run established.
type Summary struct {
	Dir       string
	Count     int        // rows the attested query returned (decrypted by the data owner)
	FirstRows [][]string // header + first rows of the result
	Refusal   string     // why the enclave with other measurements was refused
	Elapsed   time.Duration
}

type run struct {
	o      Options
	out    io.Writer
	step   int
	cmds   []string
	start  time.Time
	kmsURL string
	ca     string
}

func (r *run) say(format string, a ...any) {
	r.step++
	fmt.Fprintf(r.out, "\n[%d] %s  (%.1fs)\n", r.step, fmt.Sprintf(format, a...), time.Since(r.start).Seconds())
}

func (r *run) note(format string, a ...any) { fmt.Fprintf(r.out, "    "+format+"\n", a...) }

// by records the command that repeats a step by hand.
func (r *run) by(cmd string) {
	r.cmds = append(r.cmds, cmd)
	fmt.Fprintf(r.out, "    $ %s\n", cmd)
}

func prepareDir(dir string) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a directory: pass another --dir", dir)
		}
		entries, _ := os.ReadDir(dir)
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil && len(entries) > 0 {
			return fmt.Errorf("%s exists and was not made by ppml quickstart: pass another --dir", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, marker), nil, 0o600)
}

// Run runs the quickstart.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.Rows == 0 {
		o.Rows = 100000
	}
	if o.Rows < 1 {
		return nil, fmt.Errorf("--rows must be positive")
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	r := &run{o: o, out: o.Out, start: time.Now()}
	fmt.Fprintf(r.out, "ppml quickstart: the whole workflow on this machine, in %s\n", dir)
	fmt.Fprintln(r.out, "SIMULATION: there is no SGX here; the enclave and its quotes are simulated, and every attestation result says so.")

	// 1. KMS + AS in process.
	r.say("Start the KMS and the Attestation Service (embedded SQLite, simulated TEE allowed)")
	srvDir := filepath.Join(dir, "server")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, err := server.New(ctx, server.Config{Addr: "127.0.0.1:0", DataDir: srvDir, AllowSimulation: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	ls, err := srv.Listen()
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ls...) }()
	defer func() { cancel(); <-done }()
	r.kmsURL, r.ca = "https://"+ls[0].Addr().String(), srv.CertPath
	r.note("listening on %s (TLS certificate %s)", r.kmsURL, r.ca)
	r.by(fmt.Sprintf("ppml serve --data-dir %s --allow-simulation &", srvDir))
	r.by(fmt.Sprintf("export PPML_KMS=https://127.0.0.1:9000 PPML_CA_FILE=%s", filepath.Join(srvDir, "tls", "server.crt")))

	// 2. Apps.
	r.say("Enroll two apps: the workload (its credentials go to the cluster) and the data owner (they stay with the owner)")
	adminTok, err := os.ReadFile(filepath.Join(srvDir, "admin.token"))
	if err != nil {
		return nil, err
	}
	admin, err := client.NewNative(client.Config{URL: r.kmsURL, CAFile: r.ca, AdminToken: strings.TrimSpace(string(adminTok))})
	if err != nil {
		return nil, err
	}
	credDir := filepath.Join(dir, "credentials")
	workload, err := r.enroll(ctx, admin, credDir, "workload")
	if err != nil {
		return nil, err
	}
	owner, err := r.enroll(ctx, admin, credDir, "owner")
	if err != nil {
		return nil, err
	}

	// 3. Policy.
	r.say("Register the simulated enclave's measurements as an attestation policy")
	mrEnclave, mrSigner := sha256.Sum256([]byte("ppml quickstart enclave v1")), sha256.Sum256([]byte("ppml quickstart signer"))
	policyDoc := fmt.Sprintf(`{"tee": "sgx", "mr_enclave": [%q], "mr_signer": [%q], "allow_simulated": true}`,
		hex.EncodeToString(mrEnclave[:]), hex.EncodeToString(mrSigner[:]))
	policyFile := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policyFile, []byte(policyDoc+"\n"), 0o644); err != nil {
		return nil, err
	}
	as, _ := client.NewAttestation(workload)
	pol, err := as.CreatePolicy(ctx, json.RawMessage(policyDoc))
	if err != nil {
		return nil, fmt.Errorf("creating the policy: %w", err)
	}
	r.note("policy %s: MRENCLAVE %s…, simulated quotes allowed", pol.ID, hex.EncodeToString(mrEnclave[:8]))
	r.by(fmt.Sprintf("ppml policy create --file %s --app-id %s --api-key-file %s", policyFile, workload.AppID, keyFile(credDir, "workload")))

	// 4. Bound key.
	r.say("Create a primary key bound to the policy; the data owner may decrypt results without attestation")
	n, _ := client.NewNative(workload)
	key, err := n.CreateKey(ctx, client.KeyOptions{ReleasePolicies: []string{pol.ID}, Decrypters: []string{owner.AppID}})
	if err != nil {
		return nil, fmt.Errorf("creating the key: %w", err)
	}
	r.note("key %s: its plaintext reaches only an enclave that attests under %s", key.ID, pol.ID)
	r.by(fmt.Sprintf("ppml key create --release-policy %s --decrypter %s --app-id %s --api-key-file %s --output json",
		pol.ID, owner.AppID, workload.AppID, keyFile(credDir, "workload")))

	// 5. Dataset.
	r.say("Generate a people dataset (%d rows: name, age, job)", o.Rows)
	dataFile := filepath.Join(dir, "data", "people.csv")
	if err := WritePeople(dataFile, o.Rows); err != nil {
		return nil, err
	}
	r.note("%s", dataFile)

	// 6. Encrypt as the data owner.
	r.say("Encrypt it as the data owner (ppml format: chunked AES-256-GCM, data key from the KMS)")
	ownerKeys, err := kmskeys.Select(kmskeys.Choice{KMS: owner, KeyID: key.ID})
	if err != nil {
		return nil, err
	}
	encFile := filepath.Join(dir, "encrypted", "people.csv.ppml")
	if _, err := files.Encrypt(ctx, dataFile, encFile, files.Options{Format: files.FormatPPML, Keys: ownerKeys}); err != nil {
		return nil, fmt.Errorf("encrypting the dataset: %w", err)
	}
	r.note("%s", encFile)
	r.by(fmt.Sprintf("ppml encrypt --force --in %s --out %s --key-id %s --app-id %s --api-key-file %s", dataFile, encFile, key.ID, owner.AppID, keyFile(credDir, "owner")))

	// 7. Attested query in the simulated enclave.
	r.say("In the simulated enclave: attest, receive the data key, run BigDL's simple query with ppml sql")
	enclaveDir := filepath.Join(dir, "enclave")
	m := sim.Measurements{MREnclave: mrEnclave, MRSigner: mrSigner, ISVProdID: 1, ISVSVN: 3}
	if err := enclave.PrepareSim(enclaveDir, filepath.Join(srvDir, "sim"), "sgx", m); err != nil {
		return nil, err
	}
	r.by(fmt.Sprintf("ppml sim enclave --dir %s --sim-dir %s --mr-enclave %s --mr-signer %s --isv-prod-id 1 --isv-svn 3",
		enclaveDir, filepath.Join(srvDir, "sim"), hex.EncodeToString(mrEnclave[:]), hex.EncodeToString(mrSigner[:])))
	resultEnc := filepath.Join(dir, "result", "developers.csv.ppml")
	if err := os.MkdirAll(filepath.Dir(resultEnc), 0o700); err != nil {
		return nil, err
	}
	if err := r.query(ctx, workload, pol.ID, key.ID, enclaveDir, encFile, resultEnc); err != nil {
		return nil, err
	}
	r.note("encrypted result: %s", resultEnc)
	r.by(sqlCommand(workload.AppID, keyFile(credDir, "workload"), pol.ID, key.ID, enclaveDir, encFile, resultEnc))

	// 8. The data owner decrypts the result.
	r.say("Decrypt the result as the data owner")
	resultPlain := filepath.Join(dir, "result", "developers.csv")
	if _, err := files.Decrypt(ctx, resultEnc, resultPlain, files.Options{Keys: ownerKeys}); err != nil {
		return nil, fmt.Errorf("decrypting the result: %w", err)
	}
	r.by(fmt.Sprintf("ppml decrypt --force --in %s --out %s --app-id %s --api-key-file %s", resultEnc, resultPlain, owner.AppID, keyFile(credDir, "owner")))
	rows, err := readCSV(resultPlain)
	if err != nil {
		return nil, err
	}
	sum := &Summary{Dir: dir, Count: len(rows) - 1}
	sum.FirstRows = rows[:min(len(rows), 6)]
	for _, row := range sum.FirstRows {
		r.note("%s", strings.Join(row, ", "))
	}
	r.note("... %d developers aged 20 to 40", sum.Count)

	// 9. Other measurements are refused.
	r.say("An enclave with other measurements asks for the key: refused")
	otherMR := sha256.Sum256([]byte("some other code"))
	otherDir := filepath.Join(dir, "enclave-other")
	m.MREnclave = otherMR
	if err := enclave.PrepareSim(otherDir, filepath.Join(srvDir, "sim"), "sgx", m); err != nil {
		return nil, err
	}
	_, err = agent.AttestedKeys(ctx, agent.Attested{Config: workload, AttestationDir: otherDir, PolicyID: pol.ID, Log: io.Discard})
	var refused *agent.RefusedError
	switch {
	case err == nil:
		return nil, errors.New("an enclave with other measurements was accepted: the policy does not hold")
	case !errors.As(err, &refused):
		return nil, err
	}
	sum.Refusal = refused.Err.Error()
	r.note("refused: %s", sum.Refusal)
	r.by(fmt.Sprintf("ppml sim enclave --dir %s --sim-dir %s --mr-enclave %s --mr-signer %s && %s", otherDir, filepath.Join(srvDir, "sim"),
		hex.EncodeToString(otherMR[:]), hex.EncodeToString(mrSigner[:]), sqlCommand(workload.AppID, keyFile(credDir, "workload"), pol.ID, key.ID, otherDir, encFile, filepath.Join(dir, "result", "refused.csv.ppml"))+
			" || echo 'refused, as expected'"))

	sum.Elapsed = time.Since(r.start)
	script := filepath.Join(dir, "commands.sh")
	body := "#!/bin/sh\n# Repeat the quickstart by hand: start the server in another terminal first.\nset -e\n" + strings.Join(r.cmds, "\n") + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.out, "\nDone in %.1fs. Everything is in %s; the commands above are in %s.\n", sum.Elapsed.Seconds(), dir, script)
	return sum, nil
}

func keyFile(dir, who string) string { return filepath.Join(dir, who+".apikey") }

func (r *run) enroll(ctx context.Context, admin *client.Native, dir, who string) (client.Config, error) {
	appID, apiKey, err := admin.Enroll(ctx)
	if err != nil {
		return client.Config{}, fmt.Errorf("enrolling the %s app: %w", who, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return client.Config{}, err
	}
	if err := os.WriteFile(keyFile(dir, who), []byte(apiKey+"\n"), 0o600); err != nil {
		return client.Config{}, err
	}
	r.note("%s app %s (API key in %s)", who, appID, keyFile(dir, who))
	r.by(fmt.Sprintf("ppml enroll --admin-token-file %s --output json   # %s", filepath.Join(filepath.Dir(dir), "server", "admin.token"), who))
	return client.Config{URL: r.kmsURL, CAFile: r.ca, AppID: appID, APIKey: apiKey}, nil
}

// WritePeople writes n rows of name,age,job with a fixed seed.
func WritePeople(path string, n int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	rng := rand.New(rand.NewPCG(1, 2))
	jobs := []string{"Developer", "Manager", "Designer", "Analyst", "Tester"}
	names := []string{"Ada", "Alan", "Grace", "Linus", "Ken", "Barbara", "Edsger", "Donald", "Frances", "John"}
	w.Write([]string{"name", "age", "job"})
	for i := 0; i < n; i++ {
		w.Write([]string{names[rng.IntN(len(names))] + strconv.Itoa(i), strconv.Itoa(18 + rng.IntN(50)), jobs[rng.IntN(len(jobs))]})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readCSV(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return csv.NewReader(f).ReadAll()
}

// query runs the simple query inside the (simulated) enclave: attest first,
// then open the input's key by attested release; the result gets a new data
// key under the same bound key, so the data owner can decrypt it.
func (r *run) query(ctx context.Context, workload client.Config, policyID, keyID, enclaveDir, in, out string) error {
	keys, err := agent.AttestedKeys(ctx, agent.Attested{Config: workload, AttestationDir: enclaveDir, PolicyID: policyID, NewKeyID: keyID, Log: io.Discard})
	if refused := (*agent.RefusedError)(nil); errors.As(err, &refused) {
		return fmt.Errorf("the expected enclave was refused: %w", refused.Err)
	}
	if err != nil {
		return err
	}
	r.note("attested: simulated SGX quote accepted under the policy; token received")
	res, err := trustedsql.Run(ctx, trustedsql.Options{Inputs: []trustedsql.Input{{Name: "people", Path: in}},
		Query: Query, Output: out, OutputFormat: trustedsql.CSV, Keys: keys})
	if err != nil {
		return fmt.Errorf("ppml sql: %w", err)
	}
	r.note("query ran in the enclave over %d decrypted bytes (in memory only): %d rows", res.InputBytes, res.Rows)
	return nil
}

func sqlCommand(appID, apiKeyFile, policyID, keyID, enclaveDir, in, out string) string {
	return fmt.Sprintf("ppml sql --force --attest --attestation-dir %s --policy-id %s --output-key-id %s --app-id %s --api-key-file %s --input people=%s --query %q --output %s",
		enclaveDir, policyID, keyID, appID, apiKeyFile, in, Query, out)
}
