#!/usr/bin/env bash
# Fetch etcd and build kube-apiserver for internal/distjob's cluster tests
# (TestLaunch*: a real API server on loopback; the tests skip without
# them). Cached in ~/.cache/kfllm/kube (KFLLM_CACHE overrides ~/.cache/kfllm):
#   etcd            Debian bookworm's etcd-server 3.4.23-4+b4 (apt-get
#                   download, sha256-checked, dpkg-deb -x)
#   kube-apiserver  k8s.io/kubernetes v1.34.2 from the Go module proxy, its
#                   k8s.io/* staging modules at v0.34.2 (several minutes)
set -euo pipefail
CACHE="${KFLLM_CACHE:-$HOME/.cache/kfllm}"
OUT="$CACHE/kube"
ETCD_DEB=etcd-server_3.4.23-4+b4_amd64.deb
ETCD_SHA256=3a9445d4560ad6de1c375756b2a17d97713df44cbd20a658c871fe108af7ef5d
K8S=v1.34.2
STAGING=v0.34.2
mkdir -p "$OUT"

if [ ! -x "$OUT/etcd" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get download "etcd-server=3.4.23-4+b4" >/dev/null)
	echo "$ETCD_SHA256  $tmp/$ETCD_DEB" | sha256sum -c --quiet
	dpkg-deb -x "$tmp/$ETCD_DEB" "$tmp/x"
	install -m 0755 "$tmp/x/usr/bin/etcd" "$OUT/etcd.tmp" && mv "$OUT/etcd.tmp" "$OUT/etcd"
fi

if [ ! -x "$OUT/kube-apiserver" ]; then
	mod="$OUT/build"
	mkdir -p "$mod"
	go mod download -json "k8s.io/kubernetes@$K8S" >"$mod/download.json"
	dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' "$mod/download.json")
	{
		echo "module kubebins"
		echo
		echo "go 1.25"
		echo
		echo "require k8s.io/kubernetes $K8S"
		echo
		echo "replace ("
		# k8s.io/kubernetes replaces its staging modules with ./staging/...,
		# which its module zip leaves out: take them from the proxy instead.
		awk -v v="$STAGING" '/=> \.\/staging/ { print "\t" $1 " => " $1 " " v }' "$dir/go.mod"
		echo ")"
	} >"$mod/go.mod"
	printf '//go:build tools\n\npackage kubebins\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >"$mod/tools.go"
	(cd "$mod" && go mod tidy && go build -trimpath -ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
	mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
fi
"$OUT/etcd" --version | head -1
"$OUT/kube-apiserver" --version
