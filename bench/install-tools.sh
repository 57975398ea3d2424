#!/usr/bin/env bash
# Installs the Debian packages the benchmark compares against (haproxy, iperf3) when they are missing.
# Idempotent: does nothing when both commands exist. Package services are not started (policy-rc.d
# answers "no" during the install); the suite starts its own HAProxy with its own config.
set -euo pipefail

missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v iperf3 >/dev/null || missing+=(iperf3)
((${#missing[@]})) || exit 0
if [[ "$(id -u)" != 0 ]]; then
  echo "bench: missing ${missing[*]}; install them (apt-get install haproxy iperf3) or run as root" >&2
  exit 1
fi
echo "[bench] installing ${missing[*]} (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  made_policy=1
fi
trap '[[ $made_policy == 1 ]] && rm -f "$policy"' EXIT
echo 'iperf3 iperf3/start_daemon boolean false' | debconf-set-selections 2>/dev/null || true
apt-get update -qq >&2
apt-get install -y --no-install-recommends "${missing[@]}" >&2
