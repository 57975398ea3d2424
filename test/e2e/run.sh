#!/usr/bin/env bash
# E2E: the shipped manifests on a real cluster, scenarios driven from outside, report at the end.
#   test/e2e/run.sh [--backend local|kind|minikube|docker-desktop|existing] [--image NAME:TAG]
#                   [--buildkitd mock|real|all] [--install kustomize|helm] [--discovery endpoints|dns]
#                   [--report-dir DIR] [--keep-namespace] [--idle-timeout S] [--ready-wait S] [--burst N]
# local: builds the gateway (dist/, which the process kubelet runs for the buildkitd-autoscaler image),
#   brings up test/cluster (root, Linux; BKA_CLUSTER_NAME), runs inside its network namespace, and brings
#   the cluster down again if this run brought it up (BKA_KEEP_CLUSTER=1 keeps it).
# kind and the others: the current kubectl context; the image must already be in the cluster
#   (kind load docker-image ...), and the runner must be able to pull or have alpine/socat:latest.
# Writes the report directory on every run, pass or fail: REPORT.md, k8s-e2e-results.json, k8s/ (objects,
# events, scale decisions, every pod's logs, timeline), diagnostics.json, timeline.jsonl (README.md lists them).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo_root"

backend=local
args=()
while (($#)); do
  case "$1" in
    --backend) backend=$2; args+=("$1" "$2"); shift 2 ;;
    --backend=*) backend=${1#*=}; args+=("$1"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done

node_bin="$repo_root/node_modules/.bin/node"
[[ -x "$node_bin" ]] || node_bin=node

case "$backend" in
  local)
    npm run --silent build
    # A cluster this run brings up also goes down at the end (BKA_KEEP_CLUSTER=1 keeps it); one that was
    # already up (npm test's earlier layers, a developer's) stays up.
    was_up=0
    "$node_bin" test/cluster/cli.ts status >/dev/null 2>&1 && was_up=1
    "$node_bin" test/cluster/cli.ts up
    status=0
    "$node_bin" test/cluster/cli.ts exec -- "$node_bin" test/e2e/main.ts "${args[@]}" || status=$?
    if ((was_up == 0)) && [[ "${BKA_KEEP_CLUSTER:-0}" != 1 ]]; then
      "$node_bin" test/cluster/cli.ts down >/dev/null 2>&1 || true
    fi
    exit "$status"
    ;;
  kind | minikube | docker-desktop | existing)
    command -v kubectl >/dev/null || { echo "kubectl is required on PATH for --backend $backend" >&2; exit 2; }
    exec "$node_bin" test/e2e/main.ts "${args[@]}"
    ;;
  *)
    echo "unknown backend: $backend (local, kind, minikube, docker-desktop, existing)" >&2
    exit 2
    ;;
esac
