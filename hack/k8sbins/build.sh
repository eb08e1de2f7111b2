#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kubectl and etcd from Go modules
# (k8s.io/kubernetes v1.37.2, staging modules v0.37.2, etcd server v3.7.0) for the
# envtest-based tests, and print the directory holding them (use it as
# KUBEBUILDER_ASSETS).
#
# The binaries go to ${PPML_CACHE:-$HOME/.cache/ppml}/k8sbins/<key>, where <key> is
# the sha256 of this module's go.mod, go.sum and this script: a cache hit costs
# nothing, a version bump builds a new directory. Cold build: ~6 min on 2 cores,
# ~3.8 GB GOCACHE, ~600 MB module cache, ~2.8 GB peak RSS.
#
# Usage:  KUBEBUILDER_ASSETS=$(hack/k8sbins/build.sh) go test ./k8s/...
# Only the directory is printed on stdout; progress goes to stderr.
#
# This is a separate tools module; the main module never imports it.
set -euo pipefail
cd "$(dirname "$0")"

KV=v1.37.2 # must match the k8s.io/kubernetes require in go.mod
KEY=$(cat go.mod go.sum build.sh | sha256sum | cut -c1-16)
CACHE=${PPML_CACHE:-$HOME/.cache/ppml}/k8sbins
DIR=$CACHE/$KEY
BINS="kube-apiserver kube-controller-manager kubectl etcd"

complete() {
	local b
	for b in $BINS; do [ -x "$1/$b" ] || return 1; done
}

mkdir -p "$CACHE"
# Serialise concurrent builds of the same key (parallel CI jobs on one machine).
exec 9>"$CACHE/.$KEY.lock"
flock 9

if ! complete "$DIR"; then
	TMP=$(mktemp -d "$CACHE/.$KEY.tmp.XXXXXX")
	trap 'rm -rf "$TMP"' EXIT
	start=$(date +%s)
	P=k8s.io/component-base/version
	LDFLAGS="-s -w -X $P.gitVersion=$KV -X $P.gitMajor=1 -X $P.gitMinor=37 -X $P.gitTreeState=clean -X $P.buildDate=1970-01-01T00:00:00Z"
	LDFLAGS="$LDFLAGS -X k8s.io/client-go/pkg/version.gitVersion=$KV -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=37"
	export GOWORK=off
	for c in kube-apiserver kube-controller-manager kubectl; do
		echo "k8sbins: building $c" >&2
		go build -trimpath -ldflags "$LDFLAGS" -o "$TMP/$c" k8s.io/kubernetes/cmd/$c
	done
	echo "k8sbins: building etcd" >&2
	go build -trimpath -ldflags "-s -w" -o "$TMP/etcd" go.etcd.io/etcd/server/v3
	rm -rf "$DIR"
	mv "$TMP" "$DIR"
	trap - EXIT
	echo "k8sbins: built in $(($(date +%s) - start))s into $DIR" >&2
fi
echo "$DIR"
