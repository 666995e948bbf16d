# Two entry points for a fresh machine (see README.md):
#   make serve   set up the docs toolchain only (no torch), then serve the site on http://127.0.0.1:8000/labnorm/
#   make test    set up the full stack, then unit tests + nbval over every notebook at smoke scale + strict site build
#   make pages   (full stack) render the Results and Claims pages into docs/ after a record, report or claim changed
# VENV: the virtualenv to use (created when missing). PYTHON: the interpreter that creates it.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup setup-docs serve test site pages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt -e .
	npm ci --no-audit --no-fund

# The site alone: notebooks render from their saved outputs, Results and Claims from docs/ (make pages)
setup-docs: $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-docs.txt
	npm ci --no-audit --no-fund

serve: setup-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

site: setup-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

pages: setup
	$(BIN)/python scripts/render_pages.py

test: setup
	LABNORM_SCALE=smoke $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
