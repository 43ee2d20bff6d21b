"""Every built page, as a reader sees it in Chromium after MathJax has run.

For each page of the built book (``built_book`` of ``tests/test_book.py``, chapters written later included) and
at two window widths (1280 and 1920 px), :data:`AUDIT` collects what a reader would see as a defect:

* ``raw-tex``: a TeX command (``\\le``, ``\\mu``, ``\\frac``, ``\\(`` ...) left in the visible prose, i.e. maths that MathJax never saw (typically ``$$`` without blank lines in a list
  item or an admonition);
* ``dollar``: a ``$`` in the visible prose (an unmatched or unparsed maths delimiter);
* ``table``: a markdown table rule (``|---|---|``) in the prose or in a printed output, i.e. a table that was
  printed or written where it is not parsed as one;
* ``wide-math``: a display equation whose glyphs or tag reach outside its own box (clipped on the left when it
  is centred, cut at the right edge, or a tag such as "(12)" shown as "(1").

Code is excluded: code cells, ``<pre>``/``<code>`` (literal spans), highlighted blocks, and MathJax's own
output. Hidden content (solutions in closed dropdowns) is checked too, since a reader opens it.
The audit is proven to fail on a synthetic page with each defect (:func:`test_audit_flags_a_bad_page`).

Run against an existing build with ``DLC_BOOK_HTML=_build/html`` (skips the build).
"""
from __future__ import annotations

import pytest

from test_book import _pages, _wait_for_mathjax, browser, built_book  # noqa: F401  (fixtures)

WIDTHS = (1280, 1920)

#: Runs in the page; returns a list of [kind, excerpt] defects.
AUDIT = r"""() => {
  const found = [];
  const root = document.querySelector('article') || document.body;
  const around = (s, i, n) => s.slice(Math.max(0, i - n), i + n).replace(/\s+/g, ' ');
  // 1. prose: the article without code, outputs' <pre>, scripts and typeset maths
  const prose = root.cloneNode(true);
  prose.querySelectorAll(
    'pre, code, kbd, samp, .highlight, .cell_input, script, style, template, noscript, '
    + 'mjx-container, mjx-assistive-mml, .MathJax, .headerlink, .copybtn'
  ).forEach(e => e.remove());
  // block elements' text joined with spaces (a detached clone has no layout, so textContent it is)
  prose.querySelectorAll('p, li, dt, dd, div, td, th, h1, h2, h3, h4, h5, h6, caption, figcaption')
    .forEach(e => e.append(' '));
  const text = prose.textContent;
  const tex = /\\(?:[A-Za-z]{2,}|[()\[\]{},;!|])/g;
  for (const m of text.matchAll(tex)) found.push(['raw-tex', around(text, m.index, 40)]);
  for (const m of text.matchAll(/\$/g)) found.push(['dollar', around(text, m.index, 40)]);
  // (in prose, smart quotes turn "---" into an em dash)
  const rule = /\|\s*:?(?:-{3,}|[\u2013\u2014]-?):?\s*\|\s*:?(?:-{3,}|[\u2013\u2014]-?):?\s*\|/g;
  for (const m of text.matchAll(rule)) found.push(['table', around(text, m.index, 60)]);
  // 2. printed outputs (stream and text/plain): a table rule only (outputs may print any other character)
  root.querySelectorAll('.cell_output pre, .output pre').forEach(pre => {
    const t = pre.textContent;
    for (const line of t.split('\n')) {
      if (/^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)+\|?\s*$/.test(line)) {
        found.push(['table', 'output: ' + t.slice(0, 120).replace(/\s+/g, ' ')]);
        break;
      }
    }
  });
  // 3. display maths: every glyph and tag inside the equation's own box
  root.querySelectorAll('mjx-container[display="true"]').forEach(c => {
    if (c.getBoundingClientRect().width === 0) return;  // not laid out (e.g. in a closed dropdown)
    // what a reader can see of it: the article's column, cut by every box on the way that clips or scrolls
    const art = root.getBoundingClientRect();
    const box = {left: art.left, right: art.right};
    for (let e = c; e && e !== root; e = e.parentElement) {
      if (getComputedStyle(e).overflowX !== 'visible') {
        const r = e.getBoundingClientRect();
        box.left = Math.max(box.left, r.left); box.right = Math.min(box.right, r.right);
      }
    }
    box.width = box.right - box.left;
    let lo = Infinity, hi = -Infinity;
    c.querySelectorAll('svg use, svg path, svg text, svg rect[data-frame], svg line').forEach(g => {
      if (g.closest('defs')) return;
      const r = g.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) return;
      lo = Math.min(lo, r.left); hi = Math.max(hi, r.right);
    });
    if (lo < box.left - 1 || hi > box.right + 1) {
      const label = (c.querySelector('mjx-assistive-mml') || c).textContent.slice(0, 70);
      found.push(['wide-math',
        `glyphs span ${Math.round(lo - box.left)}..${Math.round(hi - box.left)} px of a ${Math.round(box.width)} px box: ${label}`]);
    }
  });
  return found;
}"""

