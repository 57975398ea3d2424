#!/usr/bin/env bash
# Builds the binaries of the local test control plane (test/cluster/) from the Go module proxy:
#   etcd, kube-apiserver, kube-controller-manager, kubectl  (tools/k8s wrapper module, pinned there)
#   buildkitd, buildctl                                     (github.com/moby/buildkit, go install)
#   buildx (the docker buildx client, run standalone)       (github.com/docker/buildx, go install)
#   prometheus, promtool (alert tests, the E2E's scraper)   (github.com/prometheus/prometheus, go install)
# and the prometheus-operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule) from its module's
# example/prometheus-operator-crd/ into ~/.cache/buildkitd-autoscaler/prometheus-operator-<version>/.
# into ~/.cache/buildkitd-autoscaler/bin/<k8s-version>-<buildkit-version>/ (outside the work tree),
# skipping whatever is already there. Also installs the Debian packages the cluster needs when missing
# (socat, runc, iproute2, openssl; faketime for the clock-skew tests) unless --no-apt is given.
#
# Usage: scripts/build-binaries.sh [--no-apt] [--print-dir] [--print-crd-dir]
#   --print-dir      print the bin directory and exit (builds nothing)
#   --print-crd-dir  print the prometheus-operator CRD directory and exit (downloads nothing)
# Env: BKA_CACHE_DIR (default ~/.cache/buildkitd-autoscaler)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WRAPPER="$ROOT/tools/k8s"
K8S_VERSION="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$WRAPPER/go.mod")"
BUILDKIT_VERSION="${BUILDKIT_VERSION:-v0.18.2}"
BUILDX_VERSION="${BUILDX_VERSION:-v0.19.3}"
# Prometheus 3.x is published as module versions v0.3MM.P (Prometheus 3.MM.P).
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
CACHE_DIR="${BKA_CACHE_DIR:-$HOME/.cache/buildkitd-autoscaler}"
BIN_DIR="$CACHE_DIR/bin/$K8S_VERSION-$BUILDKIT_VERSION"
CRD_DIR="$CACHE_DIR/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"

APT=1
for arg in "$@"; do
  case "$arg" in
    --no-apt) APT=0 ;;
    --print-dir) echo "$BIN_DIR"; exit 0 ;;
    --print-crd-dir) echo "$CRD_DIR"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[build-binaries] %s\n' "$*" >&2; }

