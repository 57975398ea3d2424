#!/usr/bin/env bash
# Installs the Debian packages the benchmark compares against (haproxy, nginx with its stream module,
# iperf3) when they are missing. Idempotent: does nothing when all are there. Package services are not
# started (policy-rc.d answers "no" during the install); the suite starts its own HAProxy and nginx with
# their own configs.
set -euo pipefail

# Debian's dynamic stream module; the suite's nginx.conf loads it from here.
stream_module=/usr/lib/nginx/modules/ngx_stream_module.so
missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v iperf3 >/dev/null || missing+=(iperf3)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
[[ -e "$stream_module" ]] || missing+=(libnginx-mod-stream)
((${#missing[@]})) || exit 0
if [[ "$(id -u)" != 0 ]]; then
  echo "bench: missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
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
