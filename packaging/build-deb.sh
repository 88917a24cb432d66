#!/bin/sh
# Builds the vipsmart .deb into dist/ (or $DIST): the binary, stamped with
# the version, commit and build date, then the package with nfpm (pinned;
# fetched through the Go module proxy). Run from anywhere:
#   packaging/build-deb.sh            # -> dist/vipsmart_<version>_<arch>.deb
# VERSION and GOARCH (the package's architecture) override the defaults; BUILDFLAGS (default -trimpath)
# and CGO_ENABLED (default 0: a static binary) are those of go build.
set -eu
cd "$(dirname "$0")/.."
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.43.0
DIST=$PWD/dist
BUILDFLAGS=${BUILDFLAGS--trimpath}
CGO_ENABLED=${CGO_ENABLED-0}
HOSTARCH=$(go env GOARCH)
ARCH=${GOARCH:-$HOSTARCH}
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ -z "${VERSION:-}" ]; then
	# v1.2.3 on a tag, else 0.0.0~git<date>.<commit> (sorts before any release).
	VERSION=$(git describe --tags --exact-match 2>/dev/null | sed 's/^v//') || true
	[ -n "$VERSION" ] || VERSION="0.0.0~git$(date -u +%Y%m%d%H%M%S).$(echo "$COMMIT" | cut -c1-12)"
fi
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
export ARCH VERSION
mkdir -p "$DIST"
# shellcheck disable=SC2086
CGO_ENABLED=$CGO_ENABLED GOOS=linux GOARCH=$ARCH go build $BUILDFLAGS -buildvcs=false \
	-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE" \
	-o "$DIST/vipsmart" ./cmd/vipsmart
if [ "$ARCH" = "$HOSTARCH" ]; then
	"$DIST/vipsmart" completion bash > "$DIST/completion.bash"
else
	go run ./cmd/vipsmart completion bash > "$DIST/completion.bash"
fi
go run "$NFPM" package --config packaging/nfpm.yaml --packager deb --target "$DIST/"
ls "$DIST"/vipsmart_*.deb
