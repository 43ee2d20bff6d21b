#!/usr/bin/env python3
"""Give every cell of a chapter a reveal.js role (``metadata.slideshow.slide_type``), by fixed rules.

Usage (the lead applies it to every chapter in one command; running it twice changes nothing)::

    .venv/bin/python scripts/slide_metadata.py book/*.ipynb          # rewrite the notebooks in place
    .venv/bin/python scripts/slide_metadata.py --check book/*.ipynb  # exit 1 if a notebook would change

``make slides`` (scripts/slides.py) turns the chapters into reveal.js decks with nbconvert's slides exporter,
which reads exactly this metadata: ``slide`` (a new slide), ``subslide`` (a new slide below it), ``fragment``
(appears on the next key press), ``-`` (continues the current slide), ``notes`` (speaker notes: press ``s`` in
the deck) and ``skip`` (left out).

What the script does to a notebook:

1. **Cells that already carry a slide_type are left exactly as they are** (not split, not retyped): an author
   overrides a rule by setting the type in JupyterLab (Property Inspector > Slide Type).
2. A markdown cell without a slide_type is **split at its top-level MyST blocks** (headings, paragraphs, display
   maths, directives such as ``{prf:lemma}`` or ``{exercise}``, lists, tables), so that a slide can show a
   definition while the paragraphs around it become speaker notes. Splits fall only between top-level blocks
   (parsed with the book's own MyST parser), so the book renders the same: a directive, list or ``$$`` block
   is never cut, and a ``(label)=`` target stays with the block it labels. The first piece keeps the cell's id;
   the others get ``<id>-s<k>``.
3. Each new piece and each untyped code cell gets a type:

   ========================================  ===================================================================
   block / cell                               slide_type
   ========================================  ===================================================================
   ``# `` or ``## `` heading                  ``slide`` (a section of the lecture)
   ``### `` heading and deeper                ``subslide``
   ``{prf:definition|lemma|theorem|...}``     ``subslide`` (a statement gets a slide of its own)
   ``{exercise}``                             ``subslide``; its ``{solution}`` is ``notes``, and so is
                                              everything between ``{solution-start}`` and ``{solution-end}``
   ``{prf:proof}``, ``{admonition}``, notes   ``notes`` (the lecturer's side of the story)
   prose paragraph                            ``notes``, except a short one that opens in bold
                                              (e.g. "**The question of this chapter:** ..."): ``-``
   display maths, list, table, code block     ``-`` (stays on the slide)
   code cell that mostly imports, or the      ``skip`` (set-up, not lecture material)
   chapter's first code cell if it imports
   code cell without output, > 12 lines       ``skip`` (long definitions; the book has them)
   code cell with a figure or a widget        ``subslide`` (the figure fills a slide)
   other code cell                            ``-``
   ========================================  ===================================================================

4. A ``-`` piece that would overfill the current slide (estimated height above :data:`SLIDE_BUDGET` lines of
   projector text) becomes a ``subslide`` instead, so that nothing falls off the bottom of the screen.

The slide build hides the *input* of code cells tagged ``hide-input``/``remove-input`` (as the book does) and of
code cells longer than :data:`MAX_CODE_LINES` lines (a projector shows about that many); their outputs stay.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

#: Code cells longer than this show only their output on a slide (scripts/slides.py uses the same number).
MAX_CODE_LINES = 12
#: Estimated lines of projected text that fit on one slide (1280×800 canvas, 26 px text).
SLIDE_BUDGET = 16
#: Heights (in text lines) used by the budget.
FIGURE_LINES = 12
#: Characters per projected line of prose.
CHARS_PER_LINE = 80

STATEMENT_DIRECTIVES = {"prf:definition", "prf:lemma", "prf:theorem", "prf:corollary", "prf:proposition",
                        "prf:algorithm", "prf:axiom", "prf:conjecture", "prf:criterion", "prf:assumption",
                        "prf:property", "prf:example", "exercise", "exercise-start", "figure", "image", "table",
                        "math"}
NOTES_DIRECTIVES = {"prf:proof", "solution", "solution-start", "solution-end", "admonition", "note", "tip", "hint",
                    "important", "seealso",
                    "attention", "caution", "danger", "error", "warning", "prf:remark", "prf:observation",
                    "margin", "sidebar", "dropdown", "epigraph"}
HIDE_INPUT_TAGS = {"hide-input", "remove-input", "remove-cell", "hide-cell"}
FIGURE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "application/vnd.jupyter.widget-view+json")
VALID_TYPES = {"slide", "subslide", "fragment", "-", "skip", "notes"}


def _md_parser():
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    # the extensions of _config.yml's parse.myst_enable_extensions: the blocks are cut where the book's parser
    # sees them
    exts = {"colon_fence", "dollarmath", "amsmath", "deflist", "substitution", "tasklist"}
    return create_md_parser(MdParserConfig(enable_extensions=exts), RendererHTML)


_MD = None


def split_markdown(source: str) -> list[tuple[str, str, str]]:
    """Cut markdown at its top-level blocks -> [(kind, info, text)], texts concatenating back to ``source``.

    kind is the block's token type (``heading``, ``paragraph``, ``fence``, ``math_block``, ``bullet_list``...),
    info the heading level (``h2``) or the fence's info string (``{prf:lemma} Lemma 1``).
    """
    global _MD
    if _MD is None:
        _MD = _md_parser()
    lines = source.splitlines(keepends=True)
    starts: list[tuple[int, str, str]] = []
    pending: int | None = None  # a (label)= target or % comment waiting for the block it belongs to
    for tok in _MD.parse(source):
        if tok.level != 0 or tok.map is None or tok.nesting == -1:
            continue
        kind = tok.type.removesuffix("_open")
        if kind in ("myst_target", "myst_line_comment"):
            pending = tok.map[0] if pending is None else pending
            continue
        info = tok.tag if kind == "heading" else (tok.info or "").strip()
        starts.append((tok.map[0] if pending is None else pending, kind, info))
        pending = None
    if not starts:
        return [("paragraph", "", source)]
    starts[0] = (0, starts[0][1], starts[0][2])  # leading blank lines stay with the first block
    pieces = []
    for i, (start, kind, info) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(lines)
        pieces.append((kind, info, "".join(lines[start:end])))
    if pending is not None:  # a trailing target with no block after it stays with the last piece
        kind, info, text = pieces[-1]
        pieces[-1] = (kind, info, text + "".join(lines[pending:]))
    return pieces


def _directive(info: str) -> str:
    m = re.match(r"\{([\w:-]+)\}", info)
    return m.group(1) if m else ""


def markdown_type(kind: str, info: str, text: str) -> str:
    """The slide_type rule for one top-level markdown block (see the module docstring)."""
    if kind == "heading":
        return "slide" if info in ("h1", "h2") else "subslide"
    if kind == "fence":
        d = _directive(info)
        if d in NOTES_DIRECTIVES:
            return "notes"
        if d in STATEMENT_DIRECTIVES or d.startswith("prf:"):
            return "subslide"
        return "-"  # a code block, or a directive we do not know: keep it visible
    if kind == "paragraph":
        body = text.strip()
        return "-" if body.startswith("**") and len(body) <= 300 else "notes"
    return "-"  # display maths, lists, tables, definition lists, rules


def _text_lines(text: str) -> float:
    n = 0.0
    for para in re.split(r"\n\s*\n", text.strip()):
        math = para.count("$$") // 2 + para.count("\\begin{")
        n += max(1.0, len(para) / CHARS_PER_LINE) + 1.5 * math
    return n


def code_lines_shown(cell) -> int:
    """Lines of input a slide shows for a code cell (0 when the slide build hides the input)."""
    tags = set(cell.get("metadata", {}).get("tags", []))
    n = len(cell.source.strip().splitlines())
    return 0 if tags & HIDE_INPUT_TAGS or n > MAX_CODE_LINES else n


def _has_figure(cell) -> bool:
    return any(any(m in out.get("data", {}) for m in FIGURE_MIMES) for out in cell.get("outputs", []))


def _output_lines(cell) -> float:
    n = 0.0
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if any(m in data for m in FIGURE_MIMES):
            n += FIGURE_LINES
        elif "text" in out:
            n += len(str(out["text"]).splitlines())
        elif "text/html" in data or "text/markdown" in data:
            n += 6
        elif "text/plain" in data:
            n += len(str(data["text/plain"]).splitlines())
    return n


def code_type(cell, first: bool = False) -> str:
    """The slide_type rule for an untyped code cell (see the module docstring); ``first``: the chapter's first
    code cell (its set-up: imports, preset, seed)."""
    lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    imports = [ln for ln in lines if re.match(r"\s*(import|from)\s+\S+", ln)]
    if lines and (len(imports) >= len(lines) / 2 or (first and imports)):
        return "skip"
    if not cell.get("outputs") and len(lines) > MAX_CODE_LINES:
        return "skip"
    if _has_figure(cell):
        return "subslide"
    return "-"


def cell_height(cell) -> float:
    """Estimated projected height of a visible cell, in text lines."""
    if cell.cell_type == "markdown":
        return _text_lines(cell.source)
    if cell.cell_type == "code":
        return code_lines_shown(cell) + _output_lines(cell)
    return 0.0


def _slide_type(cell) -> str | None:
    st = cell.get("metadata", {}).get("slideshow", {}).get("slide_type")
    if st is not None and st not in VALID_TYPES:
        raise ValueError(f"cell {cell.get('id', '?')} carries slide_type {st!r}; expected one of "
                         f"{sorted(VALID_TYPES)}")
    return st


def _set_type(cell, st: str) -> None:
    cell.setdefault("metadata", {}).setdefault("slideshow", {})["slide_type"] = st


def apply_rules(nb) -> int:
    """Split and type the untyped cells of ``nb`` in place; return how many cells were typed or created."""
    out = []
    changed = 0
    used_ids = {c.get("id") for c in nb.cells}
    first_code = next((c for c in nb.cells if c.cell_type == "code"), None)
    for cell in nb.cells:
        if _slide_type(cell) is not None:
            out.append((cell, True))
            continue
        changed += 1
        if cell.cell_type == "markdown" and cell.source.strip():
            pieces = split_markdown(cell.source)
            for k, (kind, info, text) in enumerate(pieces):
                if k == 0:
                    piece = cell
                    piece.source = text
                else:
                    piece = nbformat.v4.new_markdown_cell(text, metadata={})
                    base = cell.get("id") or "cell"
                    new_id = f"{base[:58]}-s{k}"
                    while new_id in used_ids:
                        new_id += "x"
                    used_ids.add(new_id)
                    piece["id"] = new_id
                    changed += 1
                _set_type(piece, markdown_type(kind, info, text))
                out.append((piece, False))
        elif cell.cell_type == "code":
            _set_type(cell, code_type(cell, first=cell is first_code))
            out.append((cell, False))
        else:  # raw or empty markdown cells carry nothing to show
            _set_type(cell, "skip")
            out.append((cell, False))

    # A gated solution ({solution-start} ... code cells ... {solution-end}) belongs to the notes, code included.
    inside = False
    for cell, kept in out:
        gate = re.search(r"^\s*(?:`{3,}|:{3,})\{(solution|exercise)-(start|end)\}", cell.source, flags=re.M) \
            if cell.cell_type == "markdown" else None
        if gate and gate.group(1) == "solution":
            inside = gate.group(2) == "start"
            if not kept:
                _set_type(cell, "notes")
            continue
        if gate and gate.groups() == ("exercise", "end") and not kept:
            _set_type(cell, "skip")  # an empty closing marker
        elif inside and not kept:
            _set_type(cell, "notes")

    # Overflow: a "-" cell that would overfill its slide starts a sub-slide (only for cells typed just now).
    used = 0.0
    for cell, kept in out:
        st = cell.metadata["slideshow"]["slide_type"]
        if st in ("skip", "notes"):
            continue
        h = cell_height(cell)
        if st in ("slide", "subslide"):
            used = h
        elif not kept and st in ("-", "fragment") and used > 0 and used + h > SLIDE_BUDGET:
            _set_type(cell, "subslide")
            used = h
        else:
            used += h
    nb.cells = [c for c, _ in out]
    return changed


def process(path: Path, check: bool = False) -> bool:
    """Apply the rules to one notebook file; return True if it changed (or would change, with check)."""
    if path.suffix != ".ipynb":
        raise SystemExit(f"slide_metadata: {path} is not a notebook (.ipynb expected)")
    if not path.is_file():
        raise SystemExit(f"slide_metadata: {path} does not exist")
    nb = nbformat.read(path, as_version=4)
    if apply_rules(nb) == 0:
        return False
    if not check:
        tmp = path.with_name(f".{path.name}.slide-metadata.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(path)  # atomic: a reader never sees half a notebook
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook lacks metadata")
    args = ap.parse_args(argv)
    stale = []
    for path in args.notebooks:
        changed = process(path, check=args.check)
        state = "would change" if args.check and changed else "updated" if changed else "unchanged"
        print(f"slide_metadata: {path}: {state}")
        if changed:
            stale.append(path)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
