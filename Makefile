# Two entry points (README.md): `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8080

.PHONY: setup demo test

$(PY):
	python3 -m venv $(VENV)

setup: $(PY)
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"

demo: setup
	$(VENV)/bin/realtime serve --port $(PORT)

test: setup
	$(PY) -m pytest -q
