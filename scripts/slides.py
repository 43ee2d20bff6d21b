#!/usr/bin/env python3
"""Build reveal.js lecture slides from every chapter of the book, offline.

Usage::

    .venv/bin/python scripts/slides.py                    # every chapter of _toc.yml -> _build/slides/
    .venv/bin/python scripts/slides.py --out DIR a.ipynb  # given notebooks -> DIR
    make slides                                           # the same as the first line, then copies the
                                                          # decks into _build/html/slides/ when the book is built

Each chapter becomes ``<chapter>.slides.html`` through nbconvert's slides exporter and the template in
``scripts/slides_template/dlc-reveal/``. The exporter follows the cells' ``metadata.slideshow.slide_type``
(see ``scripts/slide_metadata.py``); cells that carry none are typed in memory by the same rules, so a chapter
without slide metadata still gives a sensible deck (the notebooks themselves are never written here).

Offline: the template loads reveal.js (npm, pinned with its sha512 integrity in pyproject.toml), RequireJS, the
ipywidgets embed script and the book's MathJax 3 from ``_vendor/`` beside the decks, copied from
``book/_vendor/`` (``make assets`` fetches them). Nothing is loaded from a CDN.

MyST that nbconvert's CommonMark renderer does not know is rewritten for the slides only: directives such as
``{prf:lemma}`` or ``{exercise}`` become titled boxes, ``{cite}`` becomes "(Author et al., year)" from
references.bib, ``{numref}``/``{prf:ref}`` become the figure number or the statement's title, ``(label)=``
targets and ``%`` comments disappear. Code cells tagged ``hide-input``/``remove-input`` (hidden in the book too)
or longer than ``slide_metadata.MAX_CODE_LINES`` lines show only their output.
"""
from __future__ import annotations

import argparse
import copy
import html
import json
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slide_metadata  # noqa: E402  (the rules are shared with the metadata script)
from slides_myst import MystConverter, _bib_citations, collect_labels  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "book" / "_vendor"
TEMPLATE_DIR = ROOT / "scripts" / "slides_template"
#: Files the decks load, relative to book/_vendor/ (and to _vendor/ beside the decks).
ASSETS = [
    "reveal.js/dist/reveal.js",
    "reveal.js/dist/reveal.css",
    "reveal.js/dist/theme/white.css",
    "reveal.js/plugin/notes/notes.js",
    "mathjax/tex-svg-full.js",
    "requirejs/require.js",
    "jupyter-widgets/embed-amd.js",
]
#: Our own script (not third-party): MathJax 2's Hub.Queue, which the widget embed script calls, on MathJax 3.
BRIDGE = ROOT / "book" / "_static" / "mathjax2-bridge.js"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


# ------------------------------------------------------------------------------------------------ chapters


def toc_chapters(toc: Path = ROOT / "_toc.yml") -> list[Path]:
    """The notebooks that _toc.yml lists, in order (markdown pages have no code and get no slides)."""
    data = yaml.safe_load(toc.read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data)
    return [toc.parent / f"{f}.ipynb" for f in files if (toc.parent / f"{f}.ipynb").is_file()]


def toc_decks(toc: Path = ROOT / "_toc.yml") -> list[list[Path]]:
    """One lecture per chapter: [[chapter.ipynb, its sections' .ipynb ...], ...] in the toc's order.

    A chapter's sections (``sections:`` under it in _toc.yml, e.g. 5b under 5) join its deck, so a lecture covers
    what the book's chapter covers."""
    data = yaml.safe_load(toc.read_text())
    decks: list[list[Path]] = []

    def files_under(node) -> list[str]:
        out = []
        for sec in node.get("sections", []) or []:
            if "file" in sec:
                out.append(sec["file"])
            out += files_under(sec)
        return out

    def nb(f: str) -> Path | None:
        p = toc.parent / f"{f}.ipynb"
        return p if p.is_file() else None

    for part in data.get("parts", [data]):
        for ch in part.get("chapters", []) or []:
            members = [p for p in (nb(f) for f in [ch.get("file", "")] + files_under(ch)) if p]
            if members:
                decks.append(members)
    return decks


