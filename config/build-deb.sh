#!/usr/bin/env bash
# Builds the Debian package hello-server_VERSION_ARCH.deb from this tree, with debhelper.
#
# Usage: config/build-deb.sh [--install-build-deps] [OUT_DIR]
#   --install-build-deps  first install what is missing of the Build-Depends of
#                         config/debian/control, with `apt-get build-dep` (through sudo when
#                         not root)
#   OUT_DIR               where the .deb (and its .ddeb, .buildinfo, .changes) go;
#                         default build-deb/ in the tree
# Environment:
#   HELLO_DEB_VERSION     build this version instead of config/debian/changelog's (a
#                         changelog entry is added in the scratch copy only)
#   HELLO_DEB_JOBS        parallel compile jobs (default 2)
#
# debhelper wants debian/ at the top of the source tree; this project keeps it in
# config/debian/. So the build runs in a scratch copy of the tree (the sources, with
# config/debian/ copied to debian/), removed afterwards: the tree itself is never written
# to, except OUT_DIR.
set -Eeuo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
install_deps=0
if [ "${1:-}" = --install-build-deps ]; then install_deps=1; shift; fi
out=${1:-$src/build-deb}
jobs=${HELLO_DEB_JOBS:-2}

for tool in dpkg-buildpackage dpkg-parsechangelog; do
    command -v "$tool" >/dev/null ||
        { echo "build-deb: no $tool: apt-get install dpkg-dev (and see --install-build-deps)" >&2; exit 1; }
done

# The changelog's version must be the project's (the package's upstream version).
project_version=$(sed -n 's/^project(uds-hello VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
changelog_version=$(dpkg-parsechangelog -l "$src/config/debian/changelog" -S Version)
if [ "${changelog_version%%[-+~]*}" != "$project_version" ]; then
    echo "build-deb: config/debian/changelog is at $changelog_version, CMakeLists.txt at $project_version:" \
         "add a changelog entry" >&2
    exit 1
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree=$work/uds-hello-$project_version
mkdir "$tree"
# the sources the build uses (tests/, docker/ and build directories stay out)
cp -a "$src/CMakeLists.txt" "$src/README.md" "$src/apps" "$src/cmake" "$src/config" "$src/lib" "$tree/"
cp -a "$src/config/debian" "$tree/debian"

if [ -n "${HELLO_DEB_VERSION:-}" ]; then
    maintainer=$(dpkg-parsechangelog -l "$src/config/debian/changelog" -S Maintainer)
    {
        printf 'uds-hello (%s) unstable; urgency=medium\n\n  * Build of %s.\n\n' "$HELLO_DEB_VERSION" "$HELLO_DEB_VERSION"
        printf ' -- %s  %s\n\n' "$maintainer" "$(date -R)"
        cat "$src/config/debian/changelog"
    } >"$tree/debian/changelog"
fi

if [ $install_deps = 1 ] && ! (cd "$tree" && dpkg-checkbuilddeps 2>/dev/null); then
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q --no-install-recommends "$tree"
fi

cd "$tree"
nice -n 10 dpkg-buildpackage --build=binary --no-sign -J"$jobs"
cd "$work"
mv -f ./*.deb ./*.buildinfo ./*.changes "$out/"
for ddeb in ./*.ddeb; do [ -e "$ddeb" ] && mv -f "$ddeb" "$out/"; done
version=$(dpkg-parsechangelog -l "$tree/debian/changelog" -S Version)
echo "build-deb: $(ls "$out"/hello-server_"${version}"_*.deb)"
