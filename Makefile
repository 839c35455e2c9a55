# Two commands on a fresh machine (Python 3.10 or newer):
#   make demo   create .venv if missing, install quail, run `quail demo`
#   make test   create .venv if missing, install quail with the test tools, lint, run the tests
# constraints.txt pins the CPU build of torch; on a GPU machine run
#   make demo CONSTRAINTS=
# to let pip pick your torch build.

PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= -c constraints.txt
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install

demo: $(STAMP)
	$(BIN)/quail demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalled when the dependencies change; the editable install picks up code changes itself.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install $(CONSTRAINTS) -e ".[all,test]"
	touch $(STAMP)
