"""Lecture slides: every chapter of _toc.yml exports to an offline reveal.js deck.

The decks are built from COPIES of the chapters (the notebooks under book/ are never written): the copies get
their slide metadata from ``scripts/slide_metadata.py`` (what the lead applies to the book), then
``scripts/slides.py`` exports them. The browser checks open each deck in headless Chromium (Playwright driving
the system's Chromium, as tests/test_book.py does) with every non-local request recorded and aborted, and check
that MathJax 3 typeset the maths as SVG with no raw TeX left, that no JavaScript error occurred, and that the
slide count is in the lecture range. Screenshots of a few slides per chapter go to ``_build/slides/screenshots/``.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from test_book import _is_local, _skip_or_fail, chromium_browser, offline_page  # noqa: F401  (shared helpers)

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))
import slide_metadata  # noqa: E402
import slides  # noqa: E402

CHAPTERS = [p.stem for p in slides.toc_chapters(ROOT / "_toc.yml")]  # every notebook of the toc
DECKS = [group[0].stem for group in slides.toc_decks(ROOT / "_toc.yml")]  # one per chapter (with its sections)
#: Slides per chapter: the issue's 25-40 for one lecture (chapters 1 and 8 carry a few author-set sub-slides,
#: their key statements, so that they reach it; chapter 5's deck includes its section 5b).
SLIDES_MIN, SLIDES_MAX = 25, 40
SHOTS = ROOT / "_build" / "slides" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}


def _run(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    if check:
        assert proc.returncode == 0, f"{args} failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def chapter_copies(tmp_path_factory) -> Path:
    """Copies of the toc's chapters with slide metadata applied (book/ itself is left alone)."""
    d = tmp_path_factory.mktemp("chapters")
    (d / "original").mkdir()
    for stem in CHAPTERS:
        shutil.copy2(ROOT / "book" / f"{stem}.ipynb", d / "original" / f"{stem}.ipynb")
        shutil.copy2(d / "original" / f"{stem}.ipynb", d / f"{stem}.ipynb")
    _run(SCRIPTS / "slide_metadata.py", *sorted(d.glob("*.ipynb")))
    return d


