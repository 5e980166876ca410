# `make demo` and `make test` work on a fresh machine: they create .venv, install the CPU build of torch first
# (PyPI's torch for Linux is the multi-GB CUDA build), then this package with its test extras. Where the PyTorch CPU
# index cannot be reached (an offline mirror, a proxy that allows PyPI only), the same pin comes from the other
# configured indexes instead (`pip install torch==2.13.0`: a local wheel, a mirror, or PyPI).
VENV ?= .venv
PY ?= $(VENV)/bin/python
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
STAMP := $(VENV)/.installed-stamp
export HF_HUB_DISABLE_PROGRESS_BARS ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install torch browser demo test lint bench clean

install: $(STAMP) browser

# Debian's chromium + chromium-driver for the Space's browser test (tests/hub/test_space.py), when missing: as root
# (CI) or through password-less sudo; otherwise that one test skips, saying why (it fails under .ci/run or CI=true)
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	elif sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "chromium/chromium-driver missing and no root: the browser test will skip (apt-get install chromium chromium-driver)"; fi

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(MAKE) --no-print-directory torch PY=$(PY)
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# the CPU build from the PyTorch index when it answers, else the same pin from pip's other indexes
torch:
	@if $(PY) -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=15)" \
		"$(TORCH_INDEX)" 2>/dev/null; then \
		$(PY) -m pip install -q "$(TORCH)" --index-url "$(TORCH_INDEX)"; \
	else \
		echo "the PyTorch CPU index $(TORCH_INDEX) cannot be reached: pip install $(TORCH) from the other indexes"; \
		$(PY) -m pip install -q "$(TORCH)"; \
	fi

demo: $(STAMP)
	$(PY) examples/demo.py --output-dir outputs/demo

test: $(STAMP) browser
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) outputs .pytest_cache
