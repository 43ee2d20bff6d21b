"""Recorded results next to the paper's numbers: plain text (CLI), markdown and HTML (notebooks).

Introduced in chapter 5; chapter 8 collects every experiment. The paper's
tables are facts stored as ``data/paper/*.json``::

    {"experiment": "pixel-mnist", "table": "Table 1", "metric": "test accuracy (%)", "key": "test_acc",
     "rows": [{"method": "LSTM", "value": 98.2}, ...], "source": "Zhang et al., ..."}

and recorded runs are the results JSON of :func:`dlc_teach.training.train`
copied to ``data/results/*.json`` (with their preset, data source, git commit,
command line, device and date). Where no run at preset ``full`` exists the
tables say so plainly. These folders belong to the repository, not to the
package: an installed wheel uses ``./data/`` of the working directory.
"""
from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

__all__ = ["PAPER_DIR", "RESULTS_DIR", "NO_FULL_RUN", "Comparison", "load_paper_tables", "load_results",
           "compare", "render_text", "render_markdown", "render_html", "report"]

def _data_dir() -> Path:
    """The checkout's ``data/`` when dlc_teach runs from a source checkout (editable install); else ``data``
    relative to the working directory: an installed wheel has no repository beside it, so its ``report``
    reads and ``train --record`` writes ``./data/`` (never site-packages)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "data").is_dir():
        return root / "data"
    return Path("data")


_DATA = _data_dir()
PAPER_DIR = _DATA / "paper"
RESULTS_DIR = _DATA / "results"
NO_FULL_RUN = "no full-scale run recorded yet"
_PAPER_KEYS = ("experiment", "table", "metric", "key", "rows", "source")
_RESULT_KEYS = ("experiment", "preset", "dlc", "final")


def _read_json_dir(directory: str | os.PathLike | None, default: Path, required: tuple[str, ...], what: str):
    directory = Path(directory) if directory is not None else default
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        missing = [k for k in required if not isinstance(obj, dict) or k not in obj]
        if missing:
            raise ValueError(f"{path}: not a {what} file, missing key(s) {missing}; expected {list(required)}")
        out.append((path, obj))
    return out


def load_paper_tables(paper_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every ``data/paper/*.json`` (or ``paper_dir``), validated; each gets a ``path`` entry."""
    tables = []
    for path, obj in _read_json_dir(paper_dir, PAPER_DIR, _PAPER_KEYS, "paper-numbers"):
        bad = [r for r in obj["rows"] if not isinstance(r, dict) or "method" not in r or "value" not in r]
        if bad:
            raise ValueError(f"{path}: every row needs 'method' and 'value', got {bad[0]!r}")
        tables.append({**obj, "path": str(path)})
    return tables


