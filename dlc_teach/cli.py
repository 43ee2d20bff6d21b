"""Command line: ``dlc-teach`` / ``python -m dlc_teach`` (train, evaluate, report, list).

Introduced in chapter 8 ("Reproducing at full scale"). Examples::

    dlc-teach list
    dlc-teach train pixel-mnist --preset gpu --record    # <= 3 min on one GPU; data/results/
    dlc-teach train pixel-mnist --preset full            # DLC; runs/pixel-mnist-full-dlc/
    dlc-teach train pixel-mnist --preset full --no-dlc   # the baseline, same seed and data order
    dlc-teach train pixel-mnist --preset full --resume   # continue after an interruption
    torchrun --nproc_per_node 4 -m dlc_teach train pixel-mnist --preset full
    dlc-teach evaluate pixel-mnist --checkpoint runs/pixel-mnist-full-dlc/checkpoint.pt
    dlc-teach report --experiment pixel-mnist
    dlc-teach fetch mnist                                # download + verify the real data ahead of a run
    dlc-teach fetch modelnet40                           # the zip once; each h5 extracted and MD5-checked
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

from .presets import OPTIONAL_PRESETS, PRESETS, REQUIRED_PRESETS, available_presets, format_config, get_config, \
    resolve_preset
from .tasks import EXPERIMENTS, get_experiment

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dlc-teach", description="Train, evaluate and report the experiments of the "
                                "Deep Loss Convexification textbook.", epilog="examples:" + __doc__.split("::")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,evaluate,report,list,fetch}")
    names = sorted(EXPERIMENTS)
    preset_help = "scale preset (default: $DLC_PRESET, else 'ci'); 'gpu' only where the experiment has it"

    t = sub.add_parser("train", help="train one experiment (DLC by default), with checkpoints and a results JSON",
                       description="Train an experiment. Prints the preset first; writes checkpoint.pt and "
                                   "results.json to the output directory. Under torchrun it uses every process.")
    t.add_argument("experiment", choices=names)
    t.add_argument("--preset", choices=PRESETS, help=preset_help)
    t.add_argument("--no-dlc", action="store_true", help="train the baseline (Eq. 1) instead of DLC (Eq. 11)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    t.add_argument("--allow-mismatch", action="store_true",
                   help="with --resume: continue even if the checkpoint was written by other code (git commit) "
                        "or trained on other data (refused otherwise); the results record the difference")
    t.add_argument("--out", metavar="DIR", help="output directory (default runs/<experiment>-<preset>-<dlc|base>)")
    t.add_argument("--device", help="e.g. cuda, cuda:1, cpu (default: CUDA when present)")
    t.add_argument("--data-dir", metavar="DIR", help="where data sets are cached (default $DLC_DATA_DIR or "
                                                     "~/.cache/dlc-teach)")
    t.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimiser steps (smoke tests)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--record", action="store_true",
                   help="also copy results.json to data/results/<experiment>-<preset>-<dlc|base>.json")

    e = sub.add_parser("evaluate", help="metrics of a saved checkpoint on the train subset and the test set")
    e.add_argument("experiment", choices=names)
    e.add_argument("--checkpoint", required=True, metavar="PATH", help="a checkpoint.pt written by 'train'")
    e.add_argument("--preset", choices=PRESETS, help="default: the checkpoint's own config")
    e.add_argument("--device", help="e.g. cuda, cpu (default: CUDA when present)")
    e.add_argument("--data-dir", metavar="DIR", help="where data sets are cached")

    r = sub.add_parser("report", help="recorded results next to the paper's numbers")
    r.add_argument("--results", metavar="DIR", help="recorded results JSON files (default data/results)")
    r.add_argument("--paper", metavar="DIR", help="the paper's numbers (default data/paper)")
    r.add_argument("--experiment", metavar="NAME", help="only this experiment")
    r.add_argument("--format", choices=("text", "markdown", "html"), default="text")

    sub.add_parser("list", help="the experiments and their presets")

    f = sub.add_parser("fetch", help="download and verify a registered data set into the cache",
                       description="Download every file of a registered data set (size and MD5 verified, atomic), "
                                   "or verify the files already there. Offline, it names the URLs and the paths "
                                   "where the files can be put by hand.")
    f.add_argument("dataset", help="a data set of the registry (dlc_teach/data/registry.json), e.g. mnist")
    f.add_argument("--data-dir", metavar="DIR", help="cache directory (default $DLC_DATA_DIR or ~/.cache/dlc-teach)")
    return p


def _cmd_train(a) -> int:
    from .training import train

    preset = resolve_preset(a.preset)
    get_config(a.experiment, preset)  # a clear error for an optional tier the experiment lacks
    exp = get_experiment(a.experiment).from_preset(preset, data_dir=a.data_dir)
    tag = "dlc" if not a.no_dlc else "base"
    out = Path(a.out) if a.out else Path("runs") / f"{a.experiment}-{preset}-{tag}"
    res = train(exp, dlc=not a.no_dlc, out_dir=out, resume=a.resume, device=a.device,
                allow_mismatch=a.allow_mismatch, command=a.command_line,
                progress=not a.no_progress, max_steps=a.max_steps)
    if res["world_size"] > 1 and not _is_main():
        return 0
    final = "  ".join(f"{k} {v:.4g}" for k, v in res["final"].items())
    print(f"final: {final}\nwrote {out / 'results.json'} and {out / 'checkpoint.pt'}")
    if a.record:
        from .report import RESULTS_DIR

        dest = RESULTS_DIR / f"{a.experiment}-{preset}-{tag}.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "results.json", dest)
        print(f"recorded {dest}")
    return 0


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _cmd_evaluate(a) -> int:
    from .checkpoint import load_checkpoint
    from .training import evaluate_model

    ckpt = load_checkpoint(a.checkpoint)
    if ckpt["experiment"] != a.experiment:
        raise ValueError(f"{a.checkpoint} holds experiment {ckpt['experiment']!r}, not {a.experiment!r}")
    cls = get_experiment(a.experiment)
    if a.preset is None or a.preset == ckpt["config"].get("preset"):
        base = get_config(a.experiment, ckpt["config"]["preset"])
        known = {f.name for f in dataclasses.fields(base)}
        exp = cls(dataclasses.replace(base, **{k: v for k, v in ckpt["config"].items() if k in known}),
                  data_dir=a.data_dir)
    else:
        get_config(a.experiment, a.preset)
        exp = cls.from_preset(a.preset, data_dir=a.data_dir)
    print(format_config(exp.config))
    model = exp.build_model()
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ValueError(f"the checkpoint's weights do not fit the model of preset {exp.config.preset!r}: "
                         f"{str(err).splitlines()[0]}") from None
    metrics = evaluate_model(exp, model, device=a.device)
    print(f"checkpoint {a.checkpoint}: epoch {ckpt['epoch']}, {'DLC' if ckpt['dlc'] else 'baseline'}")
    trained = ckpt.get("data")
    print(f"  written at git commit {ckpt.get('git_commit', 'unknown (format 1)')}; trained on "
          + (f"{trained['name']} ({trained['n_train']:,} train / {trained['n_test']:,} test)" if trained
             else "unrecorded data (format 1)") + f"; evaluated on {exp.data_source()['name']}")
    width = max(map(len, metrics), default=0)
    for k, v in metrics.items():
        print(f"  {k:<{width}}  {v:.6g}")
    return 0


def _cmd_report(a) -> int:
    from .report import report

    print(report(a.experiment, fmt=a.format, paper_dir=a.paper, results_dir=a.results))
    return 0


def _cmd_list(a) -> int:
    print(f"presets: {', '.join(REQUIRED_PRESETS)} (every experiment), {', '.join(OPTIONAL_PRESETS)} (optional; "
          f"marked below) (default: $DLC_PRESET, else 'ci')\n")
    for name in sorted(EXPERIMENTS):
        try:
            cls = get_experiment(name)
        except ImportError as err:
            print(f"{name}: not importable ({err})")
            continue
        doc = (cls.__doc__ or "").strip().splitlines()
        try:
            have = available_presets(name)
        except ValueError as err:
            print(f"{name}: {err}")
            continue
        tiers = "  [gpu preset: " + ("yes" if "gpu" in have else "no") + "]"
        print(f"{name}: {doc[0] if doc else cls.__name__}  [main metric: {cls.main_metric}]{tiers}")
        for preset in PRESETS:
            c = cls.presets.get(preset)
            print(f"  {preset:<5} " + (f"epochs={c.epochs} batch_size={c.batch_size} optimizer={c.optimizer} "
                                        f"lr={c.lr:g}" if c is not None else "(not defined: optional tier)"))
    return 0


def _cmd_fetch(a) -> int:
    from .datasets import fetch

    for key, path in fetch(a.dataset, data_dir=a.data_dir, download=True).items():
        print(f"{key}: {path} (verified)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dlc-teach`` and ``python -m dlc_teach``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = ["dlc-teach", *argv]  # recorded in results and checkpoints
    commands = {"train": _cmd_train, "evaluate": _cmd_evaluate, "report": _cmd_report, "list": _cmd_list,
                "fetch": _cmd_fetch}
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, ImportError, OSError) as err:
        print(f"dlc-teach {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
