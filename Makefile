VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

.PHONY: setup demo lint test bench serve

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

## Separate the bundled demo song with the default model; stems and a figure go to separated/.
demo: $(STAMP)
	$(PY) -m convsep demo -o separated --overwrite

## Lint (ruff) and type checks (mypy on the public API and separation/; see pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check convsep tests
	$(VENV)/bin/mypy

## Lint, type checks and the whole test suite (about 10 minutes on 2 cores).
test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile

## The web app on http://127.0.0.1:8000 (PORT=...), opened in the default browser; Ctrl+C stops it.
serve: $(STAMP)
	$(PY) -m convsep serve --port $(or $(PORT),8000) --open

bench: $(STAMP)
	$(PY) benchmarks/separation_speed.py
