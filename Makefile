# Two set-up commands for a fresh clone: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip -q --disable-pip-version-check

.PHONY: demo test train bench build clean

# Runtime only (numpy + onnxruntime + the media extra): what an app ships.
$(VENV)/.demo-installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install ".[media]"
	touch $@

# Everything: runtime, fastcore built in place, TensorFlow trainer, test tools.
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

train: build
	$(PY) -m trainer train all --profile full

bench: build
	$(PY) -m benchmarks all

clean:
	rm -rf build dist *.egg-info fastcore/*.c fastcore/*.so out