@pytest.fixture(scope="module")
def decks(chapter_copies, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("slides")
    _run(SCRIPTS / "slides.py", "--out", out, *[chapter_copies / f"{s}.ipynb" for s in CHAPTERS])
    return out


# --------------------------------------------------------------------------------------------- the metadata


def test_toc_has_chapters():
    assert len(CHAPTERS) >= 5, CHAPTERS


def test_metadata_types_every_cell_and_is_idempotent(chapter_copies):
    for stem in CHAPTERS:
        nb = nbformat.read(chapter_copies / f"{stem}.ipynb", as_version=4)
        types = [c.metadata.get("slideshow", {}).get("slide_type") for c in nb.cells]
        assert None not in types, f"{stem}: untyped cells remain"
        assert set(types) <= slide_metadata.VALID_TYPES, set(types)
        assert {"slide", "notes", "skip"} <= set(types), f"{stem}: types used {sorted(set(types))}"
        nbformat.validate(nb)  # split cells carry valid, unique ids
    before = {p.name: p.read_bytes() for p in chapter_copies.glob("*.ipynb")}
    proc = _run(SCRIPTS / "slide_metadata.py", "--check", *sorted(chapter_copies.glob("*.ipynb")), check=False)
    assert proc.returncode == 0, f"a second run would change the notebooks:\n{proc.stdout}"
    _run(SCRIPTS / "slide_metadata.py", *sorted(chapter_copies.glob("*.ipynb")))
    assert before == {p.name: p.read_bytes() for p in chapter_copies.glob("*.ipynb")}, "second run changed a file"


def test_metadata_keeps_code_and_the_books_markdown(chapter_copies):
    """Splitting markdown cells must not change what the book renders, nor touch any code cell or output."""
    for stem in CHAPTERS:
        orig = nbformat.read(chapter_copies / "original" / f"{stem}.ipynb", as_version=4)
        new = nbformat.read(chapter_copies / f"{stem}.ipynb", as_version=4)
        code_o = [(c.source, c.outputs, c.execution_count) for c in orig.cells if c.cell_type == "code"]
        code_n = [(c.source, c.outputs, c.execution_count) for c in new.cells if c.cell_type == "code"]
        assert code_o == code_n, f"{stem}: code cells changed"
        # the markdown between two code cells, concatenated, is exactly the original
        def runs(nb):
            out, cur = [], []
            for c in nb.cells:
                if c.cell_type == "markdown":
                    cur.append(c.source)
                else:
                    out.append("".join(cur))
                    cur = []
            return out + ["".join(cur)]
        assert [r.replace("\n", "") for r in runs(orig)] == [r.replace("\n", "") for r in runs(new)], stem
        # each piece is one whole top-level block: parsed alone, it is still one block (no fence cut open)
        cut = [c.get("id") for c in new.cells if c.cell_type == "markdown" and c.source.strip()
               and len(slide_metadata.split_markdown(c.source)) != 1]
        assert not cut, f"{stem}: cells {cut} are not single blocks"


def test_author_slide_types_are_kept(tmp_path):
    src = ROOT / "book" / f"{CHAPTERS[1]}.ipynb"
    nb = nbformat.read(src, as_version=4)
    first_md = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown")
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells[first_md].metadata["slideshow"] = {"slide_type": "subslide"}
    nb.cells[first_code].metadata["slideshow"] = {"slide_type": "fragment"}
    kept_source = nb.cells[first_md].source
    path = tmp_path / "ch.ipynb"
    nbformat.write(nb, path)
    _run(SCRIPTS / "slide_metadata.py", path)
    out = nbformat.read(path, as_version=4)
    md = [c for c in out.cells if c.get("id") == nb.cells[first_md].get("id")]
    assert md and md[0].metadata.slideshow.slide_type == "subslide" and md[0].source == kept_source
    code = [c for c in out.cells if c.get("id") == nb.cells[first_code].get("id")]
    assert code[0].metadata.slideshow.slide_type == "fragment"


def test_metadata_rejects_bad_input(tmp_path):
    bad = tmp_path / "x.ipynb"
    cell = nbformat.v4.new_markdown_cell("# T", metadata={"slideshow": {"slide_type": "big"}})
    nb = nbformat.v4.new_notebook(cells=[cell])
    nbformat.write(nb, bad)
    proc = _run(SCRIPTS / "slide_metadata.py", bad, check=False)
    assert proc.returncode != 0 and "slide_type 'big'" in proc.stderr and "expected one of" in proc.stderr
    proc = _run(SCRIPTS / "slide_metadata.py", tmp_path / "missing.ipynb", check=False)
    assert proc.returncode != 0 and "does not exist" in proc.stderr


def test_split_markdown_respects_blocks():
    src = ("Intro $x$.\n\n(lab)=\n## Head\n\nText.\n\n$$\na = b\n$$ (eq)\n\n- one\n\n- two\n\n"
           "````{exercise} T\n:label: e\n\n```python\nx\n```\n\nmore\n````\n")
    pieces = slide_metadata.split_markdown(src)
    assert "".join(t for _, _, t in pieces) == src
    kinds = [k for k, _, _ in pieces]
    assert kinds == ["paragraph", "heading", "paragraph", "math_block_label", "bullet_list", "fence"], kinds
    assert pieces[1][2].startswith("(lab)=\n## Head"), "a target must stay with the block it labels"
    types = [slide_metadata.markdown_type(*p) for p in pieces]
    assert types == ["notes", "slide", "notes", "-", "-", "subslide"], types


# -------------------------------------------------------------------------------------------- the decks


def test_every_chapter_has_a_deck_and_only_local_assets(decks):
    assert set(DECKS) <= set(CHAPTERS) and len(DECKS) >= 5, DECKS
    for stem in DECKS:
        page = (decks / f"{stem}.slides.html").read_text()
        srcs = slides_urls(page)
        assert srcs, stem
        bad = [u for u in srcs if not _is_local(u)]
        assert not bad, f"{stem}.slides.html would load {bad}"
        for u in srcs:
            if not u.startswith("data:"):
                assert (decks / u.split("?")[0].split("#")[0]).is_file(), f"{stem}: {u} is not beside the deck"
        for raw in ("{prf:", "{cite", "{numref}", "```{", ":::{", ":label:", "NBVAL_"):
            assert raw not in page, f"{stem}: MyST {raw!r} left in the slides"
    index = json.loads((decks / "decks.js").read_text().split("=", 1)[1].strip().rstrip(";"))
    assert set(index) == set(CHAPTERS)


def slides_urls(page: str) -> list[str]:
    from test_book import _Resources

    parser = _Resources()
    parser.feed(page)
    return parser.urls


@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


# What the audience sees as text on the slides: no notes, code, outputs or typeset maths.
_SLIDE_TEXT = """() => {
  const s = document.querySelector('.reveal .slides').cloneNode(true);
  s.querySelectorAll('aside.notes, pre, code, .highlight, .jp-OutputArea, script, style, mjx-container')
    .forEach(e => e.remove());
  return s.textContent;
}"""


_GO_TO = "(k) => { const ix = Reveal.getIndices(Reveal.getSlides()[k]); Reveal.slide(ix.h, ix.v, 99); }"


@pytest.mark.browser
@pytest.mark.parametrize("stem", DECKS)
def test_deck_renders_offline(browser, decks, stem):
    ctx, page, blocked, requests, errors = offline_page(browser, VIEWPORT)
    try:
        page.goto((decks / f"{stem}.slides.html").as_uri(), wait_until="load")
        page.wait_for_function("() => window.Reveal && Reveal.isReady() && window.MathJax && MathJax.startup "
                               "&& MathJax.startup.promise", timeout=60_000)
        page.evaluate("() => MathJax.startup.promise")
        n = page.evaluate("() => Reveal.getTotalSlides()")
        math = page.evaluate("() => document.querySelectorAll('.slides mjx-container').length")
        bare = page.evaluate("() => document.querySelectorAll('.slides mjx-container:not(:has(svg))').length")
        merr = page.evaluate("() => document.querySelectorAll('mjx-merror, [data-mml-node=\"merror\"]').length")
        notes = page.evaluate("() => document.querySelectorAll('aside.notes').length")
        text = page.evaluate(_SLIDE_TEXT)
        has_widget = "application/vnd.jupyter.widget-view+json" in (decks / f"{stem}.slides.html").read_text()
        if has_widget:  # rendered from the stored widget state by the local embed script (no kernel)
            page.wait_for_selector(".slides .widget-slider", state="attached", timeout=30_000)
        # screenshots: the title, the first slide with maths, the first with a figure, the last
        picks = page.evaluate("""() => {
          const s = Reveal.getSlides();
          const find = sel => s.findIndex(x => x.querySelector(sel) && !x.querySelector(sel).closest('aside'));
          return [0, find('mjx-container'), find('.jp-OutputArea-output img'), s.length - 1];
        }""")
        SHOTS.mkdir(parents=True, exist_ok=True)
        overflow = []
        for k in sorted({i for i in picks if i >= 0}):
            page.evaluate(_GO_TO, k)
            page.wait_for_timeout(100)
            page.screenshot(path=str(SHOTS / f"{stem}-{k + 1:02d}.png"))
        for k in range(n):  # slides whose content is taller than the screen (they scroll)
            page.evaluate(_GO_TO, k)
            if page.evaluate("() => { const c = Reveal.getCurrentSlide(); "
                             "return c.scrollHeight > c.clientHeight + 8; }"):
                overflow.append(k + 1)
        print(f"{stem}: {n} slides, {math} formulas, {notes} speaker notes, overflowing (scroll): {overflow}")
    finally:
        ctx.close()
    assert not errors, f"{stem}: JavaScript errors: {errors}"
    assert not blocked, f"{stem}: tried to reach the network: {sorted(set(blocked))}"
    assert all(_is_local(u) for u in requests)
    assert math > 0 and bare == 0, f"{stem}: {math} formulas, {bare} without SVG"
    assert merr == 0, f"{stem}: MathJax reported {merr} TeX errors"
    for raw in ("$", "\\(", "\\[", "\\begin{"):
        at = text.find(raw)
        assert at < 0, f"{stem}: raw TeX {raw!r} on a slide: ...{text[max(0, at - 80):at + 80]}..."
    assert SLIDES_MIN <= n <= SLIDES_MAX, f"{stem}: {n} slides, expected {SLIDES_MIN}-{SLIDES_MAX}"
    assert notes >= 3, f"{stem}: only {notes} speaker notes"
    assert len(overflow) <= n // 3, f"{stem}: {len(overflow)} of {n} slides overflow the screen: {overflow}"


# ------------------------------------------------------------------------------------ the chapter page link


def test_book_loads_the_slides_link_script():
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert "slides-link.js" in cfg["html_js_files"]
    assert "book/_static" in cfg["html_static_path"]
    assert (ROOT / "book" / "_static" / "slides-link.js").is_file()


_CHAPTER_PAGE = """<!DOCTYPE html>
<html lang="en" data-content_root="../"><head><meta charset="utf-8">
<script src="../_static/slides-link.js"></script></head>
<body><div class="sidebar"><h1>Deep Loss Convexification</h1></div>
<main><article><section><h1>Star-convexity</h1><p>Text.</p></section></article></main></body></html>
"""


@pytest.mark.browser
@pytest.mark.parametrize("with_slides", [True, False])
def test_chapter_page_links_its_slides(browser, decks, tmp_path, with_slides):
    """A page laid out as Sphinx writes it (data-content_root, script in _static/) links its deck when
    the slide build copied the decks beside the book, and shows no link (and no error) when it did not."""
    html = tmp_path / "html"
    (html / "_static").mkdir(parents=True)
    (html / "book").mkdir()
    shutil.copy2(ROOT / "book" / "_static" / "slides-link.js", html / "_static" / "slides-link.js")
    stem = CHAPTERS[1]
    (html / "book" / f"{stem}.html").write_text(_CHAPTER_PAGE)
    if with_slides:
        shutil.copytree(decks, html / "slides")
    errors = []
    ctx = browser.new_context()
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto((html / "book" / f"{stem}.html").as_uri(), wait_until="load")
        page.wait_for_timeout(300)
        links = page.evaluate("() => Array.from(document.querySelectorAll('.dlc-slides-link a')).map(a => a.href)")
        if with_slides:
            assert len(links) == 1, links
            target = Path(links[0].removeprefix("file://"))
            assert target == (html / "slides" / f"{stem}.slides.html").resolve() and target.is_file(), links
            where = page.evaluate("() => document.querySelector('.dlc-slides-link')"
                                  ".previousElementSibling.textContent")
            assert where == "Star-convexity", f"the link is not under the chapter's title but under {where!r}"
            page.click(".dlc-slides-link a")
            page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=30_000)
        else:
            assert links == []
    finally:
        ctx.close()
    assert not errors, errors


def test_the_chapters_carry_their_slide_metadata():
    """Every chapter in book/ carries the slide types the rules give (a new or edited cell without one fails:
    run `python scripts/slide_metadata.py book/*.ipynb`, which keeps the types an author set by hand)."""
    proc = _run(SCRIPTS / "slide_metadata.py", "--check", *[ROOT / "book" / f"{s}.ipynb" for s in CHAPTERS],
                check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
