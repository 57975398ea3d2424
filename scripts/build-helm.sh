#!/usr/bin/env bash
# Builds the release tools pinned in tools/helm/go.mod (helm, actionlint) from the Go module proxy into
# $BKA_CACHE_DIR/bin/<tool>-<version>/ (default ~/.cache/buildkitd-autoscaler, as scripts/build-binaries.sh)
# and skips a tool whose binary is already there.
# Prints one line per tool: "<name> <absolute path>". Usage: scripts/build-helm.sh [helm|actionlint]...
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
module_dir="$repo_root/tools/helm"
cache_root="${BKA_CACHE_DIR:-$HOME/.cache/buildkitd-autoscaler}/bin"

# The version comes from go.mod, so bumping a tool is one `go get -tool` in tools/helm. Read with awk,
# not `go list`, so a cached binary is found without Go or a module download.
module_version() {
  local version
  version=$(awk -v m="$1" '$1 == m && $2 ~ /^v/ {print $2; exit}' "$module_dir/go.mod")
  [[ -n "$version" ]] || { echo "$1 is not required in $module_dir/go.mod" >&2; exit 1; }
  echo "$version"
}

build_tool() {
  local name=$1 module=$2 package=$3 ldflags=${4:-}
  local version dir
  version=$(module_version "$module")
  dir="$cache_root/$name-$version"
  if [[ ! -x "$dir/$name" ]]; then
    mkdir -p "$dir"
    local started=$SECONDS
    # Build to a temporary name and rename, so an interrupted build never leaves a binary that looks done.
    (cd "$module_dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$dir/.$name.partial" "$package")
    mv "$dir/.$name.partial" "$dir/$name"
    echo "built $name $version in $((SECONDS - started))s" >&2
  fi
  echo "$name $dir/$name"
}

build_helm() {
  local version k8s major minor
  version=$(module_version helm.sh/helm/v3)
  if [[ -x "$cache_root/helm-$version/helm" ]]; then
    echo "helm $cache_root/helm-$version/helm"
    return
  fi
  # Same ldflags as helm's own Makefile: without them `helm template` claims Kubernetes v1.20 and
  # `kubeVersion` constraints in Chart.yaml fail, and `helm version` says nothing useful.
  k8s=$(module_version k8s.io/client-go)
  # client-go v0.N.x ships with Kubernetes v1.N.x.
  major=1
  minor=$(echo "$k8s" | cut -d. -f2)
  local flags="-X helm.sh/helm/v3/internal/version.version=$version"
  flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=" -X $pkg.k8sVersionMajor=$major -X $pkg.k8sVersionMinor=$minor"
  done
  build_tool helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "$flags"
}

build_actionlint() {
  local version
  version=$(module_version github.com/rhysd/actionlint)
  build_tool actionlint github.com/rhysd/actionlint github.com/rhysd/actionlint/cmd/actionlint \
    "-X github.com/rhysd/actionlint.version=$version"
}

tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=(helm actionlint)
for tool in "${tools[@]}"; do
  case "$tool" in
    helm) build_helm ;;
    actionlint) build_actionlint ;;
    *) echo "unknown tool: $tool (expected helm or actionlint)" >&2; exit 2 ;;
  esac
done