def load_results(results_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every recorded results JSON in ``data/results/`` (or ``results_dir``); each gets a ``path`` entry."""
    return [{**obj, "path": str(path)}
            for path, obj in _read_json_dir(results_dir, RESULTS_DIR, _RESULT_KEYS, "results")]


@dataclass(frozen=True)
class Comparison:
    """One experiment's metric: the paper's rows and ours (``(label, value or None, detail)``)."""

    experiment: str
    metric: str
    key: str
    table: str = ""
    source: str = ""
    paper: tuple[tuple[str, Any], ...] = ()
    ours: tuple[tuple[str, Any, str], ...] = ()
    notes: tuple[str, ...] = field(default=())


def _main_metric(experiment: str) -> str:
    from .tasks import get_experiment

    try:
        return get_experiment(experiment).main_metric
    except (ValueError, ImportError):  # not a registered experiment, or its module is not importable here
        return "test_loss"


def _preset_name(run: dict) -> str:
    p = run["preset"]
    return p.get("preset", "?") if isinstance(p, dict) else str(p)


def _our_row(run: dict, key: str, label: str | None) -> tuple[str, Any, str]:
    method = "DLC" if run["dlc"] else "baseline"
    label = label or f"ours: {method} (preset {_preset_name(run)})"
    detail = ", ".join(str(run[k]) for k in ("device", "date") if run.get(k))
    if run.get("git_commit"):
        detail += f", commit {str(run['git_commit'])[:12]}"
    value = run["final"].get(key)
    return label, value, detail if value is not None else f"metric {key!r} not recorded"


def compare(experiment: str | None = None, *, runs: Iterable[tuple[str, dict]] | Iterable[dict] = (),
            paper_dir: str | os.PathLike | None = None,
            results_dir: str | os.PathLike | None = None) -> list[Comparison]:
    """Pair the paper's tables with recorded runs (and ``runs`` made in this session), per experiment.

    Args:
        experiment: only this experiment (e.g. ``"pixel-mnist"``); None: all with a table or a run.
        runs: extra results dicts from :func:`~dlc_teach.training.train`, or ``(label, results)`` pairs,
            shown after the recorded runs (e.g. the ``ci`` runs a notebook just made).
    """
    tables = load_paper_tables(paper_dir)
    recorded = [(None, r) for r in load_results(results_dir)]
    extra = [(r if isinstance(r, tuple) else (None, r)) for r in runs]
    names = sorted({t["experiment"] for t in tables} | {r["experiment"] for _, r in recorded + extra})
    if experiment is not None:
        names = [n for n in names if n == experiment] or [experiment]
    out = []
    for name in names:
        mine = [t for t in tables if t["experiment"] == name]
        rec = [(lab, r) for lab, r in recorded if r["experiment"] == name]
        ext = [(lab, r) for lab, r in extra if r["experiment"] == name]
        has_full = any(_preset_name(r) == "full" for _, r in rec)
        notes = () if has_full else (NO_FULL_RUN,)
        if not mine:
            key = (rec + ext)[0][1].get("main_metric", "test_loss") if rec + ext else _main_metric(name)
            mine = [{"metric": key, "key": key, "table": "", "source": "", "rows": []}]
            notes += ("no numbers from the paper on file",)
        for t in mine:
            out.append(Comparison(
                experiment=name, metric=t["metric"], key=t["key"], table=t["table"], source=t["source"],
                paper=tuple((r["method"], r["value"]) for r in t["rows"]),
                ours=tuple(_our_row(r, t["key"], lab) for lab, r in rec + ext), notes=notes))
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4g}"
    return str(value)


def _rows(c: Comparison) -> list[tuple[str, str, str]]:
    rows = [(method, "n/a" if v is None else str(v), "paper") for method, v in c.paper]  # the paper's precision
    rows += [(label, _fmt(v), detail) for label, v, detail in c.ours]
    return rows


def _title(c: Comparison) -> str:
    return f"{c.experiment}: {c.table + ', ' if c.table else ''}{c.metric}"


def render_text(comparisons: list[Comparison]) -> str:
    """Plain-text tables for the terminal."""
    blocks = []
    for c in comparisons:
        rows = _rows(c)
        w = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("method", "value", "source"))]
        lines = [_title(c), "=" * len(_title(c))]
        if rows:
            lines.append(f"{'method':<{w[0]}}  {'value':>{w[1]}}  source")
            lines.append(f"{'-' * w[0]}  {'-' * w[1]}  {'-' * w[2]}")
            lines += [f"{m:<{w[0]}}  {v:>{w[1]}}  {s}" for m, v, s in rows]
        lines += [f"* {n}" for n in c.notes]
        if c.source:
            lines.append(f"Paper numbers: {c.source}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "no paper numbers and no recorded runs found"


def render_markdown(comparisons: list[Comparison]) -> str:
    """Markdown tables (for ``IPython.display.Markdown``)."""
    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    blocks = []
    for c in comparisons:
        lines = [f"**{cell(_title(c))}**", ""]
        rows = _rows(c)
        if rows:
            lines += ["| method | value | source |", "|---|---:|---|"]
            lines += [f"| {cell(m)} | {v} | {cell(s)} |" for m, v, s in rows]
            lines.append("")
        lines += [f"*{cell(n)}.*" for n in c.notes]
        if c.source:
            lines.append(f"Paper numbers: {cell(c.source)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "*no paper numbers and no recorded runs found*"


def render_html(comparisons: list[Comparison]) -> str:
    """HTML tables (for ``IPython.display.HTML``), escaped, no pandas."""
    e = html.escape
    blocks = []
    for c in comparisons:
        parts = [f"<p><b>{e(_title(c))}</b></p>"]
        rows = _rows(c)
        if rows:
            body = "".join(f"<tr><td>{e(m)}</td><td style=\"text-align:right\">{e(v)}</td><td>{e(s)}</td></tr>"
                           for m, v, s in rows)
            parts.append(f"<table><thead><tr><th>method</th><th>value</th><th>source</th></tr></thead>"
                         f"<tbody>{body}</tbody></table>")
        parts += [f"<p><i>{e(n)}.</i></p>" for n in c.notes]
        if c.source:
            parts.append(f"<p>Paper numbers: {e(c.source)}</p>")
        blocks.append("\n".join(parts))
    return "\n".join(blocks) if blocks else "<p><i>no paper numbers and no recorded runs found</i></p>"


def report(experiment: str | None = None, fmt: str = "text", **kwargs) -> str:
    """:func:`compare` then render as ``"text"``, ``"markdown"`` or ``"html"``."""
    renderers = {"text": render_text, "markdown": render_markdown, "html": render_html}
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; expected one of {list(renderers)}")
    return renderers[fmt](compare(experiment, **kwargs))
