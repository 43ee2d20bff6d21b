/* dlc-teach: a "Lecture slides" link under the title of each chapter page that has a slide deck.
 * `make slides` / `make book` (scripts/slides.py --html _build/html) write the decks and slides/decks.js, which
 * sets window.DLC_SLIDE_DECKS = {"02_star_convexity": "02_star_convexity.slides.html", ...}. This script loads
 * that list relative to the site's root (Sphinx's data-content_root) and links only the decks that exist, so a
 * book built without slides shows no broken link. Our own code, not third-party. */
(function () {
  "use strict";
  var m = window.location.pathname.match(/\/book\/([^\/]+)\.html$/);
  if (!m) return;
  var stem = decodeURIComponent(m[1]);
  var root = document.documentElement.getAttribute("data-content_root");
  if (root === null) root = "../";

  function addLink(href) {
    var title = document.querySelector("article h1") || document.querySelector("main h1");  // the page's title
    if (!title || document.querySelector(".dlc-slides-link")) return;
    var p = document.createElement("p");
    p.className = "dlc-slides-link";
    p.style.cssText = "margin: -0.3em 0 1em; font-size: 0.95em;";
    var a = document.createElement("a");
    a.href = href;
    a.textContent = "\u25B6 Lecture slides for this chapter";
    p.appendChild(a);
    p.appendChild(document.createTextNode(" (reveal.js, offline; press s for the speaker notes)"));
    title.parentNode.insertBefore(p, title.nextSibling);
  }

  function load() {
    var s = document.createElement("script");
    s.src = root + "slides/decks.js";
    s.onload = function () {
      var decks = window.DLC_SLIDE_DECKS || {};
      if (Object.prototype.hasOwnProperty.call(decks, stem)) addLink(root + "slides/" + decks[stem]);
    };
    s.onerror = function () { /* no slides were built: no link */ };
    document.head.appendChild(s);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load);
  else load();
})();
