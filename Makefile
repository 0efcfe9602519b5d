# ConvGrade: `make demo` grades the bundled samples, `make test` runs every test (CI runs it).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	@mkdir -p demo-results
	@for ex in $$($(PY) -c 'from grader.spec import available; print(*available())'); do \
	  $(PY) grade.py --exercise $$ex exercises/$$ex/samples --json demo-results/$$ex.json || exit 1; \
	done
	@echo "results JSON in demo-results/"

# Every test, the slow ones (real kernels, every sample) included.
test: $(STAMP)
	$(PY) -m pytest -m "slow or not slow"

# The quick loop for development: no kernels.
test-fast: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) demo-results .pytest_cache .hypothesis
