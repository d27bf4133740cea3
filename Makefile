# mmbench: two entry points, both self-contained on a fresh machine (Python 3.11 + a C compiler).
#   make compare   build everything, compare all designs on the default workloads, print the
#                  headline tables; the full report goes to $(OUT) (ignored by git)
#   make test      build everything, run the test-suite
# and, for maintainers:
#   make publish   copy the last `make compare` (and its calibration) into results/ and rebuild the
#                  published comparison there: the only target that changes tracked files
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
SOURCES = $(shell find mmbench backends workloads -name '*.pyx' -o -name '*.pxd' -o -name 'meson.build' -o -name '*.py' 2>/dev/null) pyproject.toml meson.build

MMBENCH = PATH="$(abspath $(BIN)):$$PATH" $(BIN)/mmbench
OUT     ?= out/compare
PROFILE ?= quick
RUN_ARGS ?=
CALIBRATE_ARGS ?=

.PHONY: compare publish test install clean asv-quick

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q meson-python meson ninja "Cython>=3.0.8" numpy
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pip install -q --no-build-isolation -e ".[test,bench]"
	$(BIN)/python -m pip install -q wheel setuptools
	touch $(STAMP)

install: $(STAMP)

compare: $(STAMP)
	$(MMBENCH) calibrate --if-missing $(CALIBRATE_ARGS)
	@mkdir -p $(OUT)
	$(MMBENCH) run --profile $(PROFILE) $(RUN_ARGS) --output $(OUT)/latest.json
	$(MMBENCH) report $(OUT)/latest.json --out $(OUT)

publish: $(STAMP)
	@test -f $(OUT)/latest.json || { echo "make publish: no $(OUT)/latest.json: run make compare first" >&2; exit 2; }
	$(BIN)/python -c 'import json, pathlib, shutil, socket, sys; \
	    cal = json.load(open("$(OUT)/latest.json")).get("calibration"); \
	    dst = pathlib.Path("results/calibration") / (socket.gethostname() + ".json"); \
	    gone = cal and not pathlib.Path(cal).exists(); \
	    gone and print(f"make publish: calibration {cal} is gone; results/calibration not updated", file=sys.stderr); \
	    dst.parent.mkdir(parents=True, exist_ok=True); \
	    cal and not gone and not (dst.exists() and dst.samefile(cal)) and shutil.copyfile(cal, dst)'
	cp $(OUT)/latest.json results/latest.json
	$(MMBENCH) report results/latest.json --out results --quiet

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -p no:cacheprovider tests

asv-quick: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/asv machine --yes
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/asv run --quick --show-stderr --python=same \
	    --set-commit-hash=$$(git rev-parse HEAD)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/asv publish

clean:
	rm -rf $(VENV) build .mesonpy-* *.egg-info out
