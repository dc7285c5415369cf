# Everything a fresh machine needs: `make demo` or `make test` make .venv, install impasto with
# its test tools and the VGG19 weights, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.impasto-installed

.PHONY: demo test lint docs bench peer clean

# The stamp is written last, so a .venv without it was cut short (or its Python is gone): it is
# made again from scratch rather than trusted. Each prerequisite that is missing is named, with
# what to install. The venv is made by the interpreter's real file (python3 -> python3.11), so
# .venv/bin/python names the exact version it needs: the GIMP 3 test mounts that one file into
# a root whose own python3 is another version.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "make: impasto needs Python 3.11 or newer, and '$(PYTHON)' is missing or older." \
	    "Install it (Debian/Ubuntu: sudo apt-get install python3 python3-venv)," \
	    "or name one: make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@if [ ! -f $(STAMP) ] || ! $(BIN)/python -m pip --version >/dev/null 2>&1; then \
	  if [ -e $(VENV) ]; then echo "make: $(VENV) is incomplete; making it again"; fi; \
	  rm -rf $(VENV); \
	  real=$$($(PYTHON) -c 'import os, sys; print(os.path.realpath(sys.executable))'); \
	  "$${real:-$(PYTHON)}" -m venv $(VENV) || { rm -rf $(VENV); \
	    echo "make: '$(PYTHON) -m venv' cannot make a virtual environment here." \
	      "Install Python's venv module (Debian/Ubuntu: sudo apt-get install python3-venv)," \
	      "then run make again" >&2; exit 1; }; \
	fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs,cluster]'  # cluster: the Ray tests run too
	$(BIN)/impasto weights install
	touch $@

demo: $(STAMP)
	@mkdir -p out
	$(BIN)/impasto stylize examples/content.jpg examples/style.png -o out/demo.png
	@echo "The stylised example is in out/demo.png"

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# The manual (mkdocs.yml, docs/), built offline into site/. Strict: a broken link, a missing page
# or heading fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Each benchmark writes its figures to benchmarks/results/ (most as a section of <cpu>-<n>cores.md). The tutorial's
# 1000-step runs (about 3 hours on 2 cores) are made once per machine and kept; so are the quality
# benchmark's peer pictures (in ~/.cache/impasto-bench; `python benchmarks/quality.py --plan`).
# IMPASTO_BENCH_SMOKE=DIR runs each one tiny, into DIR (tests/test_benchmarks.py does).
# The quality benchmark's judge and peer need the bench extra (PyTorch: about 5.5 GB with PyPI's
# CUDA libraries) and a clone from GitHub, so they are checked here, not by `make test`.
bench: $(STAMP) peer
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m pytest -q benchmarks/test_tools.py
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/tutorial_baseline.py
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/levers.py
	$(BIN)/python benchmarks/hotfolder.py
	$(BIN)/python benchmarks/cluster.py

# The quality benchmark's peer, crowsonkb/style-transfer-pytorch: a local clone it runs a pinned
# commit of (benchmarks/peer_crowsonkb.py), made once; an existing one can be named instead.
export IMPASTO_PEER_REPO ?= $(HOME)/.cache/impasto-bench/style-transfer-pytorch.git
peer:
	test -d $(IMPASTO_PEER_REPO) || \
	  git clone --bare --quiet https://github.com/crowsonkb/style-transfer-pytorch $(IMPASTO_PEER_REPO)

clean:
	rm -rf $(VENV) out site .pytest_cache
