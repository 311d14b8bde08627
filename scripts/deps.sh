#!/usr/bin/env bash
# Installs what pfcarp's demo and tests need on a fresh Debian machine with Go,
# as root: iproute2 (ip, bridge: the lab's namespaces), tcpdump (pflog tests),
# ucarp (the independent CARP implementation of integration/ucarp_test.go),
# systemd-analyze and man (packaging/: the .deb's unit and man pages),
# chromium (integration/statuspage_test.go loads the status page in it,
# headless; about 124 MB to download, 414 MB installed, ~12 s from a near
# mirror), the Go modules, and golangci-lint at the version scripts/lint.sh
# pins (built from source through the Go module proxy into $(go env
# GOPATH)/bin: about 80 s on 2 cores, once). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v ucarp >/dev/null 2>&1 || [ -x /usr/sbin/ucarp ] || need+=(ucarp)
# the package test: dpkg (always on Debian), systemd-analyze, man
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v man >/dev/null 2>&1 || need+=(man-db)
# the status page test: a real browser, headless
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${need[@]}"
fi
go mod download
scripts/lint.sh --install-only
