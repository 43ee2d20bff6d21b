"""The book builds with warnings as errors, and renders offline.

One session-scoped build (``jupyter-book build . --warningiserror --keep-going`` into a temporary folder) feeds
every test here. Static checks read the built HTML; browser checks open pages in headless Chromium (Debian's
``chromium``, driven by the ``playwright`` package with ``executable_path``, so no browser download) and check:

1. the maths was typeset by MathJax (``mjx-container`` elements, no MathJax errors, no raw ``$$`` left);
2. no page requests anything that is not a local file (no CDN, no fonts, no analytics): every other request is
   recorded and aborted, as in a lecture hall without a network;
3. the widgets of chapter 2 are rendered by the locally served embed script (when that chapter has one).

Without Chromium the browser checks skip, with the reason; under ``CI=true`` they fail instead.
Set ``DLC_CHROMIUM`` to use another Chromium/Chrome executable, ``DLC_BOOK_SCREENSHOTS=DIR`` to keep PNGs,
``DLC_BOOK_HTML=_build/html`` to test a book built beforehand instead of building one.
``tests/test_rendering.py`` audits every built page for what a reader would see as broken (raw TeX, tables).
"""
from __future__ import annotations

import html
import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "book" / "_vendor"

#: The modules book/api.md must document (the design's public modules).
API_MODULES = [
    "dlc_teach.objective",
    "dlc_teach.neighborhoods",
    "dlc_teach.geometry",
    "dlc_teach.starconvexity",
    "dlc_teach.bounds",
    "dlc_teach.iteration",
    "dlc_teach.landscape",
    "dlc_teach.widgets",
    "dlc_teach.toys",
    "dlc_teach.training",
    "dlc_teach.presets",
    "dlc_teach.datasets",
    "dlc_teach.cli",
    "dlc_teach.tasks.base",
    "dlc_teach.tasks.pixel_mnist",
    "dlc_teach.tasks.toy_alignment",
]

#: The bibliography keys the chapters may cite (references.bib may hold more, appended later).
BIB_KEYS = {
    "zhang2024dlc", "arun1987leastsquares", "smart1980fixed", "kleinberg2018alternative", "li2018visualizing",
    "zhou2019sgd", "hinder2020nearoptimal", "nesterov2006cubic", "lee2016star", "zhang2023prise", "wang2019dcp",
    "zhao2021deeplk", "lucas1981iterative", "bishop2006pattern", "arjovsky2016unitary", "hochreiter1997lstm",
    "lecun2010mnist", "kingma2014adam", "besl1992icp", "baker2004lucas",
}

#: The symbols the glossary defines.
GLOSSARY_TERMS = ["ω", "ω*", "ω̃", "λ", "μ", "ρ", "h_θ", "ε", "γ", "ξ", "K", "N(ω*)", "L", "x", "θ", "f", "ℓ",
                  "g", "η", "d", "B", "σ", "ζ", "m(ω)", "s_t", "T"]

CHROMIUM_ARGS = [
    "--no-sandbox",  # Debian's chromium refuses to start as root without it
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _skip_or_fail(reason: str):
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run in CI; `make test` runs scripts/ensure_chromium.sh)")
    pytest.skip(reason)


def _api_md_modules() -> list[str]:
    text = (ROOT / "book" / "api.md").read_text()
    return re.findall(r"^\.\. automodule::\s+(\S+)\s*$", text, flags=re.MULTILINE)


# --------------------------------------------------------------------------------------------------- build


