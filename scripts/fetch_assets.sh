#!/usr/bin/env bash
# Fetch the third-party JavaScript that the built book serves itself, so that it renders without a network
# (MathJax 3 for the maths, the ipywidgets embed script + RequireJS for widgets).
#
# What is fetched is pinned in ONE place: the [tool.dlc-teach.web-assets.*] tables of pyproject.toml
# (npm package, exact version, sha512 integrity, which files to keep and where). Files land in book/_vendor/
# (gitignored: the project's own files carry no third-party code); _config.yml serves that folder as static
# files. The script is
#   * idempotent: an asset whose stamp (book/_vendor/.stamps/NAME) matches the pinned version and integrity,
#     and whose files are all present, is skipped;
#   * atomic: each package is packed and unpacked in a temporary folder beside the destination, and only moved
#     into place (rename) once everything checked out; the stamp is written last;
#   * loud: any failure stops it with a message that says what went wrong and what to do.
# Usage: bash scripts/fetch_assets.sh        (DLC_VENDOR_DIR overrides the destination folder)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${DLC_VENDOR_DIR:-$ROOT/book/_vendor}
PYPROJECT=$ROOT/pyproject.toml

die() { echo "fetch_assets: ERROR: $*" >&2; exit 1; }

# A Python with tomllib (3.11+) or tomli reads the pins.
PY=""
for cand in "$ROOT/.venv/bin/python" python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
        PY=$cand; break
    fi
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import tomli' 2>/dev/null; then
        PY=$cand; break
    fi
done
[ -n "$PY" ] || die "need Python >= 3.11 (tomllib) or a Python with 'tomli' installed to read $PYPROJECT"

NPM=${DLC_NPM:-npm}   # the npm client (DLC_NPM overrides it, e.g. for tests)
need_npm() {
    command -v "$NPM" >/dev/null 2>&1 || die "npm is not installed ('$NPM' not found). The book serves MathJax and the widget embed script itself and fetches them with npm at set-up time. Install Node.js and npm (Debian/Ubuntu: apt-get install -y npm; conda: conda install -c conda-forge nodejs) and rerun: bash scripts/fetch_assets.sh"
}

# One line per asset: NAME<TAB>PACKAGE<TAB>VERSION<TAB>INTEGRITY<TAB>SRC1<TAB>DST1<TAB>SRC2<TAB>DST2...
read_pins() {
    "$PY" - "$PYPROJECT" <<'PYEOF'
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
with open(sys.argv[1], "rb") as f:
    data = tomllib.load(f)
assets = data.get("tool", {}).get("dlc-teach", {}).get("web-assets")
if not assets:
    sys.exit(f"no [tool.dlc-teach.web-assets.*] tables in {sys.argv[1]}")
for name, a in assets.items():
    missing = [k for k in ("package", "version", "integrity", "files") if k not in a]
    if missing:
        sys.exit(f"[tool.dlc-teach.web-assets.{name}] lacks {missing}")
    if not a["files"]:
        sys.exit(f"[tool.dlc-teach.web-assets.{name}] lists no files")
    fields = [name, a["package"], a["version"], a["integrity"]]
    for src, dst in a["files"].items():
        if dst.startswith("/") or ".." in dst.split("/") or ".." in src.split("/"):
            sys.exit(f"[tool.dlc-teach.web-assets.{name}]: paths must be relative and stay inside: {src} -> {dst}")
        fields += [src, dst]
    print("\t".join(fields))
PYEOF
}

PINS=$(read_pins) || die "could not read the asset pins from $PYPROJECT (see the message above)"

mkdir -p "$DEST/.stamps"
TMP=$(mktemp -d "$DEST/.tmp-fetch.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

while IFS=$'\t' read -r -a f; do
    name=${f[0]} pkg=${f[1]} ver=${f[2]} integ=${f[3]}
    stamp="$DEST/.stamps/$name"
    want="$pkg@$ver $integ"
    complete=1
    for ((i = 4; i < ${#f[@]}; i += 2)); do
        [ -s "$DEST/${f[i+1]}" ] || complete=0
    done
    if [ "$complete" = 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "fetch_assets: $pkg@$ver is present, skipping"
        continue
    fi

    need_npm
    echo "fetch_assets: fetching $pkg@$ver with npm pack"
    work="$TMP/$name"
    mkdir -p "$work/unpacked" "$work/out"
    if ! (cd "$work" && "$NPM" pack "$pkg@$ver" --json --silent >pack.json 2>npm.err); then
        cat "$work/npm.err" >&2 || true
        die "'npm pack $pkg@$ver' failed. Is the npm registry reachable? (npm config get registry: $("$NPM" config get registry 2>/dev/null || echo '?')). Without a network, copy an existing book/_vendor/ folder from a machine that has one."
    fi
    # The integrity is computed here from the tarball's bytes (sha512, as npm writes it), not taken from npm.
    read -r tgz got_integ < <("$PY" - "$work" <<'PYEOF'
import base64, hashlib, json, pathlib, sys
work = pathlib.Path(sys.argv[1])
d = json.loads((work / "pack.json").read_text())
d = d[0] if isinstance(d, list) else d
tgz = work / d["filename"]
print(tgz.name, "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode())
PYEOF
) || die "could not read npm pack's report or tarball for $pkg@$ver (in $work)"
    [ "$got_integ" = "$integ" ] || die "integrity mismatch for $pkg@$ver: pyproject.toml pins $integ but the tarball npm delivered has $got_integ. Refusing to use it; if the pin is what is wrong, update it from 'npm view $pkg@$ver dist.integrity'."
    tar -xzf "$work/$tgz" -C "$work/unpacked" || die "could not unpack $work/$tgz"
    for ((i = 4; i < ${#f[@]}; i += 2)); do
        src=${f[i]} dst=${f[i+1]}
        [ -f "$work/unpacked/package/$src" ] || die "$pkg@$ver has no file '$src' (pinned in [tool.dlc-teach.web-assets.$name] of pyproject.toml)"
        mkdir -p "$(dirname "$work/out/$dst")"
        cp "$work/unpacked/package/$src" "$work/out/$dst"
    done
    # Everything is checked: move the files into place (rename within one file system), then the stamp.
    for ((i = 4; i < ${#f[@]}; i += 2)); do
        dst=${f[i+1]}
        mkdir -p "$(dirname "$DEST/$dst")"
        mv -f "$work/out/$dst" "$DEST/$dst"
    done
    printf '%s' "$want" >"$work/stamp" && mv -f "$work/stamp" "$stamp"
    echo "fetch_assets: installed $pkg@$ver into ${DEST#$ROOT/}"
done <<<"$PINS"

echo "fetch_assets: web assets ready in ${DEST#$ROOT/}"