#: Opens every closed dropdown (solutions, toggles), so that their maths is laid out and measured.
OPEN_ALL = """() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  document.querySelectorAll('.toggle-hidden, .toggle-details__container').forEach(e => {
    e.classList.remove('toggle-hidden'); e.style.display = 'block'; });
  document.querySelectorAll('.solution, .dropdown').forEach(e => e.style.display = '');
}"""


def audit(browser, url: str, width: int) -> list[tuple[str, str]]:
    """Open ``url`` at ``width`` px, wait for MathJax when the page has maths, open dropdowns, run AUDIT."""
    ctx = browser.new_context(viewport={"width": width, "height": 1600}, service_workers="block")
    ctx.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort())
    try:
        page = ctx.new_page()
        page.goto(url, wait_until="load")
        page.evaluate(OPEN_ALL)
        if page.evaluate("() => !!document.querySelector('.math, span.math, div.math')"):
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                   timeout=30_000)
            page.evaluate("() => MathJax.startup.promise")
        return [tuple(x) for x in page.evaluate(AUDIT)]
    finally:
        ctx.close()


BAD_PAGE = r"""<!doctype html><html><head><style>
  article { width: 400px; }
  mjx-container[display="true"] { display: block; text-align: center; }
  div.clip { overflow: hidden; }
</style></head><body><article>
<p>Lemma: for all $\omega$ we have \|\omega\| \le 2L/\mu, so h_{t-1} is written in plain text.</p>
<p>| method | value | |&mdash;|&mdash;:| | base | 0.1 |</p>
<pre>print(r"\le $x$ | a | |---|")</pre><p>Code spans are fine: <code>\frac{a}{b}</code> and <code>$HOME</code>.</p>
<div class="cell_output"><pre>| a | b |
|---|---|
| 1 | 2 |</pre></div>
<div class="clip"><mjx-container display="true" style="margin-left: -200px; width: 800px">
<svg width="800" height="20"><text x="0" y="15">a wide equation clipped left and right</text>
<rect data-frame="1" x="0" y="0" width="800" height="20"/></svg></mjx-container></div>
<mjx-container display="true"><svg width="100" height="20"><text x="0" y="15">narrow</text></svg></mjx-container>
</article></body></html>"""

GOOD_PAGE = r"""<!doctype html><html><body><article>
<p>Prose with a price of five euros, pipes | like this | and dashes --- here.</p>
<pre>$ make test  \le  |---|---|</pre><p><code>\mu</code></p>
<div class="cell_output"><pre>mean | std
0.5  | 0.1</pre></div>
</article></body></html>"""


@pytest.mark.browser
def test_audit_flags_a_bad_page(browser, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(BAD_PAGE)
    found = audit(browser, bad.as_uri(), 1280)
    kinds = [k for k, _ in found]
    assert kinds.count("raw-tex") == 6, found  # \omega \| \omega \| \le \mu; none from <pre>, <code>
    assert not any("frac" in e for k, e in found), found
    assert kinds.count("dollar") == 2, found
    assert kinds.count("table") == 2, found  # the paragraph and the printed output
    assert kinds.count("wide-math") == 1, found
    good = tmp_path / "good.html"
    good.write_text(GOOD_PAGE)
    assert audit(browser, good.as_uri(), 1280) == []


@pytest.fixture(scope="module")
def audited(browser, built_book):  # noqa: F811
    """{(page, width): defects} for every built page, measured once."""
    found = {}
    for p in _pages(built_book):
        name, text = p.relative_to(built_book).as_posix(), p.read_text(errors="replace")
        if name.startswith("_modules/") or 'http-equiv="refresh"' in text.lower():
            continue  # source listings (all code, which the audit excludes) and the redirecting index.html
        for w in WIDTHS if 'class="math' in text else WIDTHS[:1]:  # the width matters for display maths only
            found[name, w] = audit(browser, p.as_uri(), w)
    assert len({n for n, _ in found}) >= 9, f"only {sorted(found)} were audited"
    return found


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["raw-tex", "dollar", "table", "wide-math"])
def test_no_page_shows_rendering_defects(audited, kind):
    bad = {f"{page} @{w}px": [e for k, e in found if k == kind]
           for (page, w), found in audited.items()}
    bad = {k: v for k, v in bad.items() if v}
    report = "\n".join(f"{page}: {len(v)} x {kind}: " + " || ".join(v[:4]) for page, v in bad.items())
    assert not bad, f"pages a reader sees with {kind} defects:\n{report}"

