"""The notebooks of the book are stored executed, at preset ``ci``, so the book builds without running them.

nbval (``make test``) re-runs each notebook and compares outputs, but it passes a notebook that was saved
without outputs (there is nothing to compare). These checks close that gap, without running anything:

* every file in ``_toc.yml`` exists, and every ``book/*.ipynb`` is in the toc (nbval would test an orphan
  notebook that the book never shows);
* every non-empty code cell has a stored execution, numbered 1, 2, 3, ... (one clean top-to-bottom run);
* the notebook has outputs, and none of them is an error;
* the first code cell prints the preset, and it is ``ci``;
* the kernelspec is ``python3``;
* widget displays have their state saved in the notebook (else the book shows no widget);
* no placeholder chapter is left;
* code lines and printed lines fit the column (88 characters).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = 'print("placeholder")'
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def toc_files() -> list[str]:
    """Every ``file:`` entry of _toc.yml (root included), as written there (no suffix)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk({k: v for k, v in toc.items() if k != "root"})
    return files


def resolve(entry: str) -> Path | None:
    for suffix in ("", ".md", ".ipynb"):
        p = ROOT / f"{entry}{suffix}"
        if p.is_file():
            return p
    return None


TOC = toc_files()
NOTEBOOKS = [p for p in (resolve(e) for e in TOC) if p is not None and p.suffix == ".ipynb"]


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def test_toc_entries_exist():
    missing = [e for e in TOC if resolve(e) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"
    assert len(set(TOC)) == len(TOC), "_toc.yml lists a file twice"


def test_every_notebook_is_in_the_toc():
    in_toc = {p.resolve() for p in NOTEBOOKS}
    orphans = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "book").glob("*.ipynb")) if p.resolve() not in in_toc]
    assert not orphans, f"notebooks not in _toc.yml (the book would not show them, nbval would still run them): {orphans}"


def test_the_toc_has_the_planned_chapters():
    for stem in ("01_fixed_points", "02_star_convexity", "03_dlc", "04_near_optimality", "05_pixel_mnist"):
        assert f"book/{stem}" in TOC, f"book/{stem} is missing from _toc.yml"


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request):
    path = request.param
    return path, nbformat.read(path, as_version=4)


def test_kernelspec_is_python3(notebook):
    path, nb = notebook
    name = nb.metadata.get("kernelspec", {}).get("name")
    assert name == "python3", f"{path.name}: kernelspec name is {name!r}; nbval and the launch buttons expect 'python3'"


def test_not_a_placeholder(notebook):
    path, nb = notebook
    cells = code_cells(nb)
    assert not (len(cells) == 1 and cells[0].source.strip() == PLACEHOLDER), (
        f"{path.name} is still the placeholder written so that the book builds; the chapter has to be written"
    )


def test_every_code_cell_was_executed_in_order(notebook):
    path, nb = notebook
    cells = code_cells(nb)
    assert cells, f"{path.name} has no code cells"
    counts = [c.get("execution_count") for c in cells]
    unexecuted = [i for i, n in enumerate(counts) if n is None]
    assert not unexecuted, (
        f"{path.name}: code cells {unexecuted} (0-based, among code cells) have no stored execution; "
        "execute the notebook and save it with its outputs "
        f"(jupyter nbconvert --to notebook --execute --inplace {path.relative_to(ROOT)})"
    )
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name}: execution counts are {counts}, not 1..{len(cells)}: store one clean top-to-bottom run"
    )


def test_outputs_are_stored_and_none_is_an_error(notebook):
    path, nb = notebook
    outputs = [o for c in code_cells(nb) for o in c.get("outputs", [])]
    assert outputs, f"{path.name} was saved without outputs; nbval would have nothing to compare"
    for i, c in enumerate(code_cells(nb)):
        for o in c.get("outputs", []):
            assert o.get("output_type") != "error", (
                f"{path.name}: code cell {i} stored an error: {o.get('ename')}: {o.get('evalue')}"
            )
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                assert "Traceback (most recent call last)" not in o.get("text", ""), (
                    f"{path.name}: code cell {i} printed a traceback to stderr"
                )


def test_first_code_cell_prints_the_preset_ci(notebook):
    path, nb = notebook
    cells = code_cells(nb)
    if len(cells) == 1 and cells[0].source.strip() == PLACEHOLDER:
        pytest.skip(f"{path.name} is a placeholder (test_not_a_placeholder reports it)")
    first = cells[0]
    text = "".join(o.get("text", "") for o in first.get("outputs", []) if o.get("output_type") == "stream")
    m = re.search(r"preset\s*[=:]\s*(\w+)", text)
    assert m, f"{path.name}: the first code cell must print the preset (e.g. 'preset=ci seed=0'); it printed {text!r}"
    assert m.group(1) == "ci", f"{path.name} was stored at preset {m.group(1)!r}; store it at preset 'ci'"
    assert "DLC_PRESET" in first.source, f"{path.name}: the first code cell should read the DLC_PRESET variable"


def test_widget_state_is_saved(notebook):
    path, nb = notebook
    views = {
        o["data"][WIDGET_VIEW]["model_id"]
        for c in code_cells(nb)
        for o in c.get("outputs", [])
        if WIDGET_VIEW in o.get("data", {})
    }
    if not views:
        return
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    lost = sorted(views - set(state))
    assert not lost, (
        f"{path.name}: widget views {lost[:3]}... have no saved state in the notebook metadata, so the book "
        "cannot render them; execute with nbconvert (it stores widget state by default)"
    )


#: The widest line a chapter may show: the book's column holds about 88 characters of code font.
MAX_COLUMNS = 88


def test_code_and_printed_lines_fit_the_column(notebook):
    """Longer lines are cut at the column's edge (code) or wrapped mid-table (outputs) in the built book."""
    path, nb = notebook
    long = []
    for i, c in enumerate(code_cells(nb)):
        long += [f"code cell {i}: {ln[:60]}... ({len(ln)})" for ln in c.source.splitlines() if len(ln) > MAX_COLUMNS]
        for o in c.get("outputs", []):
            if WIDGET_VIEW in o.get("data", {}):
                continue  # a widget's text/plain is a fallback repr that the book does not show
            text = o.get("text", "") if o.get("output_type") == "stream" else o.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            long += [f"output of cell {i}: {ln[:60]}... ({len(ln)})" for ln in text.splitlines()
                     if len(ln) > MAX_COLUMNS]
    assert not long, f"{path.name}: {len(long)} lines wider than {MAX_COLUMNS} columns:\n" + "\n".join(long[:15])
