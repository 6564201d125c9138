#!/bin/sh
# build-msi.sh VERSION ARCH BINARY OUTDIR: builds OUTDIR/wsbridge-VERSION-windows-ARCH.msi
# with wixl (Debian package wixl) from a built wsbridge.exe. wixl builds
# x86 and x64 installers only, so ARCH is amd64; arm64 ships as a zip.
set -eu
version=$1 arch=$2 binary=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
[ "$arch" = amd64 ] || { echo "build-msi.sh: wixl builds x64 and x86 MSIs, not $arch" >&2; exit 2; }

# An MSI version is three numbers; a build from a commit is 0.0.0.
msiversion=$(printf '%s' "${version#v}" | sed -n 's/^\([0-9]\{1,3\}\.[0-9]\{1,3\}\.[0-9]\{1,5\}\).*/\1/p')
[ -n "$msiversion" ] || msiversion=0.0.0

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$binary" "$stage/wsbridge.exe"
cp "$here/windows/bridge.hcl" "$stage/bridge.hcl"
cp "$top/bridge.hcl" "$stage/bridge.hcl.example"
cp "$top/README.md" "$stage/README.md"
cp "$here/windows/wsbridge.wxs" "$stage/"
mkdir -p "$out"
out=$(cd "$out" && pwd)
name="wsbridge-${version}-windows-${arch}.msi"
(cd "$stage" && wixl -a x64 -D Version="$msiversion" -D ProgramFiles=ProgramFiles64Folder \
	-D Binary=wsbridge.exe -D Example=bridge.hcl.example -D Readme=README.md -D Config=bridge.hcl \
	-o "$out/$name" wsbridge.wxs)
echo "$out/$name"
