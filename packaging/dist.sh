#!/bin/sh
# dist.sh VERSION LDFLAGS: cross-builds every release target into dist/:
# tar.gz (linux, darwin) and zip (windows) archives, the .deb for linux
# amd64 and arm64, the MSI for windows amd64, and SHA256SUMS over them all.
# Needs go, dpkg-deb, wixl (Debian package wixl), zip and sha256sum.
set -eu
version=$1 ldflags=$2
cd "$(dirname "$0")/.."
rm -rf dist
mkdir -p dist/build

# The systemd unit, rendered by this machine's wsbridge for the paths the
# .deb uses; the same text `wsbridge service install` would write there.
go build -trimpath -o dist/build/wsbridge-host ./cmd/wsbridge
dist/build/wsbridge-host service print -os linux -config packaging/bridge.hcl \
	-installed-config /etc/wsbridge/bridge.hcl -executable /usr/bin/wsbridge >dist/build/wsbridge.service

for t in linux/amd64 linux/arm64 windows/amd64 windows/arm64 darwin/amd64 darwin/arm64; do
	os=${t%/*} arch=${t#*/}
	name=wsbridge-$version-$os-$arch
	dir=dist/build/$name
	exe=wsbridge
	[ "$os" = windows ] && exe=wsbridge.exe
	mkdir -p "$dir"
	GOOS=$os GOARCH=$arch CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/$exe" ./cmd/wsbridge
	cp README.md CHANGELOG.md "$dir/"
	cp bridge.hcl "$dir/bridge.hcl.example"
	case $os in
	windows)
		cp packaging/windows/bridge.hcl "$dir/bridge.hcl"
		(cd dist/build && zip -qr "../$name.zip" "$name")
		[ "$arch" = amd64 ] && packaging/build-msi.sh "$version" "$arch" "$dir/$exe" dist >/dev/null
		;;
	linux)
		cp packaging/bridge.hcl "$dir/bridge.hcl"
		cp dist/build/wsbridge.service "$dir/"
		tar -C dist/build -czf "dist/$name.tar.gz" "$name"
		packaging/build-deb.sh "$version" "$arch" "$dir/$exe" dist/build/wsbridge.service dist >/dev/null
		;;
	darwin)
		cp packaging/bridge.hcl "$dir/bridge.hcl"
		tar -C dist/build -czf "dist/$name.tar.gz" "$name"
		;;
	esac
done
rm -rf dist/build
(cd dist && sha256sum -- *.tar.gz *.zip *.deb *.msi >SHA256SUMS)
ls -1 dist
