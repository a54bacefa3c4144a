# Two entry points that do all set-up on a fresh machine (idempotent, see scripts/setup.sh):
#   make search   the main job: a small PPO2 search on the bundled proxy data
#   make test     the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup search test lint

setup:
	@bash scripts/setup.sh

# Two local workers of the search (--workers 2: one torch thread each on 2 cores).
search: setup
	$(PY) studies/search.py --rounds 6 --samples-per-round 4 --study-name paploss-proxy-demo \
		--storage sqlite:///paploss.db --work-dir work_dirs/search --workers 2

# pytest exits 5 when it collected no tests: that is a failure here.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
