#!/usr/bin/env bash
# Offline real data that no PyPI package ships, fetched with the system's own package client at set-up time.
#
# Chapter 6 (point-cloud registration) samples its offline shapes from CGAL's mesh archive, which Debian ships in
# the package `libcgal-demo` (/usr/share/doc/libcgal-dev/data.tar.gz). `apt-get download` + `dpkg-deb -x` need no
# root and install none of its dependencies; apt verifies the package's signature. The archive is copied
# (atomically) to $DLC_DATA_DIR/cgal/data.tar.gz (default ~/.cache/dlc-teach); dlc_teach checks its SHA-256.
# Without apt-get (or offline) this script only warns: chapter 6 then falls back to procedural shapes and says so.
set -euo pipefail

dest="${DLC_DATA_DIR:-$HOME/.cache/dlc-teach}/cgal"
if [ -s "$dest/data.tar.gz" ]; then
    echo "fetch_offline_data: $dest/data.tar.gz is present"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "fetch_offline_data: WARNING: no apt-get/dpkg-deb; chapter 6 will use procedural shapes instead of CGAL's meshes" >&2
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
get() { (cd "$tmp" && apt-get download -q libcgal-demo >/dev/null 2>&1); }
if ! get; then
    # a fresh machine may have no package lists yet; refreshing them needs root
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
    if ! get; then
        echo "fetch_offline_data: WARNING: 'apt-get download libcgal-demo' failed; chapter 6 will use procedural shapes" >&2
        exit 0
    fi
fi
dpkg-deb -x "$tmp"/libcgal-demo_*.deb "$tmp/x"
src="$tmp/x/usr/share/doc/libcgal-dev/data.tar.gz"
[ -s "$src" ] || { echo "fetch_offline_data: ERROR: the package holds no $src" >&2; exit 1; }
mkdir -p "$dest"
cp "$src" "$dest/data.tar.gz.part"
mv "$dest/data.tar.gz.part" "$dest/data.tar.gz"
echo "fetch_offline_data: wrote $dest/data.tar.gz ($(du -h "$dest/data.tar.gz" | cut -f1))"
