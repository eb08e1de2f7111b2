#!/usr/bin/env bash
# Encrypt/decrypt throughput of ppml's data formats, side by side with age and
# `openssl enc -aes-256-ctr`, on one file (default 1 GiB of random bytes).
#
#   bash bench/dataformat.sh            # SIZE_MIB=1024 PARQUET_MIB=256 by default
#   SIZE_MIB=256 bash bench/dataformat.sh
#
# Every tool reads the same file from the page cache and writes to the same
# disk; the timings of age and openssl include an fsync of their output,
# because ppml fsyncs (atomic output: temporary file, fsync, rename).
# MB/s = input bytes / 10^6 / wall-clock seconds.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MIB=${SIZE_MIB:-1024}
PARQUET_MIB=${PARQUET_MIB:-256}

if ! command -v age >/dev/null || ! command -v age-keygen >/dev/null || ! command -v openssl >/dev/null; then
	echo "installing age and openssl from Debian packages..." >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq age openssl >/dev/null
fi

# Work in memory (tmpfs) when there is room, so that the figures measure the
# tools rather than the disk; BENCH_DIR overrides.
if [ -z "${BENCH_DIR:-}" ]; then
	BENCH_DIR=${TMPDIR:-/tmp}
	need_kib=$(((SIZE_MIB * 3 + PARQUET_MIB * 3 + 512) * 1024))
	if [ -d /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt "$need_kib" ]; then
		BENCH_DIR=/dev/shm
	fi
fi
work=$(mktemp -d "$BENCH_DIR/ppml-bench.XXXXXX")
gen="$repo/.bench-gen-$$"
cleanup() { rm -rf "$work" "$gen"; }
trap cleanup EXIT

echo "building ppml..." >&2
(cd "$repo" && go build -o "$work/ppml" ./cmd/ppml)
ppml="$work/ppml"

echo "making a ${SIZE_MIB} MiB random file..." >&2
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$work/plain"
size=$(stat -c %s "$work/plain")

# A Parquet file of about PARQUET_MIB MiB for the parquet-modular format,
# made with arrow-go (a throwaway program inside the module, removed on exit).
mkdir -p "$gen"
cat >"$gen/main.go" <<'GO'
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func main() {
	target, _ := strconv.ParseInt(os.Args[2], 10, 64)
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "value", Type: arrow.PrimitiveTypes.Float64},
		{Name: "name", Type: arrow.BinaryTypes.String},
	}, nil)
	w, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Uncompressed), parquet.WithDictionaryDefault(false)), pqarrow.DefaultWriterProps())
	if err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	id := int64(0)
	for w.TotalBytesWritten() < target {
		b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		for range 1 << 16 {
			b.Field(0).(*array.Int64Builder).Append(id)
			b.Field(1).(*array.Float64Builder).Append(rng.Float64())
			b.Field(2).(*array.StringBuilder).Append(fmt.Sprintf("name-%016x", rng.Uint64()))
			id++
		}
		rec := b.NewRecordBatch()
		if err := w.Write(rec); err != nil {
			panic(err)
		}
		rec.Release()
		b.Release()
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
}
GO
echo "making a ~${PARQUET_MIB} MiB Parquet file..." >&2
(cd "$repo" && go run "./$(basename "$gen")" "$work/plain.parquet" "$((PARQUET_MIB << 20))")
psize=$(stat -c %s "$work/plain.parquet")

openssl rand -base64 32 >"$work/primary.key"
age-keygen -o "$work/age.key" 2>/dev/null
age_recipient=$(age-keygen -y "$work/age.key")
ossl_key=$(openssl rand -hex 32)
ossl_iv=$(openssl rand -hex 16)

