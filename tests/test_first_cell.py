"""Opening a chapter outside this repository works: the first code cell installs ``dlc_teach`` when it is missing.

* The repository URL is set in one place (``_config.yml``); the repository and launch buttons are shown only
  when it is not the placeholder, and every chapter's install line names the same URL
  (``scripts/set_repository.py`` keeps them in step).
* The first cell, run in a fresh virtual environment without ``dlc_teach`` and without network, installs it
  from a wheel built here (``pip wheel .``) and goes on to print the preset; run again, it installs nothing.
  The environment reuses this project's installed dependencies (torch, ...) through a ``.pth`` file, so the
  test takes seconds, not a download.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
import yaml

from test_notebooks_stored import NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from set_repository import PLACEHOLDER, install_head, repository_url  # noqa: E402


def first_code_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code" and c.source.strip())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_installs_from_the_configured_repository(path):
    src = first_code_cell(path)
    assert src.startswith(install_head(repository_url())), (
        f"{path.name}: the first code cell must start with the install lines of scripts/set_repository.py "
        f"(installing git+{repository_url()} when dlc_teach is missing); run "
        "`python scripts/set_repository.py --insert --all` (or copy them from chapter 1)"
    )


def test_buttons_are_shown_only_for_a_real_repository():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    live = cfg["repository"]["url"] != PLACEHOLDER
    assert cfg["html"]["use_repository_button"] is live
    assert bool(cfg["launch_buttons"]["binderhub_url"]) is live
    assert bool(cfg["launch_buttons"]["colab_url"]) is live


def _run_first_cell(python: Path, cell: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Run a notebook cell (IPython syntax, %pip included) in ``python``, as a kernel would."""
    runner = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "r = shell.run_cell(sys.stdin.read())\n"
        "import dlc_teach\n"
        "print('dlc_teach from', dlc_teach.__file__)\n"
        "sys.exit(0 if r.success else 1)\n"
    )
    return subprocess.run([str(python), "-c", runner], input=cell, capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_first_cell_installs_a_local_wheel_offline(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(wheels), "-q"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next(wheels.glob("dlc_teach-*.whl"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # the project's dependencies (and pip, IPython) without reinstalling them; not its editable dlc_teach,
    # which is found through a .pth file that a path added this way does not run
    (site / "_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "work"  # not the repository root, where `import dlc_teach` would find the sources
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(DLC_PRESET="ci", DLC_TEACH_SOURCE=str(wheel), PIP_NO_INDEX="1", PIP_NO_DEPS="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", MPLBACKEND="Agg")
    missing = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('dlc_teach'))"],
                             capture_output=True, text=True, cwd=work, env=env)
    assert missing.stdout.strip() == "None", f"the fresh environment already finds dlc_teach: {missing.stdout}"

    cell = first_code_cell(ROOT / "book" / "01_fixed_points.ipynb")
    first = _run_first_cell(python, cell, work, env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "preset=ci" in first.stdout, first.stdout
    assert f"dlc_teach from {site}" in first.stdout, f"dlc_teach was not installed into the venv:\n{first.stdout}"
    assert "Note: you may need to restart the kernel" in first.stdout, first.stdout  # %pip ran

    again = _run_first_cell(python, cell, work, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "restart the kernel" not in again.stdout, f"the second run installed again:\n{again.stdout}"
    assert "preset=ci" in again.stdout
