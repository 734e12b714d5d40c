# Fresh machine:  make demo   (install what the main job needs, then a tiny end-to-end run on synthesised audio)
#                 make test   (install the test extras too, then the test suite)
# Both need only Python >= 3.10 with venv, and pip: no system audio tools (ffmpeg, sox, espeak-ng).
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# The CPU build of torch 2.13 (an unpinned torch would pull several GB of CUDA wheels).
TORCH_SPEC ?= torch==2.13.0

.PHONY: install install-test test test-all demo small-data-figure

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

# The small-data figure of docs/finetuning.md (pre-training + fine-tuning presets, seed 0, differential attention)
# on the synthetic spoken commands; needs espeak-ng and sox (apt-get install -y espeak-ng sox); ~17 min on 2 cores.
small-data-figure: install
	$(PYTHON) -m pip install --quiet -e ".[plots]"
	PYTHONPATH=. $(PYTHON) examples/pretraining_experiment.py --seeds 0 --attention_types differential \
		--work_dir outputs/small-data --results_dir outputs/small-data/results
