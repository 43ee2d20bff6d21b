"""Self-study in JupyterLab: a real JupyterLab server runs chapter 2 top to bottom and its widget responds.

The test starts ``jupyter lab`` on 127.0.0.1 with a free port and a random token, in a temporary folder that
holds a copy of chapter 2 (``dlc_teach`` importable from the kernel through PYTHONPATH, as `make lab` gives
through the editable install), opens the chapter in headless Chromium (Playwright driving the system's
Chromium, as tests/test_book.py does), runs Run > Run All Cells from a fresh kernel, saves, and checks:

* every code cell ran, in order, and none raised (read back from the saved notebook, and in the page);
* the interactive explorer (ipywidgets 8, no extension step) is displayed with its sliders;
* moving a slider with the keyboard redraws the widget's figure (the kernel answered the slider).

The server is shut down at the end whatever happens (REST shutdown, then terminate, then kill), and JupyterLab's
settings, workspaces and runtime files live in the temporary folder, so nothing of the user's is read or
written. Without Chromium or JupyterLab the test skips with the reason; under ``CI=true`` it fails instead
(`make test` installs both).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from test_book import _skip_or_fail, chromium_browser, offline_page

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "02_star_convexity.ipynb"
BUDGET_S = 90  # the whole test: server start, page, run all, slider
SHOTS = ROOT / "_build" / "lab"  # a failure leaves a screenshot and the page here


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback only)
        return json.loads(r.read().decode() or "null")


class LabServer:
    def __init__(self, root: Path, home: Path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.root = root
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update({
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "DLC_PRESET": "ci",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        })
        # render every cell (no virtual scrolling) so that the page shows all prompts and outputs
        tracker = home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        tracker.parent.mkdir(parents=True, exist_ok=True)
        tracker.write_text(json.dumps({"windowingMode": "none"}))
        news = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True, exist_ok=True)
        news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        self.log = open(home / "lab.log", "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--ServerApp.allow_remote_access=False",
             "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.logfile = home / "lab.log"

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                _get(f"{self.url}/api/status?token={self.token}", timeout=2)
                return
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"jupyter lab did not answer in time:\n{self.tail()}")

    def kernel_idle(self, name: str) -> bool:
        try:
            sessions = _get(f"{self.url}/api/sessions?token={self.token}")
        except OSError:
            return False
        return any(s.get("path", "").endswith(name) and (s.get("kernel") or {}).get("execution_state") == "idle"
                   for s in sessions)

    def tail(self) -> str:
        self.log.flush()
        return self.logfile.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                req = urllib.request.Request(f"{self.url}/api/shutdown?token={self.token}", method="POST")
                try:
                    urllib.request.urlopen(req, timeout=5)  # noqa: S310 (shuts the kernels down too)
                except OSError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                    try:
                        self.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                        self.proc.wait(timeout=5)
            else:  # the server is gone: make sure no kernel it started outlives it
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        finally:
            self.log.close()


@pytest.fixture
def lab(tmp_path):
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        _skip_or_fail("JupyterLab is not installed (the `lab` extra of pyproject.toml: pip install -e '.[lab]', "
                      "or `make lab`)")
    work = tmp_path / "book"
    work.mkdir()
    # the chapter as a student gets it, minus the stored outputs: everything the test sees, this run produced
    nb = nbformat.read(ROOT / "book" / CHAPTER, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, work / CHAPTER)
    server = LabServer(work, tmp_path / "home")
    try:
        server.wait_ready(time.monotonic() + 45)
        yield server
    finally:
        server.stop()
    assert server.proc.returncode is not None, "jupyter lab is still running"


@pytest.fixture
def chromium():
    yield from chromium_browser()


_PROMPTS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
                    .map(e => e.textContent.trim())"""
_FIGURE = """() => { const i = document.querySelector(
                         '.jp-Notebook .widget-output img, .jp-Notebook .jupyter-widgets-output-area img');
                     return i ? i.getAttribute('src') : null; }"""


