#!/usr/bin/env bash
# Builds the Debian package dist/pfcarp_VERSION_ARCH.deb with goreleaser's
# nfpm (run from the Go module proxy at a pinned version; nothing is added
# to go.mod). VERSION defaults to 0.0.0~git<date>.<commit>.
set -euo pipefail
cd "$(dirname "$0")/.."
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
export ARCH=${ARCH:-$(go env GOARCH)}
if [ -z "${VERSION:-}" ]; then
	rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	day=$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date +%Y%m%d)
	VERSION="0.0.0~git${day}.${rev}"
fi
export VERSION
export BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath \
	-ldflags "-s -w -X github.com/pfcarp/pfcarp/internal/version.Release=$VERSION" \
	-o "$BUILD/pfcarp" ./cmd/pfcarp
for m in pfcarp.8 pfcarp.conf.5; do
	gzip -9n <"docs/man/$m" >"$BUILD/$m.gz"
done
mkdir -p dist
out="dist/pfcarp_${VERSION}_${ARCH}.deb"
rm -f "$out"
sed -e "s|\${ARCH}|$ARCH|g" -e "s|\${VERSION}|$VERSION|g" -e "s|\${BUILD}|$BUILD|g" \
	packaging/nfpm.yaml >"$BUILD/nfpm.yaml"
GOFLAGS=-mod=mod go run "$NFPM" package --config "$BUILD/nfpm.yaml" --packager deb --target "$out"
echo "$out"
