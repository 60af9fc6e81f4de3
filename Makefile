# Two set-up commands for a fresh clone: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip -q --disable-pip-version-check

.PHONY: demo test test-fast wheel wheel-lane ort train bench build clean

# Device install: the runtime wheel (numpy + onnxruntime) with the media extra.
$(VENV)/.demo-installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install ".[media]"
	touch $@

# Everything: runtime (editable), TensorFlow trainer, test tools, media; fastcore built in place.
$(VENV)/.dev-installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e ".[train,test,media]"
	touch $@ $(VENV)/.demo-installed

build: $(VENV)/.dev-installed
	$(PY) setup.py build_ext --inplace -q

demo: $(VENV)/.demo-installed
	cd /tmp && $(abspath $(PY)) -m runtime demo --out $(abspath out)

test: build
	$(PY) -m pytest -q -ra

# No TensorFlow (tests/conftest.py fails the run if it was imported), no training, no
# subprocess-heavy tests: under 2 minutes.
test-fast: build
	$(PY) -m pytest -q -ra -m "not slow and not tf"

# The device wheel (py3-none-any, runtime + models in ORT format) into dist/.
wheel: $(VENV)/.dev-installed
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .

# The wheel installed in fresh venvs on every Python 3.10-3.13 found, outside the checkout.
wheel-lane: $(VENV)/.dev-installed
	$(PY) scripts/wheel_lane.py

# Re-derive exported/ort/ (ORT files + required_operators.config) after any export.
ort: build
	$(PY) -m trainer.edge

train: build
	$(PY) -m trainer train all --profile full
	$(PY) -m trainer.edge

bench: build
	$(PY) -m benchmarks all

clean:
	rm -rf build dist *.egg-info fastcore/*.c fastcore/*.so out