now() { date +%s.%N; }
# timeit BYTES OUT CMD... : run CMD REPS times (removing OUT before each run,
# outside the timing) and print the best MB/s; the machine is shared, and the
# best of a few runs is the least disturbed one.
REPS=${REPS:-5}
timeit() {
	local bytes=$1 out=$2
	shift 2
	local best=0 t0 t1 r
	for _ in $(seq "$REPS"); do
		rm -f "$out"
		t0=$(now)
		"$@" >/dev/null
		t1=$(now)
		r=$(awk -v b="$bytes" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.0f", b / 1e6 / (z - a) }')
		[ "$r" -gt "$best" ] && best=$r
	done
	echo "$best"
}
with_sync() { # CMD... OUT : run CMD then fsync OUT
	local out=${*: -1}
	"${@:1:$#-1}"
	sync "$out"
}

cat "$work/plain" "$work/plain.parquet" >/dev/null # warm the page cache
mkdir -p "$work/o-ppml" "$work/bigdl" "$work/pq" "$work/dec"

rows=()
check() { # name decrypted original
	cmp -s "$2" "$3" || { echo "MISMATCH: $1 round trip differs" >&2; exit 1; }
	rm -f "$2"
}

echo "running..." >&2
e=$(timeit "$size" "$work/o-ppml/c.ppml" "$ppml" encrypt -q --in "$work/plain" --out "$work/o-ppml/c.ppml" --format ppml --primary-key-plaintext-file "$work/primary.key")
d=$(timeit "$size" "$work/dec/p" "$ppml" decrypt -q --in "$work/o-ppml/c.ppml" --out "$work/dec/p" --primary-key-plaintext-file "$work/primary.key")
check ppml "$work/dec/p" "$work/plain"; rm -f "$work/o-ppml/c.ppml"
rows+=("ppml (AES-256-GCM STREAM, authenticated)|$e|$d")

e=$(timeit "$size" "$work/bigdl/c.cbc" "$ppml" encrypt -q --force --in "$work/plain" --out "$work/bigdl/c.cbc" --format bigdl --primary-key-plaintext-file "$work/primary.key")
d=$(timeit "$size" "$work/dec/p" "$ppml" decrypt -q --in "$work/bigdl/c.cbc" --out "$work/dec/p" --primary-key-plaintext-file "$work/primary.key")
check bigdl "$work/dec/p" "$work/plain"; rm -f "$work/bigdl/c.cbc"
rows+=("bigdl (AES-128-CBC + HMAC-SHA256, MAC verified first)|$e|$d")

e=$(timeit "$psize" "$work/pq/c.parquet" "$ppml" encrypt -q --force --in "$work/plain.parquet" --out "$work/pq/c.parquet" --format parquet-modular --primary-key-plaintext-file "$work/primary.key")
d=$(timeit "$psize" "$work/dec/p.parquet" "$ppml" decrypt -q --in "$work/pq/c.parquet" --out "$work/dec/p.parquet" --primary-key-plaintext-file "$work/primary.key")
rm -f "$work/pq/c.parquet" "$work/dec/p.parquet"
rows+=("parquet-modular AES_GCM_V1 (re-encodes; $((psize >> 20)) MiB file)|$e|$d")

e=$(timeit "$size" "$work/c.age" with_sync age -r "$age_recipient" -o "$work/c.age" "$work/plain" "$work/c.age")
d=$(timeit "$size" "$work/dec/p" with_sync age -d -i "$work/age.key" -o "$work/dec/p" "$work/c.age" "$work/dec/p")
check age "$work/dec/p" "$work/plain"; rm -f "$work/c.age"
rows+=("age $(age --version 2>/dev/null | head -1) (ChaCha20-Poly1305 STREAM)|$e|$d")

e=$(timeit "$size" "$work/c.ctr" with_sync openssl enc -aes-256-ctr -K "$ossl_key" -iv "$ossl_iv" -in "$work/plain" -out "$work/c.ctr" "$work/c.ctr")
d=$(timeit "$size" "$work/dec/p" with_sync openssl enc -d -aes-256-ctr -K "$ossl_key" -iv "$ossl_iv" -in "$work/c.ctr" -out "$work/dec/p" "$work/dec/p")
check openssl "$work/dec/p" "$work/plain"; rm -f "$work/c.ctr"
rows+=("$(openssl version | cut -d' ' -f1-2) enc -aes-256-ctr (unauthenticated)|$e|$d")

# cat: the same bytes copied into a new file and fsynced, the floor a format
# that reads and writes the file once could reach.
copy_file() { cat "$1" >"$2"; }
e=$(timeit "$size" "$work/dec/p" with_sync copy_file "$work/plain" "$work/dec/p" "$work/dec/p")
rm -f "$work/dec/p"
rows+=("cat (copy + fsync, no cryptography)|$e|$e")

echo
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; $(go version | cut -d' ' -f3)"
echo "work dir: $BENCH_DIR ($(df -PT "$work" | awk 'NR==2 {print $2}'))"
echo "file: ${SIZE_MIB} MiB random bytes (Parquet: $((psize >> 20)) MiB); MB/s = 10^6 input bytes per second, output fsynced, best of $REPS runs"
printf '%-62s %12s %12s\n' "format / tool" "encrypt MB/s" "decrypt MB/s"
for r in "${rows[@]}"; do
	IFS='|' read -r name e d <<<"$r"
	printf '%-62s %12s %12s\n' "$name" "$e" "$d"
done

# Ratios of the ppml format (rows[0]) to age (rows[3]), openssl (rows[4])
# and cat (rows[5]): above 1 is faster than that tool.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
IFS='|' read -r _ pe pd <<<"${rows[0]}"
echo
for i in 3 4 5; do
	IFS='|' read -r name e d <<<"${rows[$i]}"
	printf 'ppml format vs %-40s encrypt %sx  decrypt %sx\n' "${name%% (*}" "$(ratio "$pe" "$e")" "$(ratio "$pd" "$d")"
done
