# ConvGrade: `make demo` grades the bundled samples, `make test` runs every test (CI runs it).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast clean sandbox-tools browser

# pip's and setuptools' messages (warnings about the machine's package indexes, build notices)
# go to $(VENV)/install.log, not the terminal: shown there only when the install fails.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "installing ConvGrade and its dependencies into $(VENV) (pip's messages: $(VENV)/install.log)"
	@{ $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -e '.[test]'; } > $(VENV)/install.log 2>&1 \
	  || { tail -n 30 $(VENV)/install.log; echo "the install failed: $(VENV)/install.log has pip's messages"; exit 1; }
	touch $@

# The kernel sandbox needs bubblewrap (and prlimit/setpriv from util-linux).
sandbox-tools:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "bubblewrap is missing: install it (apt-get install bubblewrap) or grade with --sandbox none"; exit 1; fi; }

# The class-report test opens the report in headless Chromium (Debian's package).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: the class-report browser test will be skipped"; fi; }

setup: $(STAMP) sandbox-tools

# Each exercise's demo samples (samples/expected.toml: demo = true; all when none is marked).
demo: $(STAMP) sandbox-tools
	@mkdir -p demo-results
	@for ex in $$($(PY) -c 'from grader.spec import available; print(*available())'); do \
	  samples=$$($(PY) -c 'import os, sys; from grader.spec import demo_samples; \
	    print(*(os.path.relpath(p) for p in demo_samples(sys.argv[1])))' $$ex) \
	    || exit 1; \
	  $(PY) grade.py --exercise $$ex $$samples --gradebook demo-results/grades.sqlite --json demo-results/$$ex.json \
	    || exit 1; \
	done
	@echo "results JSON in demo-results/"

# Every test, the slow ones (real kernels, every sample) included.
# pytest-xdist, one worker per core (measured: four workers on two cores took as long, held
# up to 18 GB of memory at once and ran 36 threads for 2 cores). A file's tests stay together
# (tests/conftest.py), each exercise's samples are a group of their own, and the longest groups
# are handed out first. TEST_WORKERS=N to choose.
TEST_WORKERS ?= auto
test: $(STAMP) sandbox-tools browser
	$(PY) -m pytest -m "slow or not slow" -n $(TEST_WORKERS) --dist loadgroup

# The quick loop for development: no kernel, no model worker.
test-fast: $(STAMP)
	$(PY) -m pytest -n auto --dist loadgroup

clean:
	rm -rf $(VENV) demo-results .pytest_cache .hypothesis
