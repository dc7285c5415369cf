# Everything a fresh machine needs: `make demo` or `make test` make .venv, install impasto with
# its test tools and the VGG19 weights, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.impasto-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
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

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/hotfolder.py

clean:
	rm -rf $(VENV) out .pytest_cache
