# Two commands on a fresh machine (Python 3.10 or newer):
#   make demo   create .venv if missing, install quail, run `quail demo`
#   make test   create .venv if missing, install quail with the test tools and llama.cpp, lint,
#               run the tests
# constraints.txt pins the CPU build of torch; on a GPU machine run
#   make demo CONSTRAINTS=
# to let pip pick your torch build.

PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= -c constraints.txt
BIN := $(VENV)/bin

.PHONY: demo test install

demo: $(VENV)/.demo
	$(BIN)/quail demo

test: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

install: $(VENV)/.demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalled when the dependencies change; the editable install picks up code changes itself.
$(VENV)/.demo: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install $(CONSTRAINTS) -e ".[all]"
	touch $@

# The tests also run llama.cpp itself: the llamacpp extra builds it from source (4 to 9 minutes
# on 2 cores), and its converter comes from the same sdist, fetched once into the cache
# (docs/QUANT.md, "Install"), so that no test downloads anything.
$(VENV)/.test: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install $(CONSTRAINTS) -e ".[all,test,llamacpp]"
	$(BIN)/python -c "from quail.gguf.converter import converter_script; converter_script()"
	touch $@
