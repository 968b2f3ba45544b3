# `make demo`, `make test` and `make test-quick` each set up .venv first (safe to re-run; see
# tools/setup_env.sh). `make test` is the full suite (CI); `make test-quick` the quick tier
# (pytest marker `quick`, setup.cfg, less the variants below) for development: under 3 minutes
# on 2 cores.
PYTHON_VENV := .venv/bin/python
PYTEST_ARGS ?=
# What the quick tier leaves to `make test`: the float64, channels-last, oneDNN, bf16 and fused-kernel
# variants of the contract and parity checks, every official arch built at full size, the
# contract's layout details, the converter CLI's subprocess runs and the init_cfg spellings and
# wrappers of every family (the converters themselves stay).
QUICK_DESELECT := not (float64 or channels_last or onednn or bf16 or fused_kernel or \
	inference_rewrites or every_real_arch or deterministic or contiguous or drop_path_schedule \
	or out_norm_option or convert_cli or init_cfg_forms_load_completely or init_cfg_unwraps)

.PHONY: setup demo test test-quick clean-venv

setup:
	bash tools/setup_env.sh

demo: setup
	$(PYTHON_VENV) tools/demo.py

test: setup
	$(PYTHON_VENV) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-quick: setup
	$(PYTHON_VENV) -m pytest -n 2 --dist loadgroup -m quick -k "$(QUICK_DESELECT)" $(PYTEST_ARGS)

clean-venv:
	rm -rf .venv
