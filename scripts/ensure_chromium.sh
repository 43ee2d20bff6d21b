#!/usr/bin/env bash
# Make sure a headless Chromium is available for the book's browser tests (tests/test_book.py).
#
# The tests drive Debian's `chromium` through the `playwright` Python package (executable_path, so no browser
# download is needed). If `chromium` is missing and we are root, install it with apt-get; otherwise say how to.
# The browser tests skip when Chromium is absent, except under CI=true, where they fail.
# DLC_CHROMIUM overrides the executable the tests use.
set -euo pipefail

want=${DLC_CHROMIUM:-chromium}
if command -v "$want" >/dev/null 2>&1; then
    echo "ensure_chromium: $(command -v "$want") is present"
    exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: installing Debian's chromium with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium
    command -v chromium >/dev/null 2>&1 || { echo "ensure_chromium: ERROR: apt-get finished but 'chromium' is still not on PATH" >&2; exit 1; }
    echo "ensure_chromium: installed $(command -v chromium)"
    exit 0
fi

cat >&2 <<'MSG'
ensure_chromium: 'chromium' was not found, and this script can only install it as root on a Debian-like system.
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y chromium
  Other systems:  install Chromium or Google Chrome and set DLC_CHROMIUM=/path/to/the/browser
The browser tests of the book (tests/test_book.py) are skipped without it (they fail when CI=true).
MSG
exit 0
