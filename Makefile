# Two entry points for a fresh machine (see README.md):
#   make serve   set up, then serve the site on http://127.0.0.1:8000/labnorm/
#   make test    set up, then unit tests + nbval over every notebook at smoke scale + strict site build
# VENV: the virtualenv to use (created when missing). PYTHON: the interpreter that creates it.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup serve test site

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt -e .
	npm ci --no-audit --no-fund

serve: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

site: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: setup
	LABNORM_SCALE=smoke $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
