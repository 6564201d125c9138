#!/bin/sh
# build-deb.sh VERSION ARCH BINARY UNIT OUTDIR: builds
# OUTDIR/wsbridge_VERSION_ARCH.deb with dpkg-deb from a built binary and the
# unit `wsbridge service print` rendered for /usr/bin and /etc/wsbridge.
set -eu
version=$1 arch=$2 binary=$3 unit=$4 out=$5
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

# Debian versions start with a digit: v1.2.3 is 1.2.3; a commit (no tag
# yet) is 0~gitHASH, which sorts below every release.
version=${version#v}
if ! printf '%s' "$version" | grep -Eq '^[0-9]+\.[0-9]+'; then
	version="0~git$version"
fi
version=$(printf '%s' "$version" | tr -c 'A-Za-z0-9.+~\n' '~')

root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$binary" "$root/usr/bin/wsbridge"
install -D -m 0644 "$here/bridge.hcl" "$root/etc/wsbridge/bridge.hcl"
install -D -m 0644 "$unit" "$root/lib/systemd/system/wsbridge.service"
install -D -m 0644 "$top/bridge.hcl" "$root/usr/share/doc/wsbridge/bridge.hcl.example"
install -D -m 0644 "$top/README.md" "$root/usr/share/doc/wsbridge/README.md"
install -D -m 0644 "$top/CHANGELOG.md" "$root/usr/share/doc/wsbridge/CHANGELOG.md"
install -d -m 0755 "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$here/deb/control" >"$root/DEBIAN/control"
install -m 0644 "$here/deb/conffiles" "$root/DEBIAN/conffiles"
install -m 0755 "$here/deb/postinst" "$here/deb/prerm" "$here/deb/postrm" "$root/DEBIAN/"
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out/wsbridge_${version}_${arch}.deb" >/dev/null
echo "$out/wsbridge_${version}_${arch}.deb"