if [[ "$APT" == 1 ]]; then
  missing=()
  command -v socat >/dev/null || missing+=(socat)
  command -v runc >/dev/null || missing+=(runc)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v unshare >/dev/null || missing+=(util-linux)
  command -v faketime >/dev/null || missing+=(faketime)
  if ((${#missing[@]})); then
    if [[ "$(id -u)" != 0 ]]; then
      log "missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install -y ${missing[*]})"
      exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
      apt-get update >/dev/null
      apt-get install -y --no-install-recommends "${missing[@]}"
    }
  fi
fi

command -v go >/dev/null || { log "the Go toolchain (go >= 1.24) is required on PATH"; exit 1; }

mkdir -p "$BIN_DIR"
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

now() { date +%s; }
total_start=$(now)
built_any=0

# --- Kubernetes + etcd (wrapper module) ---
K8S_BINS=(etcd kube-apiserver kube-controller-manager kubectl)
need_k8s=()
for b in "${K8S_BINS[@]}"; do [[ -x "$BIN_DIR/$b" ]] || need_k8s+=("$b"); done
if ((${#need_k8s[@]})); then
  start=$(now)
  log "building ${need_k8s[*]} (Kubernetes $K8S_VERSION, etcd from tools/k8s/go.mod) into $BIN_DIR ..."
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  vpkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
  ldflags="-s -w"
  for p in "${vpkgs[@]}"; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  declare -A pkg=(
    [etcd]=go.etcd.io/etcd/server/v3
    [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
    [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
    [kubectl]=k8s.io/kubernetes/cmd/kubectl
  )
  tmp="$(mktemp -d "$BIN_DIR/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  for b in "${need_k8s[@]}"; do
    s=$(now)
    (cd "$WRAPPER" && go build -trimpath -tags providerless -ldflags "$ldflags" -o "$tmp/$b" "${pkg[$b]}")
    mv "$tmp/$b" "$BIN_DIR/$b"
    log "  $b built in $(($(now) - s))s"
  done
  log "Kubernetes binaries built in $(($(now) - start))s"
  built_any=1
fi

# --- BuildKit (its own module graph, installed directly) ---
need_bk=()
for b in buildkitd buildctl; do [[ -x "$BIN_DIR/$b" ]] || need_bk+=("$b"); done
if ((${#need_bk[@]})); then
  start=$(now)
  log "building ${need_bk[*]} (BuildKit $BUILDKIT_VERSION) into $BIN_DIR ..."
  pkgs=()
  for b in "${need_bk[@]}"; do pkgs+=("github.com/moby/buildkit/cmd/$b@$BUILDKIT_VERSION"); done
  GOBIN="$BIN_DIR" go install -trimpath \
    -ldflags "-s -w -X github.com/moby/buildkit/version.Version=$BUILDKIT_VERSION" "${pkgs[@]}"
  log "BuildKit binaries built in $(($(now) - start))s"
  built_any=1
fi

# --- docker buildx (its own module graph; the bin dir is keyed by the other versions, so check its own) ---
if ! "$BIN_DIR/buildx" version 2>/dev/null | awk -v v="$BUILDX_VERSION" '$2 == v {found = 1} END {exit !found}'; then
  start=$(now)
  log "building buildx $BUILDX_VERSION into $BIN_DIR ..."
  GOBIN="$BIN_DIR" go install -trimpath \
    -ldflags "-s -w -X github.com/docker/buildx/version.Version=$BUILDX_VERSION" \
    "github.com/docker/buildx/cmd/buildx@$BUILDX_VERSION"
  log "buildx built in $(($(now) - start))s"
  built_any=1
fi

# --- Prometheus server and promtool (one go install, so they share compilation; versioned like buildx) ---
prom_minor="${PROMETHEUS_VERSION#v0.3}"; prom_minor="${prom_minor%%.*}"
PROMETHEUS_RELEASE="3.$((10#$prom_minor)).${PROMETHEUS_VERSION##*.}"
need_prom=0
for b in prometheus promtool; do
  "$BIN_DIR/$b" --version 2>/dev/null | awk -v v="$PROMETHEUS_RELEASE" '$3 == v {found = 1} END {exit !found}' || need_prom=1
done
if [[ "$need_prom" == 1 ]]; then
  start=$(now)
  log "building prometheus and promtool $PROMETHEUS_RELEASE ($PROMETHEUS_VERSION) into $BIN_DIR ..."
  GOBIN="$BIN_DIR" go install -trimpath \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_RELEASE" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
  log "prometheus and promtool built in $(($(now) - start))s"
  built_any=1
fi

# --- prometheus-operator CRDs (the definitions its ServiceMonitor/PodMonitor/PrometheusRule are checked against) ---
CRDS=(servicemonitors podmonitors prometheusrules)
need_crd=0
for c in "${CRDS[@]}"; do [[ -s "$CRD_DIR/monitoring.coreos.com_$c.yaml" ]] || need_crd=1; done
if [[ "$need_crd" == 1 ]]; then
  log "downloading the prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs into $CRD_DIR ..."
  module_dir="$(cd / && go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
    | awk -F'"' '$2 == "Dir" {print $4}')"
  [[ -d "$module_dir/example/prometheus-operator-crd" ]] || { log "no example/prometheus-operator-crd in $module_dir"; exit 1; }
  mkdir -p "$CRD_DIR"
  for c in "${CRDS[@]}"; do cp "$module_dir/example/prometheus-operator-crd/monitoring.coreos.com_$c.yaml" "$CRD_DIR/"; done
  built_any=1
fi

if [[ "$built_any" == 0 ]]; then
  log "all binaries already present in $BIN_DIR (nothing to build)"
else
  log "done in $(($(now) - total_start))s: $BIN_DIR"
fi
echo "$BIN_DIR"
