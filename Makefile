# Retouch: `make serve` sets everything up and serves; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install serve test bench eval clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/retouch serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/report.py

eval: $(STAMP)
	$(BIN)/python ../shared/eval/run.py --cmd "env RETOUCH_BACKEND=local $(BIN)/retouch"

clean:
	rm -rf $(VENV) *.egg-info
