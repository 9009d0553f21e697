#!/bin/sh
# packaging/build-deb.sh OUTDIR: build evcsd's binary .debs from this source
# tree and put them (with the .changes and .buildinfo) in OUTDIR.
#
# The tree is copied to a temporary directory (git's view when it is a git
# checkout: tracked files plus untracked ones that are not ignored, so build
# products and autotools output stay behind); packaging/debian becomes debian/
# there and `dpkg-buildpackage -us -uc -b` runs. Lintian then checks the
# result: any error fails the script; warnings are printed.
#
# Needs: dpkg-dev debhelper fakeroot lintian, and the Build-Depends of
# packaging/debian/control (dpkg-checkbuilddeps names what is missing).
# Environment: DEB_BUILD_OPTIONS is passed through (e.g. parallel=4);
# KEEP_BUILD_DIR=1 keeps the temporary directory for inspection.
set -eu

die() {
	echo "build-deb.sh: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: $0 OUTDIR"
outdir=$1
top=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$top/configure.ac" ] && [ -d "$top/packaging/debian" ] || die "cannot find the source tree"

for tool in dpkg-buildpackage dpkg-parsechangelog dh fakeroot lintian; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool not found (apt-get install dpkg-dev debhelper fakeroot lintian)"
done

# The changelog's upstream version must be the one configure.ac builds, or
# the .debs would carry a version the binaries do not report.
pkgver=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
upver=${pkgver#*:}
upver=${upver%-*}
acver=$(sed -n 's/^AC_INIT(\[[^]]*\], *\[\([^]]*\)\].*/\1/p' "$top/configure.ac")
[ "$upver" = "$acver" ] ||
	die "packaging/debian/changelog has $pkgver but configure.ac has $acver; add a changelog entry (dch -v $acver-1)"

work=$(mktemp -d "${TMPDIR:-/tmp}/evcsd-deb.XXXXXX")
cleanup() {
	if [ "${KEEP_BUILD_DIR:-0}" = 1 ]; then
		echo "build-deb.sh: build directory kept: $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

src="$work/evcsd-$upver"
mkdir "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# -z: file names are copied verbatim, whatever characters they hold.
	(cd "$top" && git ls-files -z --cached --others --exclude-standard) |
		(cd "$top" && xargs -0 cp --parents -a -t "$src" --) 2>/dev/null ||
		die "copying the tree failed"
	# A file deleted in the work tree but still in the index is not copied;
	# cp reports it, which is why its errors are silenced above. Check the
	# copy has the essentials instead.
	[ -f "$src/configure.ac" ] || die "copying the tree failed"
else
	# A release tarball: copy everything (it has no build products).
	cp -a "$top/." "$src/"
fi
rm -rf "$src/debian"
cp -a "$top/packaging/debian" "$src/debian"

echo "build-deb.sh: building in $src" >&2
(cd "$src" && dpkg-checkbuilddeps) || die "missing build dependencies (see above)"
(cd "$src" && dpkg-buildpackage -us -uc -b) || die "dpkg-buildpackage failed"

changes=$(ls "$work"/*.changes)
echo "build-deb.sh: lintian $changes" >&2
# --fail-on error: errors fail the build, warnings are shown but allowed.
lintian --fail-on error --display-info "$changes" || die "lintian reported errors"

mkdir -p "$outdir"
cp "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$outdir"/
ls -1 "$outdir"/*.deb
