# `make demo` and `make test` each set up .venv first (safe to re-run; see tools/setup_env.sh).
PYTHON_VENV := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test clean-venv

setup:
	bash tools/setup_env.sh

demo: setup
	$(PYTHON_VENV) tools/demo.py

test: setup
	$(PYTHON_VENV) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

clean-venv:
	rm -rf .venv
