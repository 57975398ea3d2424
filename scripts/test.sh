#!/usr/bin/env bash
# The whole test suite, as README's test command and CI run it. Installs what it needs (Node 24 from the
# npm registry via `npm ci`, Debian packages and the control-plane binaries via build-binaries.sh, helm and
# actionlint via build-helm.sh), then runs every layer, fastest first. Needs Linux and root (network
# namespaces) for the cluster layers.
#   scripts/test.sh            everything
#   scripts/test.sh --quick    build, typecheck, lint, unit and process tests only (no root, no cluster)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1

[[ -x node_modules/.bin/node ]] || npm ci --no-audit --no-fund
export PATH="$PWD/node_modules/.bin:$PATH"
case "$(node -v)" in
  v2[4-9].*) ;;
  *) echo "scripts/test.sh: expected Node >= 24 from node_modules/.bin (the devDependency 'node'), got $(node -v)" >&2; exit 1 ;;
esac

export BKA_CLUSTER_NAME="${BKA_CLUSTER_NAME:-test}"
suite_start=$SECONDS
declare -a timings=()
passed=0
step() {
  local name=$1; shift
  local start=$SECONDS
  printf '\n=== %s\n' "$name"
  "$@"
  timings+=("$(printf '%-22s %5ss' "$name" $((SECONDS - start)))")
  passed=$((passed + 1))
}
cleanup() {
  local status=$?
  if ((quick == 0)) && [[ "${BKA_KEEP_CLUSTER:-0}" != 1 ]]; then node test/cluster/cli.ts down >/dev/null 2>&1 || true; fi
  printf '\n=== timings\n'
  printf '%s\n' "${timings[@]}" "total                  $((SECONDS - suite_start))s"
  # One closing line for the whole run: each step is a suite of its own.
  printf 'steps: %d passed, %d failed\n' "$passed" $((status == 0 ? 0 : 1))
}
trap cleanup EXIT

step build npm run --silent build
step typecheck npm run --silent typecheck
step lint npm run --silent lint
step unit+process npm run --silent test:unit
((quick)) && exit 0

step binaries bash scripts/build-binaries.sh
step lint-workflows npm run --silent lint:workflows
step deploy npm run --silent test:deploy
step cluster-smoke npm run --silent cluster:test
step integration npm run --silent test:integration
step deploy-on-cluster npm run --silent test:deploy:cluster
step e2e npm run --silent test:e2e
if grep -q '"bench:short"' package.json; then step bench-short npm run --silent bench:short; fi
