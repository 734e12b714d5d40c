# Fresh machine:  make demo   (install what the main job needs, then a tiny end-to-end run on synthesised audio)
#                 make test   (install the test extras too, then the test suite)
# Both need only Python >= 3.10 with venv, and pip: no system audio tools (ffmpeg, sox, espeak-ng).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# The CPU build of torch 2.13 (an unpinned torch would pull several GB of CUDA wheels).
TORCH_SPEC ?= torch==2.13.0

.PHONY: install install-test test test-all demo

# `make demo` installs the package with its training extra only, so that a test extra can never hide a missing
# requirement of the main job.
install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet -e ".[train]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PYTHON) -m pip install --quiet -e ".[test]"
	touch $@

test: install-test
	$(PYTHON) -m pytest

test-all: install-test
	$(PYTHON) -m pytest --runslow

demo: install
	$(PYTHON) examples/quickstart.py