def chapter_numbers(toc: Path = ROOT / "_toc.yml") -> dict[str, int]:
    """Chapter stem -> its number in the book (numbered parts, numbering continued across parts)."""
    data = yaml.safe_load(toc.read_text())
    out: dict[str, int] = {}
    n = 0
    for part in data.get("parts", []):
        if not part.get("numbered"):
            continue
        for ch in part.get("chapters", []):
            n += 1
            out[Path(ch["file"]).name] = n
    return out


# ------------------------------------------------------------------------------------------------ building


def prepare(nb, converter: MystConverter):
    """A copy of ``nb`` ready for the exporter: slide types (rules for untyped cells), MyST rewritten, long or
    hidden inputs removed."""
    nb = copy.deepcopy(nb)
    slide_metadata.apply_rules(nb)
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "markdown":
            cell.source = converter.convert(cell.source)
        elif cell.cell_type == "code":
            # test markers (# NBVAL_IGNORE_OUTPUT ...) are for CI, not for the audience
            cell.source = re.sub(r"(?m)^[ \t]*# ?NBVAL_\w+[ \t]*\n?", "", cell.source)
            if slide_metadata.code_lines_shown(cell) == 0:
                cell.metadata.setdefault("transient", {})["remove_source"] = True
            cells += _caption_cells(cell, converter)
    nb.cells = cells
    return nb


def _caption_cells(cell, converter: MystConverter) -> list:
    """Under a figure: its number and the caption's bold title on the slide, the whole caption in the notes."""
    fig = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
    st = cell.get("metadata", {}).get("slideshow", {}).get("slide_type")
    if not fig.get("caption") or st in ("skip", "notes"):
        return []
    caption = converter.inline(fig["caption"])
    number = converter.labels.get(fig.get("name", ""), "Figure")
    m = re.match(r"\s*\*\*(.+?)\*\*", caption, flags=re.S)
    title = m.group(1) if m else caption.split(". ")[0]
    shown = nbformat.v4.new_markdown_cell(f'<p class="dlc-caption">{number}. {title}</p>',
                                          metadata={"slideshow": {"slide_type": "-"}})
    notes = nbformat.v4.new_markdown_cell(f"{number}. {caption}", metadata={"slideshow": {"slide_type": "notes"}})
    return [shown, notes]


def copy_assets(out: Path) -> None:
    missing = [a for a in ASSETS if not (VENDOR / a).is_file()]
    if missing:
        raise SystemExit(f"slides: offline web assets missing from {VENDOR}: {missing}. Run `make assets` "
                         "(bash scripts/fetch_assets.sh) first.")
    dest = out / "_vendor"
    for rel in ["reveal.js", "mathjax", "requirejs", "jupyter-widgets"]:
        shutil.copytree(VENDOR / rel, dest / rel, dirs_exist_ok=True)
    shutil.copy2(BRIDGE, dest / "mathjax2-bridge.js")


