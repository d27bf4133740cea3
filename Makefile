# mmbench: two entry points, both self-contained on a fresh machine (Python 3.11 + a C compiler).
#   make compare   build everything, compare all designs on the default workloads, write results/
#   make test      build everything, run the test-suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
SOURCES = $(shell find mmbench backends workloads -name '*.pyx' -o -name '*.pxd' -o -name 'meson.build' -o -name '*.py' 2>/dev/null) pyproject.toml meson.build

.PHONY: compare test install clean asv-quick

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q meson-python meson ninja "Cython>=3.0.8" numpy
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pip install -q --no-build-isolation -e ".[test,bench]"
	$(BIN)/python -m pip install -q wheel
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pip install -q --no-build-isolation --no-deps -e examples/mmbench-example-plugin
	touch $(STAMP)

install: $(STAMP)

compare: $(STAMP)
	@test -f "results/calibration/$$(hostname).json" || PATH="$(abspath $(BIN)):$$PATH" $(BIN)/mmbench calibrate
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/mmbench run --profile quick --output results/latest.json
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/mmbench report results/latest.json

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider tests

asv-quick: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/asv run --quick --show-stderr --python=same

clean:
	rm -rf $(VENV) build .mesonpy-* *.egg-info
