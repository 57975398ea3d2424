#!/usr/bin/env bash
# Lints .github/workflows with actionlint (built by scripts/build-helm.sh). actionlint also runs shellcheck
# on every `run:` block when shellcheck is on PATH; it is installed from Debian when missing and we are
# root, so the same script checks the same things on every machine.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ! command -v shellcheck >/dev/null; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing shellcheck (Debian) for actionlint's run: checks" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends shellcheck >/dev/null 2>&1 || {
      apt-get update >/dev/null
      apt-get install -y --no-install-recommends shellcheck >/dev/null
    }
  else
    echo "shellcheck not found: run: blocks are not shell-checked (apt-get install shellcheck)" >&2
  fi
fi

actionlint=$(bash "$repo_root/scripts/build-helm.sh" actionlint | awk '$1 == "actionlint" {print $2}')
cd "$repo_root"
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if ((${#workflows[@]} == 0)); then
  echo "no workflows under .github/workflows" >&2
  exit 1
fi
"$actionlint" "$@" "${workflows[@]}"
echo "actionlint: ${#workflows[@]} workflows clean"
