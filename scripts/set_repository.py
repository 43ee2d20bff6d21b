"""Set the book's repository URL in its one place, and everything that follows from it.

    python scripts/set_repository.py https://github.com/ORG/dlc-teach   # publish: set the URL
    python scripts/set_repository.py                                     # re-sync after editing _config.yml
    python scripts/set_repository.py --insert                            # also add the install lines
    python scripts/set_repository.py --all                               # every chapter, not only 1-5

The URL lives in ``_config.yml`` (``repository: url:``). From it follow:

* the repository button and the Binder/Colab launch buttons, shown only when the URL is not the placeholder
  ``https://github.com/your-org/dlc-teach`` (a button to a repository that does not exist helps nobody);
* the install line in the first code cell of every chapter, which runs ``%pip install git+URL`` when
  ``dlc_teach`` cannot be imported (Colab, Binder, a fresh kernel) and does nothing where it can.

``tests/test_first_cell.py`` checks that the three agree, so an edit by hand is caught.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
PLACEHOLDER = "https://github.com/your-org/dlc-teach"
BINDER, COLAB = "https://mybinder.org", "https://colab.research.google.com"

#: The lines every chapter's first code cell starts with; {url} is the repository URL.
INSTALL_CELL_HEAD = '''import importlib.util
import os

# On Colab, Binder or a fresh kernel: install the book's library (else: nothing to do).
REPOSITORY = "{url}"
DLC_TEACH = os.environ.get("DLC_TEACH_SOURCE", f"git+{{REPOSITORY}}")
if importlib.util.find_spec("dlc_teach") is None:
    %pip install --quiet {{DLC_TEACH}}
'''


def repository_url() -> str:
    return yaml.safe_load(CONFIG.read_text())["repository"]["url"]


def install_head(url: str) -> str:
    return INSTALL_CELL_HEAD.format(url=url)


def _set(text: str, key: str, value: str) -> str:
    """Replace the value of the first ``key:`` line (keeping indentation and any comment)."""
    new, n = re.subn(rf"^(\s*{key}:)[^\n#]*?(\s*(#.*)?)$", lambda m: f"{m.group(1)} {value}{m.group(2)}",
                     text, count=1, flags=re.MULTILINE)
    if n != 1:
        raise SystemExit(f"_config.yml has no `{key}:` line")
    return new


def sync_config(url: str) -> None:
    live = url != PLACEHOLDER
    text = _set(CONFIG.read_text(), "url", url)
    text = _set(text, "use_repository_button", "true" if live else "false")
    text = _set(text, "binderhub_url", f'"{BINDER}"' if live else '""')
    text = _set(text, "colab_url", f'"{COLAB}"' if live else '""')
    CONFIG.write_text(text)


def sync_notebooks(url: str, insert: bool = False, every: bool = False) -> list[Path]:
    """Point every notebook's install line at ``url``; with ``insert``, add the lines where they are missing."""
    changed = []
    for path in sorted((ROOT / "book").glob("*.ipynb" if every else "0[1-5]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code" and c.source.strip())
        old = re.match(r"import importlib\.util\nimport os\n\n# On Colab.*?%pip install --quiet \{DLC_TEACH\}\n",
                       first.source, flags=re.DOTALL)
        if old:  # the install lines, in this or an earlier wording: replace them whole
            src = install_head(url) + first.source[old.end():]
        elif insert:
            body = re.sub(r"^import os\n", "", first.source, flags=re.MULTILINE)
            src = install_head(url) + "\n" + body
        else:
            continue
        if src != first.source:
            first.source = src
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def main(argv: list[str]) -> int:
    insert, every = "--insert" in argv, "--all" in argv
    argv = [a for a in argv if a not in ("--insert", "--all")]
    if len(argv) > 1:
        print(__doc__)
        return 2
    url = argv[0].rstrip("/") if argv else repository_url()
    if not re.match(r"^https://[\w.-]+/[\w.-]+/[\w.-]+$", url):
        raise SystemExit(f"not a repository URL: {url!r} (expected https://HOST/OWNER/NAME)")
    sync_config(url)
    changed = sync_notebooks(url, insert, every)
    print(f"repository {url} ({'placeholder: buttons hidden' if url == PLACEHOLDER else 'buttons shown'}); "
          f"{len(changed)} notebook(s) updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
