#!/usr/bin/env bash
# Installs the peers `pfcarp lab bench` measures pfcarp against, from Debian's
# packages, when they are absent (as root; safe to run again):
#   wrk        HTTP load generator with per-request latency (new connections/s
#              with `Connection: close`, requests/s with keep-alive)
#   iperf3     bulk TCP throughput
#   haproxy    the TCP-mode proxy alternative (forwarding (d))
#   keepalived VRRP, the CARP alternative (failover)
#   conntrackd conntrack replication in FT-FW mode, the pfsync alternative
# The bench runs every peer inside its own lab namespaces with configs it
# writes into its lab directory; Debian's service units are never started:
# a policy-rc.d that refuses every start is in place while apt installs
# (unless the machine already has one), so no peer ever runs in the host's
# namespace.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have wrk || need+=(wrk)
have iperf3 || need+=(iperf3)
have haproxy || need+=(haproxy)
have keepalived || need+=(keepalived)
have conntrackd || need+=(conntrackd)
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "bench-deps: need root to install ${need[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
prc=/usr/sbin/policy-rc.d
made=
if [ ! -e "$prc" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$prc"
	chmod 755 "$prc"
	made=1
fi
cleanup() { if [ -n "$made" ]; then rm -f "$prc"; fi; }
trap cleanup EXIT
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
