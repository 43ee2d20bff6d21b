"""Chapter 8's tables: per experiment, the commands of the ``gpu`` and ``full`` presets, the recorded runs
(time per epoch, peak GPU memory, device) with plain verdicts, and the time a protocol is expected to take.

Introduced in chapter 8 ("Reproducing at full scale"). Everything is generated from the experiment registry
(:data:`dlc_teach.tasks.EXPERIMENTS`) and from the recorded results in ``data/results/*.json`` (see
:mod:`dlc_teach.report`), so a new experiment or a new recorded run shows up without editing the chapter.
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from .presets import available_presets, get_config
from .report import load_paper_tables, load_results
from .tasks import EXPERIMENTS

__all__ = ["NO_RUN", "commands", "experiment_rows", "run_rows", "higher_is_better", "verdicts", "epoch_estimate",
           "markdown_table"]

#: what the chapter says where nothing was recorded
NO_RUN = "no run recorded"
_HIGHER = {"acc", "accuracy", "success", "sr", "auc", "psnr"}  # words of metric names where more is better
_LOWER = {"loss", "mse", "rmse", "mae", "err", "error", "pe", "deg"}  # and where less is better


def commands(name: str, preset: str, record: bool = True) -> list[str]:
    """The CLI lines that train ``name`` at ``preset``: the baseline, then DLC (same seed and data order)."""
    tail = " --record" if record else ""
    return [f"dlc-teach train {name} --preset {preset} --no-dlc{tail}", f"dlc-teach train {name} --preset {preset}{tail}"]


def _recipe(cfg) -> str:
    return f"{cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr:g}"


def experiment_rows(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One dict per registered experiment: ``name``, ``presets``, ``gpu`` / ``full`` recipes and commands.

    ``gpu`` and ``gpu_commands`` are None where the experiment has no ``gpu`` preset (an optional tier).
    """
    rows = []
    for name in sorted(names if names is not None else EXPERIMENTS):
        have = available_presets(name)
        gpu = get_config(name, "gpu") if "gpu" in have else None
        full = get_config(name, "full")
        rows.append({"name": name, "presets": have, "full": _recipe(full), "full_commands": commands(name, "full"),
                     "gpu": _recipe(gpu) if gpu is not None else None,
                     "gpu_commands": commands(name, "gpu") if gpu is not None else None})
    return rows


def _preset(run: dict) -> str:
    p = run["preset"]
    return p.get("preset", "?") if isinstance(p, dict) else str(p)


def run_rows(results_dir: str | os.PathLike | None = None, presets: tuple[str, ...] = ("gpu", "full"),
             experiment: str | None = None) -> list[dict[str, Any]]:
    """The recorded runs at ``presets``: experiment, preset, method, main metric, epochs, mean seconds per
    epoch (``epoch_time_s`` of the history, None where the run predates it), peak GPU memory in GiB
    (``peak_memory_bytes``; None on a CPU or before it was recorded), device, date and commit."""
    rows = []
    for run in load_results(results_dir):
        if _preset(run) not in presets or (experiment is not None and run["experiment"] != experiment):
            continue
        key = run.get("main_metric") or next(iter(run["final"]), None)
        times = [e["epoch_time_s"] for e in run.get("history", []) if isinstance(e.get("epoch_time_s"), (int, float))]
        peak = run.get("peak_memory_bytes")
        rows.append({"experiment": run["experiment"], "preset": _preset(run), "dlc": bool(run["dlc"]),
                     "method": "DLC" if run["dlc"] else "baseline", "metric": key,
                     "value": run["final"].get(key) if key else None,
                     "epochs": run.get("epochs_completed", len(run.get("history", []))),
                     "epoch_s": sum(times) / len(times) if times else None,
                     "peak_gib": peak / 2**30 if isinstance(peak, (int, float)) else None,
                     "device": run.get("device", "?"), "date": str(run.get("date", "?"))[:10],
                     "commit": str(run.get("git_commit", "?"))[:12], "wall_s": run.get("wall_time_s")})
    return sorted(rows, key=lambda r: (r["experiment"], r["preset"], r["dlc"]))


def higher_is_better(metric: str) -> bool | None:
    """Whether a larger value of ``metric`` (e.g. ``test_acc``) is better; None when the name does not say."""
    words = set(metric.lower().split("_"))
    if words & _HIGHER:
        return True
    if words & _LOWER:
        return False
    return None


def verdicts(rows: list[dict[str, Any]], paper_dir: str | os.PathLike | None = None,
             names: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Plain sentences per experiment: DLC against the baseline at each recorded preset, the ``full`` runs
    against the paper's numbers for the same metric, and :data:`NO_RUN` where nothing was recorded."""
    tables = {}
    for t in load_paper_tables(paper_dir):
        tables.setdefault(t["experiment"], []).append(t)
    out = {}
    for name in sorted(set(names if names is not None else EXPERIMENTS) | {r["experiment"] for r in rows}):
        mine = [r for r in rows if r["experiment"] == name]
        if not mine:
            out[name] = [f"{NO_RUN} at preset gpu or full"]
            continue
        lines = []
        for preset in sorted({r["preset"] for r in mine}):
            by = {r["method"]: r for r in mine if r["preset"] == preset}
            if set(by) != {"baseline", "DLC"} or None in (by["DLC"]["value"], by["baseline"]["value"]):
                lines.append(f"{preset}: only the {' and '.join(sorted(by))} run is recorded; nothing to compare")
                continue
            metric, dlc, base = by["DLC"]["metric"], by["DLC"]["value"], by["baseline"]["value"]
            better = higher_is_better(metric)
            diff = dlc - base
            if better is None or diff == 0:
                how = "differs from" if diff else "equals"
            else:
                how = "better than" if (diff > 0) == better else "worse than"
            lines.append(f"{preset}: DLC {dlc:.4g} vs baseline {base:.4g} ({metric}): DLC is {how} the baseline by "
                         f"{abs(diff):.3g}")
            if preset != "full":
                continue
            for t in tables.get(name, []):
                if t["key"] == metric and t["rows"]:
                    best = t["rows"][0]
                    lines.append(f"full: the paper's {t['table']} lists {best['method']} at {best['value']}; "
                                 f"ours (DLC) {dlc:.4g}")
        out[name] = lines
    return out


def epoch_estimate(n_items: int, batch_size: int, step_ms: float, epochs: int, eval_s: float = 0.0) -> dict:
    """Steps per epoch (``ceil(n / batch)``), seconds per epoch and minutes for ``epochs``, from a step time."""
    if min(n_items, batch_size, epochs) < 1 or not step_ms > 0 or eval_s < 0:
        raise ValueError(f"need n_items, batch_size, epochs >= 1, step_ms > 0 and eval_s >= 0; got {n_items}, "
                         f"{batch_size}, {epochs}, {step_ms}, {eval_s}")
    steps = -(-n_items // batch_size)
    epoch_s = steps * step_ms / 1000 + eval_s
    return {"steps_per_epoch": steps, "epoch_s": epoch_s, "total_min": epochs * epoch_s / 60}


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (``|`` in cells escaped), for ``IPython.display.Markdown``."""
    def cell(v: Any) -> str:
        return "–" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)