def build(notebooks: list[Path], out: Path, toc: Path = ROOT / "_toc.yml") -> dict[str, dict]:
    """Write ``<stem>.slides.html`` for each notebook into ``out``; return {stem: {"slides": n, "file": ...}}."""
    from nbconvert import SlidesExporter

    for p in notebooks:
        if not p.is_file():
            raise SystemExit(f"slides: no notebook {p}")
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out)
    numbers = chapter_numbers(toc) if toc.is_file() else {}
    converter = MystConverter(collect_labels(notebooks, numbers), _bib_citations())
    exporter = SlidesExporter(
        extra_template_basedirs=[str(TEMPLATE_DIR)], template_name="dlc-reveal",
        exclude_input_prompt=True, exclude_output_prompt=True,
    )
    # group the notebooks into lectures: a chapter and its sections (as _toc.yml nests them) make one deck
    by_stem = {p.stem: p for p in notebooks}
    groups: list[list[Path]] = []
    placed: set[str] = set()
    toc_groups = toc_decks(toc) if toc.is_file() else []
    for path in notebooks:
        if path.stem in placed:
            continue
        group = next((g for g in toc_groups if g[0].stem == path.stem or path.stem in [m.stem for m in g]), [path])
        members = [by_stem[m.stem] for m in group if m.stem in by_stem and m.stem not in placed] or [path]
        placed.update(m.stem for m in members)
        groups.append(members)
    report = {}
    for members in groups:
        path = members[0]
        t0 = time.monotonic()
        nb = nbformat.read(path, as_version=4)
        for extra in members[1:]:
            more = nbformat.read(extra, as_version=4)
            nb.cells += more.cells
            state = more.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
            if state:
                mine = nb.metadata.setdefault("widgets", {}).setdefault(
                    WIDGET_STATE, {"state": {}, "version_major": 2, "version_minor": 0})
                mine["state"].update(state)
        nb = prepare(nb, converter)
        chap = numbers.get(path.stem)
        resources = {"metadata": {"name": path.stem}, "dlc": {"chapter": chap, "stem": path.stem}}
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        target = out / f"{path.stem}.slides.html"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(body, encoding="utf-8")
        tmp.replace(target)
        types = [c.metadata.get("slideshow", {}).get("slide_type", "-") for c in nb.cells]
        visible = [t for t in types if t not in ("skip", "notes")]
        starts = ("slide", "subslide")  # nbconvert makes the first visible cell a slide whatever its type
        n = sum(t in starts for t in visible) + (bool(visible) and visible[0] not in starts)
        report[path.stem] = {"file": target.name, "slides": n, "seconds": round(time.monotonic() - t0, 2),
                             "members": [m.stem for m in members]}
    _write_index(out, report, numbers)
    return report


def _write_index(out: Path, report: dict[str, dict], numbers: dict[str, int]) -> None:
    """index.html listing the decks, and decks.js that the book's pages read to link their slides."""
    items = "\n".join(
        f'<li><a href="{html.escape(r["file"])}">{numbers.get(stem, "")} {html.escape(stem)}</a> '
        f'({r["slides"]} slides{"; with " + ", ".join(r["members"][1:]) if r["members"][1:] else ""})</li>'
        for stem, r in report.items())
    (out / "index.html").write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Lecture slides</title></head>"
        f"<body><h1>Deep Loss Convexification: lecture slides</h1><ul>\n{items}\n</ul>"
        "<p>Keys: arrows or space to move, <kbd>s</kbd> speaker notes, <kbd>o</kbd> overview, <kbd>f</kbd> full "
        "screen.</p></body></html>\n", encoding="utf-8")
    decks = {member: r["file"] for r in report.values() for member in r["members"]}
    (out / "decks.js").write_text(
        "/* written by scripts/slides.py: the chapters that have lecture slides (read by slides-link.js) */\n"
        f"window.DLC_SLIDE_DECKS = {json.dumps(decks, sort_keys=True)};\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build reveal.js slides from the book's chapters (offline).")
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook of _toc.yml")
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "slides")
    ap.add_argument("--toc", type=Path, default=ROOT / "_toc.yml")
    ap.add_argument("--html", type=Path, default=None,
                    help="a built book (e.g. _build/html): copy the decks into its slides/ folder too")
    args = ap.parse_args(argv)
    notebooks = args.notebooks or toc_chapters(args.toc)
    if not notebooks:
        raise SystemExit(f"slides: no chapter notebooks found in {args.toc}")
    t0 = time.monotonic()
    report = build(notebooks, args.out, args.toc)
    for stem, r in report.items():
        with_ = f" (with {', '.join(r['members'][1:])})" if r["members"][1:] else ""
        print(f"slides: {args.out / r['file']}{with_}: {r['slides']} slides ({r['seconds']:.1f} s)")
    if args.html is not None:
        if (args.html / "index.html").is_file():
            dest = args.html / "slides"
            shutil.copytree(args.out, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("screenshots"))
            print(f"slides: copied into {dest} (linked from each chapter page)")
        else:
            print(f"slides: no built book in {args.html}; the chapter pages link to slides once `make book` ran")
    print(f"slides: {len(report)} decks in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
