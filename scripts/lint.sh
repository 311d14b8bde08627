#!/usr/bin/env bash
# Runs golangci-lint, at the pinned version below, with the repository's
# .golangci.yml, on every package; exits non-zero on any finding. With
# --install-only (as scripts/deps.sh runs it) it only installs the
# pinned version into $(go env GOPATH)/bin when that is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
golangci_version=v2.15.0
gobin="$(go env GOPATH)/bin"
lint="$gobin/golangci-lint"
if ! "$lint" version 2>/dev/null | grep -q "version ${golangci_version#v} "; then
	echo "+ go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$golangci_version"
	GOBIN="$gobin" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$golangci_version"
fi
if [ "${1:-}" = --install-only ]; then
	exit 0
fi
echo "+ golangci-lint run ./..."
"$lint" run ./...
