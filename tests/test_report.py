"""Recorded results next to the paper's numbers."""
from __future__ import annotations

import json

import pytest

from dlc_teach.report import NO_FULL_RUN, compare, load_paper_tables, load_results, render_html, report

TABLE = {"experiment": "pixel-mnist", "table": "Table 1", "metric": "test accuracy (%)", "key": "test_acc",
         "rows": [{"method": "LSTM", "value": 98.2}, {"method": "LSTM + DLC", "value": 99.1}],
         "source": "Zhang et al., Table 1"}


def _run(preset, dlc, acc):
    return {"experiment": "pixel-mnist", "preset": {"preset": preset, "epochs": 3}, "dlc": dlc,
            "main_metric": "test_acc", "final": {"test_acc": acc, "test_loss": 0.1},
            "device": "NVIDIA H100", "date": "2025-01-02T03:04:05+00:00", "git_commit": "abcdef1234567890"}


@pytest.fixture
def dirs(tmp_path):
    paper, results = tmp_path / "paper", tmp_path / "results"
    paper.mkdir()
    results.mkdir()
    (paper / "pixel_mnist.json").write_text(json.dumps(TABLE))
    return paper, results


def test_no_run_says_so_plainly(dirs):
    paper, results = dirs
    text = report("pixel-mnist", paper_dir=paper, results_dir=results)
    assert "pixel-mnist: Table 1, test accuracy (%)" in text
    assert "LSTM + DLC" in text and "99.1" in text and "paper" in text
    assert NO_FULL_RUN in text and "Zhang et al., Table 1" in text


def test_recorded_full_runs_sit_beside_the_paper(dirs):
    paper, results = dirs
    (results / "a.json").write_text(json.dumps(_run("full", True, 98.765)))
    (results / "b.json").write_text(json.dumps(_run("full", False, 98.1)))
    [c] = compare("pixel-mnist", paper_dir=paper, results_dir=results)
    assert c.paper == (("LSTM", 98.2), ("LSTM + DLC", 99.1))
    assert [(label, v) for label, v, _ in c.ours] == [("ours: DLC (preset full)", 98.765),
                                                       ("ours: baseline (preset full)", 98.1)]
    assert "NVIDIA H100" in c.ours[0][2] and "abcdef123456" in c.ours[0][2]
    assert c.notes == ()
    text = report(paper_dir=paper, results_dir=results)
    assert NO_FULL_RUN not in text and "98.77" in text
    md = report("pixel-mnist", fmt="markdown", paper_dir=paper, results_dir=results)
    assert "| LSTM | 98.2 | paper |" in md and "| ours: DLC (preset full) | 98.77 |" in md


def test_session_runs_are_added_and_ci_runs_do_not_count_as_full(dirs):
    paper, results = dirs
    [c] = compare("pixel-mnist", runs=[("this notebook: DLC (ci)", _run("ci", True, 81.0)), _run("ci", False, 80.0)],
                  paper_dir=paper, results_dir=results)
    assert [label for label, _, _ in c.ours] == ["this notebook: DLC (ci)", "ours: baseline (preset ci)"]
    assert NO_FULL_RUN in c.notes


def test_html_is_escaped_and_pandas_free(dirs):
    paper, results = dirs
    (results / "x.json").write_text(json.dumps({**_run("full", True, 1.0), "device": "<gpu>"}))
    out = render_html(compare("pixel-mnist", paper_dir=paper, results_dir=results))
    assert out.count("<table>") == 1 and "&lt;gpu&gt;" in out and "<gpu>" not in out


def test_experiment_without_table_or_runs(dirs):
    paper, results = dirs
    text = report("toy-alignment", paper_dir=paper, results_dir=results)
    assert NO_FULL_RUN in text and "no numbers from the paper" in text
    assert "pixel-mnist" not in text


def test_bad_files_and_format(tmp_path, dirs):
    paper, results = dirs
    (results / "bad.json").write_text(json.dumps({"experiment": "pixel-mnist"}))
    with pytest.raises(ValueError, match="missing key"):
        load_results(results)
    (paper / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_paper_tables(paper)
    with pytest.raises(ValueError, match="unknown format"):
        report(fmt="latex", paper_dir=tmp_path / "none", results_dir=tmp_path / "none")
    assert load_results(tmp_path / "missing") == []


def test_shipped_paper_tables_are_well_formed():
    for table in load_paper_tables():  # data/paper/*.json written by the experiment helpers
        assert table["rows"] and all(isinstance(r["value"], (int, float)) or r["value"] is None
                                     for r in table["rows"])


def test_experiment_without_anything_uses_its_main_metric(tmp_path, monkeypatch):
    from dlc_teach import tasks

    monkeypatch.setitem(tasks.EXPERIMENTS, "synth", "support_experiment:SynthRegression")
    [c] = compare("synth", paper_dir=tmp_path, results_dir=tmp_path)
    assert c.key == "test_mae" and c.paper == () and c.ours == ()
