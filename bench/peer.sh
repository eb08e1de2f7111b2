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
# Vault's release tags build against the api and sdk modules of the same
# commit (go.mod replaces them with ./api and ./sdk), which the module zip
# leaves out; the published sdk versions may not match the tag. v1.21.4
# builds with the sdk v0.21.0 its go.mod requires after three call sites
# are adapted to that sdk's signatures (patch_v1_21_4 below: two identity
# activation-flag calls gained an argument, transit's RestorePolicy lost a
# return value; none is on the transit datakey/decrypt path measured). A
# failed build is remembered, so bench/kms.sh does not rebuild for minutes
# on every run.
failed="$cache/vault-$VAULT_VERSION.build-failed"
if [ -f "$failed" ] && [ -z "${PEER_RETRY:-}" ]; then
	echo "peer.sh: Vault $VAULT_VERSION did not build here before (log: $failed.log); PEER_RETRY=1 tries again" >&2
	exit 1
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
	if [ "$VAULT_VERSION" = v1.21.4 ]; then
		(cd "$src" &&
			sed -i 's|ActivationFunc: iStore.activateDeduplication,|ActivationFunc: func(ctx context.Context, req *logical.Request, _ string) error { return iStore.activateDeduplication(ctx, req) },|' vault/identity_store.go &&
			sed -i 's|b.idStoreBackend.ActivationFunc(ctx, nil)|b.idStoreBackend.ActivationFunc(ctx, nil, "")|' vault/logical_system_activation_flags.go &&
			sed -i 's|restoredKeyName, err := b.lm.RestorePolicy(|restoredKeyName, err := keyName, b.lm.RestorePolicy(|' builtin/logical/transit/path_restore.go)
	fi
	echo "building vault (this takes several minutes the first time)..." >&2
	if ! (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" .) 2>"$failed.log"; then
		tail -5 "$failed.log" >&2
		touch "$failed"
		echo "peer.sh: Vault $VAULT_VERSION does not build from the module proxy (log: $failed.log); PEER_RETRY=1 tries again" >&2
		exit 1
	fi
	mv "$bin.tmp" "$bin"
fi
echo "$bin"
