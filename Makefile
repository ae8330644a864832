# Two commands do all set-up on a fresh machine:
#   make demo   builds the shipped sample model for the three device classes and prints the comparison
#   make test   runs the test suite (all of it, as CI does) and prints the 25 slowest tests
#   make test-fast  the fast tier for inner loops: no TensorFlow, PyTorch, onnx2tf or firmware (the marks in
#               tests/conftest.py HEAVY; a test that uses one of them unmarked fails)
#   make onnx2tf installs onnx2tf (ONNX -> float TFLite) in its own environment in the user cache (~3 min, ~650 MB;
#               a no-op when present): edgeopt tools install-onnx2tf
#   make wheel  writes dist/edgeopt-VERSION-py3-none-any.whl (built-in profiles included) for pip install elsewhere
# demo and test create their own virtual environment (.venv) and install edgeopt from pyproject.toml;
# edgeopt is then .venv/bin/edgeopt (`. .venv/bin/activate` puts it on PATH).

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-dev

.PHONY: demo test test-fast lint onnx2tf wheel clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	@for t in mobile-cpu embedded-mcu edge-server; do \
	  $(VENV)/bin/edgeopt build sample_models/digits_cnn.keras --target $$t --out demo-out/$$t || exit $$?; \
	done
	@# exit 3 is an honest outcome here: int8 can be slower than float for a 10-microsecond MLP on x86
	$(VENV)/bin/edgeopt build sample_models/digits_mlp.onnx --target edge-server --out demo-out/onnx-edge-server \
	  || [ $$? -eq 3 ]
	$(VENV)/bin/edgeopt compare demo-out/mobile-cpu demo-out/embedded-mcu demo-out/edge-server demo-out/onnx-edge-server

test: lint onnx2tf
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --fast --durations=10

# onnx2tf needs Python >= 3.12 and pins its own numpy/onnx/onnxruntime: a venv of its own, found by edgeopt.
onnx2tf: $(STAMP)
	$(VENV)/bin/edgeopt tools install-onnx2tf

lint: $(STAMP)
	$(VENV)/bin/ruff check edgeopt tests benchmarks sample_models examples
	$(VENV)/bin/mypy edgeopt

# pip fetches hatchling into an isolated build environment; --no-deps: the wheel of edgeopt alone.
wheel:
	@$(PYTHON) -m pip --version >/dev/null 2>&1 || { echo "make wheel needs pip for $(PYTHON); try: make wheel PYTHON=.venv/bin/python"; exit 2; }
	$(PYTHON) -m pip wheel --no-deps -q -w dist .
	@ls dist/edgeopt-*.whl

clean:
	rm -rf $(VENV) demo-out dist