_BUILT: list[Path] = []  # the session's one build, shared by the modules that import this fixture


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Build the whole book once, warnings as errors; return the HTML folder.

    ``DLC_BOOK_HTML=_build/html`` reuses a book built beforehand (a quick loop while fixing pages); the build
    checks of this module then check that build's log only if it is there, so CI never sets it.
    """
    if _BUILT:  # tests/test_rendering.py imports this fixture: build once per session, not once per module
        return _BUILT[0]
    prebuilt = os.environ.get("DLC_BOOK_HTML")
    if prebuilt:
        html = Path(prebuilt).resolve()
        assert (html / "index.html").is_file(), f"DLC_BOOK_HTML={prebuilt}: no index.html there"
        return html
    missing = [p for p in ("mathjax/tex-svg-full.js", "jupyter-widgets/embed-amd.js", "requirejs/require.js")
               if not (VENDOR / p).is_file()]
    if missing:
        pytest.fail(f"offline web assets missing from book/_vendor: {missing}; run `bash scripts/fetch_assets.sh` "
                    "(`make assets`) first")
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else (shutil.which("jupyter-book") or "jupyter-book")]
    out = tmp_path_factory.mktemp("book")
    cmd += ["build", str(ROOT), "--warningiserror", "--keep-going", "--path-output", str(out)]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    elapsed = time.monotonic() - start
    log = proc.stdout + proc.stderr
    (out / "build.log").write_text(log)
    assert proc.returncode == 0, f"`{' '.join(cmd)}` failed (rc={proc.returncode}):\n{log[-6000:]}"
    warnings = [ln for ln in log.splitlines() if re.search(r"\bWARNING\b|\bERROR\b", ln)]
    assert not warnings, "the build reported:\n" + "\n".join(warnings[:30])
    html = out / "_build" / "html"
    assert (html / "index.html").is_file(), f"no index.html in {html}"
    print(f"book built in {elapsed:.0f} s into {html}")
    _BUILT.append(html)
    return html


class _Resources(HTMLParser):
    """Collects every URL a page would fetch by itself (scripts, styles, images, frames, preloads, ...)."""

    FETCHING_LINK_RELS = {"stylesheet", "preload", "prefetch", "preconnect", "dns-prefetch", "icon", "modulepreload",
                          "manifest", "shortcut"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"])
            self.scripts.append(a["src"])
        elif tag in ("img", "iframe", "audio", "video", "source", "embed", "track") and a.get("src"):
            self.urls.append(a["src"])
        elif tag == "link" and a.get("href"):
            rels = set((a.get("rel") or "").lower().split())
            if rels & self.FETCHING_LINK_RELS:
                self.urls.append(a["href"])
        elif tag == "object" and a.get("data"):
            self.urls.append(a["data"])


def _is_local(url: str) -> bool:
    p = urlparse(url)
    if url.startswith("//"):  # protocol-relative: goes to the network (or to a file share, from file://)
        return False
    if p.scheme == "file":
        return p.hostname in (None, "", "localhost")
    if p.scheme in ("", "data", "blob", "about"):
        return True
    return p.scheme in ("http", "https", "ws", "wss") and p.hostname in ("localhost", "127.0.0.1", "::1")


def offline_page(browser, viewport: dict):
    """A new page whose context lets only local requests through (others are recorded and aborted).

    Returns ``(context, page, blocked, requests, errors)``: the lists fill as the page loads and runs.
    """
    blocked, requests, errors = [], [], []
    ctx = browser.new_context(viewport=viewport, service_workers="block")

    def route(r):
        if _is_local(r.request.url):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    ctx.route("**/*", route)
    page = ctx.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    return ctx, page, blocked, requests, errors


def _pages(html: Path) -> list[Path]:
    # slides/ holds the reveal.js decks that `make book` copies in; tests/test_slides.py checks those
    skip = {"_static", "_sources", "slides"}
    return sorted(p for p in html.rglob("*.html") if not skip & set(p.relative_to(html).parts))


def test_book_builds_with_warnings_as_errors(built_book):
    for page in ("book/intro.html", "book/api.html", "book/glossary.html", "book/bibliography.html",
                 "book/01_fixed_points.html", "book/02_star_convexity.html", "book/03_dlc.html",
                 "book/04_near_optimality.html", "book/05_pixel_mnist.html"):
        assert (built_book / page).is_file(), f"{page} was not built"


def test_no_page_loads_anything_from_the_network(built_book):
    offenders = {}
    for page in _pages(built_book):
        parser = _Resources()
        parser.feed(page.read_text(errors="replace"))
        bad = sorted({u for u in parser.urls if not _is_local(u)})
        if bad:
            offenders[page.relative_to(built_book).as_posix()] = bad
    assert not offenders, f"pages that would fetch from the network: {offenders}"


def test_mathjax_is_served_locally(built_book):
    assert (built_book / "_static" / "mathjax" / "tex-svg-full.js").is_file()
    parser = _Resources()
    parser.feed((built_book / "book" / "intro.html").read_text())
    assert any(s.split("?")[0].endswith("_static/mathjax/tex-svg-full.js") for s in parser.scripts), parser.scripts
    assert not any("mathjax" in s.lower() and not _is_local(s) for s in parser.scripts)


def test_vendor_js_is_not_loaded_on_every_page(built_book):
    """Jupyter Book 1 adds every .js under a top-level _static/ to every page; the vendor folder must avoid that."""
    parser = _Resources()
    parser.feed((built_book / "book" / "glossary.html").read_text())
    assert not any("embed-amd" in s or "require.js" in s for s in parser.scripts), parser.scripts


def test_widget_pages_load_the_local_embed_script(built_book):
    pages = [p for p in _pages(built_book) if WIDGET_STATE in p.read_text(errors="replace")]
    if not pages:
        pytest.skip("no page of the book holds widget state yet")
    for page in pages:
        parser = _Resources()
        parser.feed(page.read_text(errors="replace"))
        name = page.relative_to(built_book)
        assert any(s.split("?")[0].endswith("_static/requirejs/require.js") for s in parser.scripts), name
        assert any(s.split("?")[0].endswith("_static/jupyter-widgets/embed-amd.js") for s in parser.scripts), name


def test_launch_and_download_buttons(built_book):
    """Launch and repository buttons only for a real repository URL (tests/test_first_cell.py); always a download."""
    import yaml

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    text = (built_book / "book" / "03_dlc.html").read_text()
    if "your-org" in url:  # the placeholder: a button to a repository that does not exist would mislead
        assert 'href="https://github.com/your-org' not in text, "a button points to the placeholder repository"
        assert "mybinder.org" not in text and "colab.research" not in text, "a launch button is shown"
    else:
        assert "urlpath=lab/tree/book/03_dlc.ipynb" in text, "no JupyterLab launch button on a chapter"
        assert url in text, "no repository button"
    assert "_sources/book/03_dlc.ipynb" in text, "no notebook download button on a chapter"
    assert (built_book / "_sources" / "book" / "03_dlc.ipynb").is_file()


def test_bibliography_has_the_papers_references(built_book):
    bib = (ROOT / "references.bib").read_text()
    keys = re.findall(r"^@\w+\{([^,\s]+),", bib, flags=re.MULTILINE)
    assert len(keys) == len(set(keys)), "references.bib has duplicate keys"
    assert BIB_KEYS <= set(keys), f"references.bib lacks {sorted(BIB_KEYS - set(keys))}"
    page = (built_book / "book" / "bibliography.html").read_text()
    for title in ("Deep Loss Convexification for Learning Iterative Models", "Long Short-Term Memory",
                  "Lucas-Kanade 20 Years On", "A Method for Registration of 3-D Shapes"):
        assert title.lower() in re.sub(r"<[^>]+>", "", page).lower(), f"bibliography page lacks {title!r}"


def test_glossary_defines_every_symbol(built_book):
    page = (built_book / "book" / "glossary.html").read_text()
    dts = re.findall(r"<dt[^>]*>(.*?)</dt>", page, flags=re.S)
    dts = [re.sub(r'<a class="headerlink".*?</a>', "", t, flags=re.S) for t in dts]  # the '#' permalinks
    terms = [html.unescape(re.sub(r"<[^>]+>", "", t)).strip() for t in dts]
    assert terms == GLOSSARY_TERMS, f"glossary terms are {terms}"


def test_api_page_documents_every_module(built_book):
    listed = _api_md_modules()
    assert len(listed) == len(set(listed)), "book/api.md documents a module twice"
    missing = [m for m in API_MODULES if m not in listed]
    assert not missing, f"book/api.md does not document {missing}"
    import dlc_teach

    public = sorted(
        m.name for m in pkgutil.walk_packages(dlc_teach.__path__, "dlc_teach.")
        if not any(part.startswith("_") for part in m.name.split(".")) and not m.ispkg
    )
    undocumented = [m for m in public if m not in listed]
    assert not undocumented, f"modules of dlc_teach missing from book/api.md: {undocumented}"
    failures = {}
    for name in listed:
        try:
            importlib.import_module(name)
        except Exception as e:  # a module the page lists must import; the build would show it empty
            failures[name] = f"{type(e).__name__}: {e}"
    assert not failures, f"modules listed in book/api.md that do not import: {failures}"
    page = (built_book / "book" / "api.html").read_text()
    empty = [m for m in listed if f'id="module-{m}"' not in page or f'id="{m}.' not in page]
    assert not empty, f"api.html documents no object of {empty}"
    assert ".. py:" not in page and ":param " not in page, "autodoc output was not parsed as reStructuredText"
    assert 'id="dlc_teach.objective.DLCLoss"' in page, "autodoc did not document DLCLoss"


# ------------------------------------------------------------------------------------------------- browser


def _chromium_path() -> str | None:
    for cand in (os.environ.get("DLC_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def chromium_browser():
    """Headless Chromium driven by Playwright, for a fixture to ``yield from`` (skips without it; fails under CI)."""
    exe = _chromium_path()
    if exe is None:
        _skip_or_fail("headless Chromium not found (install it with `bash scripts/ensure_chromium.sh`, or set "
                      "DLC_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("the `playwright` package is not installed (it is in the `test` extra of pyproject.toml)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")  # module, not session: Playwright's sync API allows one running instance, and
def browser():                  # tests/test_rendering.py imports this fixture into a second module
    yield from chromium_browser()


class Visit:
    """A page opened in Chromium, with every request it made and every non-local request aborted."""

    def __init__(self, browser, url: str, shots: Path | None):
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 2000}, service_workers="block")
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url, wait_until="load")
        self.shots = shots

    def _route(self, route):
        url = route.request.url
        if _is_local(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def screenshot(self, name: str):
        if self.shots:
            self.shots.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(self.shots / name), full_page=False)

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, built_book):
    opened = []
    shots = Path(os.environ["DLC_BOOK_SCREENSHOTS"]) if os.environ.get("DLC_BOOK_SCREENSHOTS") else None

    def _open(page: str) -> Visit:
        v = Visit(browser, (built_book / page).as_uri(), shots)
        opened.append(v)
        return v

    yield _open
    for v in opened:
        v.close()


def _wait_for_mathjax(v: Visit):
    v.page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
    v.page.evaluate("() => MathJax.startup.promise")


# Text of the article outside code blocks: where raw TeX would show if MathJax had not typeset it.
_PROSE_TEXT = """() => {
  const a = (document.querySelector('article') || document.body).cloneNode(true);
  a.querySelectorAll('pre, code, .highlight, script, mjx-container, mjx-assistive-mml').forEach(e => e.remove());
  return a.innerText;
}"""


@pytest.mark.browser
@pytest.mark.parametrize("page", ["book/intro.html", "book/02_star_convexity.html", "book/api.html",
                                  "book/glossary.html"])
def test_page_renders_offline_with_typeset_math(visit, page):
    v = visit(page)
    needs_math = v.page.evaluate("() => document.querySelectorAll('.math, span.math, div.math').length") > 0
    if needs_math:
        _wait_for_mathjax(v)
        n = v.page.evaluate("() => document.querySelectorAll('mjx-container').length")
        assert n > 0, f"{page}: MathJax produced no mjx-container"
        # (a tagged equation holds nested SVGs, so count containers without any SVG rather than SVGs)
        bare = v.page.evaluate("() => document.querySelectorAll('mjx-container:not(:has(svg))').length")
        assert bare == 0, f"{page}: {bare} of {n} formulas have no SVG rendering"
        merr = v.page.evaluate("() => document.querySelectorAll('[data-mml-node=\"merror\"], mjx-merror').length")
        assert merr == 0, f"{page}: MathJax reported {merr} TeX errors"
        prose = v.page.evaluate(_PROSE_TEXT)
        for raw in ("$$", "\\(", "\\[", "\\begin{"):
            assert raw not in prose, f"{page}: raw TeX {raw!r} left in the rendered text"
    v.screenshot(page.replace("/", "_") + ".png")
    assert not v.blocked, f"{page} tried to reach the network: {sorted(set(v.blocked))}"
    assert all(_is_local(u) for u in v.requests), sorted(set(v.requests))
    assert not v.errors, f"{page}: JavaScript errors: {v.errors}"


@pytest.mark.browser
def test_intro_math_is_typeset(visit):
    """The preface has inline maths: make sure the MathJax path is exercised, whatever the chapters hold."""
    v = visit("book/intro.html")
    _wait_for_mathjax(v)
    assert v.page.evaluate("() => document.querySelectorAll('mjx-container').length") >= 5


@pytest.mark.browser
def test_chapter_2_widget_is_rendered_by_the_embed_script(visit, built_book):
    page = "book/02_star_convexity.html"
    if WIDGET_STATE not in (built_book / page).read_text():
        pytest.skip("chapter 2 stores no widget state (no widget to render)")
    v = visit(page)
    v.page.wait_for_selector(".jupyter-widgets, .widget-container, .lm-Widget", state="attached", timeout=30_000)
    rendered = v.page.evaluate("() => document.querySelectorAll('.jupyter-widgets').length")
    assert rendered > 0, "the embed script rendered no widget"
    v.screenshot("02_widget.png")
    assert not v.blocked, f"the widget page tried to reach the network: {sorted(set(v.blocked))}"
    assert not v.errors, f"JavaScript errors on the widget page: {v.errors}"


# ------------------------------------------------------------------------------------ scripts/fetch_assets.sh

FETCH = ROOT / "scripts" / "fetch_assets.sh"


def _fetch(dest: Path, npm: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DLC_VENDOR_DIR": str(dest), "DLC_NPM": npm}
    return subprocess.run(["bash", str(FETCH)], capture_output=True, text=True, env=env, timeout=120)


def test_fetch_assets_skips_what_is_present(tmp_path):
    if not (VENDOR / ".stamps").is_dir():
        pytest.fail("run `bash scripts/fetch_assets.sh` first (book/_vendor has no stamps)")
    dest = tmp_path / "vendor"
    shutil.copytree(VENDOR, dest)
    proc = _fetch(dest, npm=str(tmp_path / "no-npm-here"))  # would fail if it tried to fetch anything
    assert proc.returncode == 0, proc.stderr
    n_assets = len([p for p in (VENDOR / ".stamps").iterdir() if p.is_file()])  # one stamp per pinned package
    assert n_assets >= 3 and proc.stdout.count("is present, skipping") == n_assets, proc.stdout


def test_fetch_assets_without_npm_fails_clearly(tmp_path):
    proc = _fetch(tmp_path / "vendor", npm=str(tmp_path / "no-npm-here"))
    assert proc.returncode != 0
    assert "npm is not installed" in proc.stderr and "apt-get install" in proc.stderr, proc.stderr
    assert not (tmp_path / "vendor" / "mathjax").exists()


def test_fetch_assets_refuses_a_tarball_that_does_not_match_the_pin(tmp_path):
    """A stand-in npm delivers a package with the pinned files but other bytes: nothing may be installed."""
    fake = tmp_path / "fake-npm"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        "set -e\n"
        '[ "$1" = pack ] || exit 2\n'
        "mkdir -p package/es5 package/dist\n"
        "for f in es5/tex-svg-full.js LICENSE package.json dist/embed-amd.js dist/embed.js.LICENSE.txt require.js;"
        " do echo 'tampered' > package/$f; done\n"
        "tar -czf fake.tgz package\n"
        'echo \'[{"filename": "fake.tgz", "integrity": "sha512-whatever"}]\'\n'
    )
    fake.chmod(0o755)
    dest = tmp_path / "vendor"
    proc = _fetch(dest, npm=str(fake))
    assert proc.returncode != 0
    assert "integrity mismatch for mathjax@" in proc.stderr, proc.stderr
    installed = [p for p in dest.rglob("*") if p.is_file()]
    assert not installed, f"a rejected package left files behind: {installed}"
