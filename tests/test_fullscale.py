"""Chapter 8's tables (dlc_teach.fullscale): commands from the registry, recorded runs, verdicts, estimates."""
from __future__ import annotations

import json

import pytest

from dlc_teach import fullscale, tasks
from dlc_teach.fullscale import (NO_RUN, commands, epoch_estimate, experiment_rows, higher_is_better, markdown_table,
                                 run_rows, verdicts)


def _result(tmp, name, preset, dlc, value, *, key="test_acc", times=(1.5, 2.5), peak=3 * 2**30, stem=None):
    run = {"experiment": name, "preset": {"preset": preset}, "dlc": dlc, "main_metric": key,
           "final": {key: value}, "epochs_completed": len(times),
           "history": [{"epoch": i + 1, "epoch_time_s": t} for i, t in enumerate(times)],
           "device": "NVIDIA H100 80GB HBM3", "date": "2026-11-28T10:00:00+00:00", "git_commit": "abcdef1234567890",
           "peak_memory_bytes": peak}
    path = tmp / f"{stem or name + '-' + preset + ('-dlc' if dlc else '-base')}.json"
    path.write_text(json.dumps(run))
    return run


def test_commands_and_rows_come_from_the_registry(monkeypatch):
    assert commands("pixel-mnist", "gpu") == ["dlc-teach train pixel-mnist --preset gpu --no-dlc --record",
                                              "dlc-teach train pixel-mnist --preset gpu --record"]
    rows = {r["name"]: r for r in experiment_rows()}
    assert set(rows) == set(tasks.EXPERIMENTS)  # a newly registered experiment appears by itself
    px = rows["pixel-mnist"]
    assert px["full"] == "100 epochs, batch 128, sgd lr 0.05" and px["gpu"].startswith(f"{px['gpu'].split()[0]} epochs")
    assert px["gpu_commands"][1] == "dlc-teach train pixel-mnist --preset gpu --record"
    monkeypatch.setitem(tasks.EXPERIMENTS, "synth", "support_experiment:SynthRegression")
    synth = experiment_rows(["synth"])[0]
    assert synth["gpu"] is None and synth["gpu_commands"] is None and synth["presets"] == ("tiny", "ci", "full")


def test_run_rows_read_time_memory_and_device(tmp_path):
    _result(tmp_path, "pixel-mnist", "gpu", True, 61.0)
    _result(tmp_path, "pixel-mnist", "gpu", False, 55.5, times=(), peak=None)
    _result(tmp_path, "pixel-mnist", "ci", True, 40.0)  # not a gpu/full run: left out by default
    rows = run_rows(tmp_path)
    assert [(r["preset"], r["method"]) for r in rows] == [("gpu", "baseline"), ("gpu", "DLC")]
    base, dlc = rows
    assert dlc["epoch_s"] == pytest.approx(2.0) and dlc["peak_gib"] == pytest.approx(3.0) and dlc["epochs"] == 2
    assert base["epoch_s"] is None and base["peak_gib"] is None  # recorded before these fields existed / on a CPU
    assert dlc["device"] == "NVIDIA H100 80GB HBM3" and dlc["date"] == "2026-11-28" and dlc["commit"] == "abcdef123456"
    assert len(run_rows(tmp_path, presets=("ci",))) == 1 and run_rows(tmp_path, experiment="nope") == []


def test_verdicts_compare_dlc_with_the_baseline_and_the_paper(tmp_path):
    results, paper = tmp_path / "results", tmp_path / "paper"
    results.mkdir(), paper.mkdir()
    (paper / "t.json").write_text(json.dumps({
        "experiment": "pixel-mnist", "table": "Table 1", "metric": "test accuracy (%)", "key": "test_acc",
        "rows": [{"method": "DLC+LSTM", "value": 99.5}, {"method": "LSTM", "value": 98.2}], "source": "test"}))
    _result(results, "pixel-mnist", "gpu", True, 61.0)
    _result(results, "pixel-mnist", "gpu", False, 55.5)
    _result(results, "pixel-mnist", "full", True, 97.0)
    _result(results, "pixel-mnist", "full", False, 98.0)
    _result(results, "registration", "gpu", True, 10.0, key="test_mse_euler")
    _result(results, "registration", "gpu", False, 12.5, key="test_mse_euler")
    out = verdicts(run_rows(results), paper_dir=paper, names=["pixel-mnist", "registration", "toy-alignment"])
    assert out["pixel-mnist"] == [
        "full: DLC 97 vs baseline 98 (test_acc): DLC is worse than the baseline by 1",
        "full: the paper's Table 1 lists DLC+LSTM at 99.5; ours (DLC) 97",
        "gpu: DLC 61 vs baseline 55.5 (test_acc): DLC is better than the baseline by 5.5"]
    assert out["registration"] == ["gpu: DLC 10 vs baseline 12.5 (test_mse_euler): DLC is better than the baseline "
                                   "by 2.5"]  # lower MSE is better
    assert out["toy-alignment"] == [f"{NO_RUN} at preset gpu or full"]
    (results / "pixel-mnist-full-base.json").unlink()
    assert verdicts(run_rows(results), paper_dir=paper, names=[])["pixel-mnist"][0] == \
        "full: only the DLC run is recorded; nothing to compare"


def test_metric_direction_and_estimates():
    assert higher_is_better("test_acc") and higher_is_better("test_gd_success_12") and higher_is_better("test_sr_5")
    assert higher_is_better("test_mse_euler") is False and higher_is_better("test_loss") is False
    assert higher_is_better("test_pe") is False and higher_is_better("test_widgets") is None
    est = epoch_estimate(60_000, 128, 9.0, 100, eval_s=0.5)  # 469 steps of 9 ms + 0.5 s of evaluation
    assert est["steps_per_epoch"] == 469 and est["epoch_s"] == pytest.approx(4.721)
    assert est["total_min"] == pytest.approx(7.868, abs=1e-3)
    for bad in ((0, 128, 9.0, 1), (10, 0, 9.0, 1), (10, 1, 0.0, 1), (10, 1, 1.0, 0)):
        with pytest.raises(ValueError, match="need n_items"):
            epoch_estimate(*bad)


def test_markdown_table_escapes_cells():
    assert markdown_table(["a", "b"], [["x|y", None], [1, "two\nlines"]]).splitlines() == [
        "| a | b |", "|---|---|", "| x\\|y | – |", "| 1 | two lines |"]
    assert fullscale.__all__ and all(hasattr(fullscale, n) for n in fullscale.__all__)
