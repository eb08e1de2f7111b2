#!/usr/bin/env bash
# ppml sql throughput: a ~1 GiB encrypted people CSV (name,age,job) against
# the same embedded DuckDB on the plaintext file, in the same run.
#
#   bench/sql.sh [SIZE_MIB]   (default 1024; work dir $WORK, default a mktemp dir)
#
# Baseline: `ppml sql --plaintext-benchmark` (hidden flag), i.e. the SAME
# embedded DuckDB, the same settings and the same plan (load into a table, then
# COPY the query result), reading the plaintext file directly and writing
# plaintext; the encrypted run adds key handling, decryption, the pipe and
# output encryption. The DuckDB CLI is not used.
set -euo pipefail
SIZE_MIB=${1:-1024}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d)}
PPML=$WORK/ppml
cd "$ROOT" && go build -o "$PPML" ./cmd/ppml
cd "$WORK"
head -c 32 /dev/urandom | base64 > key.txt
if [ ! -f people.csv ]; then
  # Deterministic generator: ~28 bytes/row.
  awk -v target=$((SIZE_MIB*1024*1024)) 'BEGIN{
    split("Developer Tester Manager Designer Analyst Operator", jobs, " ");
    print "name,age,job"; n=0; srand(42);
    while (n < target) { l = sprintf("user%09d,%d,%s", NR++, 18+int(rand()*50), jobs[1+int(rand()*6)]); print l; n += length(l)+1 } }' > people.csv
fi
rm -f people.csv.ppml
"$PPML" encrypt --in people.csv --out people.csv.ppml --primary-key-plaintext-file key.txt -q
ls -l people.csv people.csv.ppml
grep -m1 "Model name" <(lscpu) || true
nproc
Q1="SELECT name, age, job FROM people WHERE job = 'Developer' AND age BETWEEN 20 AND 40"
Q2="SELECT count(*) AS n FROM people WHERE job = 'Developer' AND age BETWEEN 20 AND 40"
SPILL=$WORK/spill
for q in "$Q1" "$Q2"; do
  echo "== $q"
  rm -rf out.*
  /usr/bin/time -f "plaintext DuckDB: %e s, max RSS %M KiB" "$PPML" sql --plaintext-benchmark --input people=people.csv --query "$q" --output out.plain.csv --temp-dir "$SPILL"
  /usr/bin/time -f "ppml sql (encrypted): %e s, max RSS %M KiB" "$PPML" sql --input people=people.csv.ppml --query "$q" --output out.csv.ppml --primary-key-plaintext-file key.txt --temp-dir "$SPILL"
  ls -l out.*
done
echo "work dir: $WORK (delete when done)"
