"""MyST -> slide markdown, for scripts/slides.py: what nbconvert's CommonMark renderer does not know.

Directives such as ``{prf:lemma}`` or ``{exercise}`` become titled boxes (``<div class="dlc-box dlc-...">``, styled
by the slide template), ``{cite}`` becomes "(Author et al., year)" from references.bib, ``{numref}``/``{prf:ref}``
become the figure's number ("Fig. 2.1") or the statement's title, ``{math}`` becomes ``$...$``, ``(label)=``
targets, ``%`` comments, directive options and the closing markers of gated blocks disappear. Only the slides'
in-memory copy is rewritten; the notebooks are never written.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

DIRECTIVE_NAMES = {
    "prf:definition": "Definition", "prf:lemma": "Lemma", "prf:theorem": "Theorem", "prf:proof": "Proof",
    "prf:corollary": "Corollary", "prf:proposition": "Proposition", "prf:algorithm": "Algorithm",
    "prf:remark": "Remark", "prf:example": "Example", "prf:assumption": "Assumption", "prf:axiom": "Axiom",
    "prf:conjecture": "Conjecture", "prf:criterion": "Criterion", "prf:observation": "Observation",
    "prf:property": "Property", "exercise": "Exercise", "solution": "Solution", "exercise-start": "Exercise",
    "solution-start": "Solution", "note": "Note", "tip": "Tip",
    "hint": "Hint", "important": "Important", "warning": "Warning", "caution": "Caution", "seealso": "See also",
    "attention": "Attention", "danger": "Danger", "error": "Error", "admonition": "",
}


def _bib_citations(bib: Path = ROOT / "references.bib") -> dict[str, str]:
    if not bib.is_file():
        return {}
    from pybtex.database import parse_file

    out = {}
    for key, entry in parse_file(str(bib)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        last = " ".join(people[0].last_names) if people else key
        last = re.sub(r"[{}]", "", last)
        who = last if len(people) == 1 else f"{last} and {' '.join(people[1].last_names)}" if len(people) == 2 \
            else f"{last} et al."
        out[key] = f"{who}, {entry.fields.get('year', 'n.d.')}"
    return out


_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*)$")


def collect_labels(notebooks: list[Path], numbers: dict[str, int]) -> dict[str, str]:
    """label -> how a slide names it ("Fig. 2.1", "Lemma (Lemma 1 of the paper)")."""
    labels: dict[str, str] = {}
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        chap = numbers.get(path.stem)
        k = 0
        for cell in nb.cells:
            fig = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
            if cell.cell_type == "code" and fig.get("name"):
                k += 1
                labels[fig["name"]] = f"Fig. {chap}.{k}" if chap else f"Fig. {k}"
            if cell.cell_type != "markdown":
                continue
            lines = cell.source.splitlines()
            for i, line in enumerate(lines):
                m = _FENCE_OPEN.match(line)
                if not m:
                    continue
                for opt in lines[i + 1:i + 8]:
                    lm = re.match(r"\s*:label:\s*(\S+)", opt)
                    if lm:
                        name = DIRECTIVE_NAMES.get(m["name"], m["name"].split(":")[-1].title())
                        arg = m["arg"].strip()
                        labels[lm.group(1)] = f"{name} ({arg})" if arg and name else (arg or name)
                        break
                    if not opt.strip().startswith(":"):
                        break
    return labels


class MystConverter:
    """Rewrites a markdown cell's MyST into CommonMark + HTML that nbconvert renders and MathJax typesets."""

    def __init__(self, labels: dict[str, str], citations: dict[str, str]):
        self.labels = labels
        self.citations = citations

    def role(self, m: re.Match) -> str:
        name, content = m.group(1), m.group(2)
        explicit = re.match(r"^(.*?)\s*<([^<>]+)>$", content, flags=re.S)
        if name.startswith("cite"):
            keys = [k.strip() for k in content.split(",")]
            return "(" + "; ".join(self.citations.get(k, k) for k in keys) + ")"
        if name == "math":
            return f"${content}$"
        if name in ("numref", "ref", "prf:ref", "doc", "term", "eq", "download", "numref:numref"):
            if explicit:
                text, label = explicit.group(1), explicit.group(2)
                return text.replace("%s", self.labels.get(label, label)).replace("{number}", "")
            if name == "eq":
                return f"({content})"
            return self.labels.get(content, content)
        return explicit.group(1) if explicit else content  # an unknown role: its text

    def inline(self, text: str) -> str:
        return re.sub(r"\{([\w:-]+)\}`([^`]*)`", self.role, text)

    def convert(self, source: str) -> str:
        lines = source.splitlines()
        out: list[str] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            m = _FENCE_OPEN.match(line)
            if re.match(r"^\s*\([\w:.-]+\)=\s*$", line) or re.match(r"^\s*%", line):
                i += 1  # a target or a comment
                continue
            if not m:
                line = re.sub(r"^(\s*\$\$)\s*\([\w:.-]+\)\s*$", r"\1", line)  # $$ (label) -> $$
                out.append(line)
                i += 1
                continue
            fence, name, arg = m["fence"], m["name"], m["arg"].strip()
            close = re.compile(r"^\s*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
            j = i + 1
            while j < len(lines) and not close.match(lines[j]):
                j += 1
            body = lines[i + 1:j]
            while body and re.match(r"^\s*:[\w-]+:", body[0]):
                body = body[1:]  # directive options (:label:, :class:, :nonumber: ...)
            i = j + 1
            if name in ("math",):
                out += ["$$", *body, "$$"]
                continue
            if name in ("code-cell", "code-block", "code"):
                out += [f"```{arg}", *body, "```"]
                continue
            if name in ("solution-end", "exercise-end"):
                continue  # the closing marker of a gated block: its box ends where its cells end
            kind = DIRECTIVE_NAMES.get(name, name.split(":")[-1].title())
            if name in ("solution", "solution-start"):
                arg = ""  # its argument is the exercise's label
            title = f"{kind} ({self.inline(arg)})" if arg and kind else (self.inline(arg) or kind)
            css = re.sub(r"[^\w-]", "-", name)
            inner = self.convert("\n".join(body))
            head = f'<p class="dlc-box-title">{html.escape(title, quote=False)}</p>'
            out += ["", f'<div class="dlc-box dlc-{css}">', head,
                    "", inner, "", "</div>", ""]
        return self.inline("\n".join(out))
