#!/usr/bin/env bash
# Builds the reference peer for bench/kms.sh: HashiCorp Vault, from source with
# `go build`, in a cached directory (the Go module proxy serves Vault's module;
# OpenBao's module path is refused by the proxy in this environment).
# Prints the path of the binary. Idempotent: a built binary is reused.
#
#   bash bench/peer.sh            # VAULT_VERSION=v1.21.4 by default
set -euo pipefail

VAULT_VERSION=${VAULT_VERSION:-v1.21.4}
cache=${PPML_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ppml-bench}
bin="$cache/vault-$VAULT_VERSION/vault"
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/vault.lock"
flock 9
if [ ! -x "$bin" ]; then
	echo "fetching github.com/hashicorp/vault@$VAULT_VERSION from the Go module proxy..." >&2
	dir=$(cd "$cache" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/vault@$VAULT_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
	[ -n "$dir" ] || { echo "peer.sh: go mod download returned no directory" >&2; exit 1; }
	# The module zip leaves out Vault's nested modules (api, sdk) that its
	# go.mod replaces with ./api and ./sdk: build a writable copy that takes
	# them from the proxy at the versions go.mod requires.
	src="$cache/vault-$VAULT_VERSION/src"
	rm -rf "$src"
	mkdir -p "$src"
	cp -r "$dir/." "$src"
	chmod -R u+w "$src"
	(cd "$src" && for m in $(awk '$1 == "replace" && $4 ~ /^\.\// {print $2}' go.mod); do
		go mod edit -dropreplace="$m"
	done)
	echo "building vault (this takes several minutes the first time)..." >&2
	(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" .)
	mv "$bin.tmp" "$bin"
fi
echo "$bin"
