# Fresh machine:  make demo   (install, then a tiny end-to-end run on synthesised audio)
#                 make test   (install, then the test suite)
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# The CPU build of torch 2.13 (an unpinned torch would pull several GB of CUDA wheels).
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test test-all demo

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet -e ".[test]"
	touch $@

test: install
	$(PYTHON) -m pytest

test-all: install
	$(PYTHON) -m pytest --runslow

demo: install
	$(PYTHON) examples/quickstart.py