@pytest.mark.browser
def test_chapter_2_runs_in_jupyterlab_and_its_widget_responds(chromium, lab):
    start = time.monotonic()
    deadline = start + BUDGET_S
    n_code = sum(c.cell_type == "code" for c in nbformat.read(lab.root / CHAPTER, as_version=4).cells)
    mtime = (lab.root / CHAPTER).stat().st_mtime
    ctx, page, blocked, _, errors = offline_page(chromium, {"width": 1400, "height": 1000})
    left = lambda: max(1_000, int((deadline - time.monotonic()) * 1000))  # noqa: E731
    try:
        page.goto(f"{lab.url}/lab/tree/{CHAPTER}?token={lab.token}", wait_until="domcontentloaded")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=left())
        # the notebook's fresh kernel is started and idle before running (asked to the server, not the page)
        while not lab.kernel_idle(CHAPTER):
            assert time.monotonic() < deadline, f"no idle kernel for {CHAPTER}:\n{lab.tail()}"
            page.wait_for_timeout(500)  # (not time.sleep: the page's routed requests need Playwright's loop)
        assert page.evaluate(_PROMPTS) == [""] * n_code or all(p in ("", "[ ]:") for p in page.evaluate(_PROMPTS))
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).first.click()
        # every code cell numbered [1], [2], ... (none left as [*] or blank)
        page.wait_for_function(
            f"() => {{ const p = ({_PROMPTS})(); "
            f"return p.length === {n_code} && p.every(t => /^\\[\\d+\\]:$/.test(t)); }}",
            timeout=left(), polling=500)
        prompts = page.evaluate(_PROMPTS)
        errs_in_page = page.evaluate("() => Array.from(document.querySelectorAll('.jp-OutputArea-output')).filter("
                                     "e => /Traceback|Error\\b.*\\n/.test(e.textContent) && "
                                     "e.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr')"
                                     ".map(e => e.textContent.slice(0, 300))")
        # the explorer: sliders and a figure inside the widget's output
        page.wait_for_selector(".jp-Notebook .widget-slider, .jp-Notebook .widget-hslider", timeout=left())
        page.wait_for_function(f"() => ({_FIGURE})() !== null", timeout=left())
        n_sliders = page.evaluate("() => document.querySelectorAll('.jp-Notebook .widget-slider').length")
        before = page.evaluate(_FIGURE)
        readout_before = page.locator(".jp-Notebook .widget-slider .widget-readout").first.inner_text()
        handle = page.locator(".jp-Notebook .widget-slider .noUi-handle").first
        handle.scroll_into_view_if_needed()
        handle.focus()
        for _ in range(20):  # μ: 20 steps of mu_max/100 to the right
            page.keyboard.press("ArrowRight")
        page.wait_for_function(f"(b) => {{ const a = ({_FIGURE})(); return a !== null && a !== b; }}", arg=before,
                               timeout=left(), polling=250)
        readout_after = page.locator(".jp-Notebook .widget-slider .widget-readout").first.inner_text()
        # save (Ctrl+S) and read the notebook back from disk
        page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
        page.keyboard.press("Control+s")
        while (lab.root / CHAPTER).stat().st_mtime == mtime and time.monotonic() < deadline:
            page.wait_for_timeout(250)
    except Exception:
        # keep what the page showed, for whoever reads the failure
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
        (SHOTS / "failure.html").write_text(page.content())
        print(f"JupyterLab failure: screenshot and page in {SHOTS}; server log:\n{lab.tail()}")
        raise
    finally:
        ctx.close()
    elapsed = time.monotonic() - start
    print(f"JupyterLab: ran {n_code} code cells of {CHAPTER}, moved μ {readout_before} -> {readout_after}, "
          f"{elapsed:.0f} s")
    assert prompts == [f"[{i}]:" for i in range(1, n_code + 1)], f"cells ran out of order or not at all: {prompts}"
    assert not errs_in_page, f"cells raised: {errs_in_page}"
    assert n_sliders >= 2, f"the explorer shows {n_sliders} sliders"
    assert readout_after != readout_before, "the slider did not move"
    assert not errors, f"JavaScript errors in JupyterLab: {errors}"
    assert not blocked, f"JupyterLab tried to reach the network: {sorted(set(blocked))}"
    saved = nbformat.read(lab.root / CHAPTER, as_version=4)
    assert (lab.root / CHAPTER).stat().st_mtime != mtime, "the notebook was not saved"
    code = [c for c in saved.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, n_code + 1))
    bad = [o.get("ename") + ": " + o.get("evalue", "") for c in code for o in c.outputs if o.output_type == "error"]
    assert not bad, f"cells raised: {bad}"
    assert "preset=ci" in "".join(o.get("text", "") for o in code[0].outputs)
    assert elapsed < BUDGET_S + 5, f"took {elapsed:.0f} s (budget {BUDGET_S} s)"
