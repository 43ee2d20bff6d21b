# The README's two commands:  `make book`  and  `make test`  (and, to study or to teach:  `make lab`, `make slides`).
# Each one creates .venv if needed and installs what it needs, so both work on a fresh machine.
#
# Torch build: the default spec installs the CPU wheel on CPU-only machines here.
# For CUDA, pass an index URL, e.g.
#   make book TORCH_INDEX=https://download.pytorch.org/whl/cu128
PYTHON      ?= python3
VENV        ?= .venv
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=
PY          := $(VENV)/bin/python
PIP         := $(VENV)/bin/pip
STAMP       := $(VENV)/.dlc-installed
JOBS        ?= 2

.PHONY: book test install assets offline-data chromium clean lab slides

book: install assets offline-data
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	$(PY) scripts/slides.py --html _build/html
	@echo "Book built: _build/html/index.html (lecture slides in _build/html/slides/)"

test: install assets offline-data chromium
	$(VENV)/bin/pytest -n $(JOBS) --dist loadfile

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install --quiet -e ".[book,test,lab]"
	$(PY) -m ipykernel install --prefix $(VENV) --name python3 --display-name "Python 3 (dlc-teach)" >/dev/null
	touch $@

assets:
	bash scripts/fetch_assets.sh

offline-data:
	bash scripts/fetch_offline_data.sh

chromium:
	bash scripts/ensure_chromium.sh

# Study the chapters in JupyterLab (widgets work: ipywidgets 8 needs no extension step). The project's kernel
# "Python 3 (dlc-teach)" is registered in .venv by `install`. Extra options: make lab LAB_ARGS="--port 8899"
LAB_ARGS ?=
lab: install
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=book $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Lecture slides (reveal.js, offline) from every chapter of _toc.yml -> _build/slides/ (and into the built book's
# _build/html/slides/ when there is one, so that each chapter page links its deck). Open _build/slides/index.html.
slides: install assets
	$(PY) scripts/slides.py --html _build/html

clean:
	rm -rf _build
