# kubesvc: `make up` runs the whole system, `make test` runs the whole suite.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup up test bench lint clean

setup: $(STAMP)

# Re-run the install whenever the project's dependencies change.
$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

# The cluster's state (database, CA, tokens, kubeconfig) lives in $(DATA_DIR).
DATA_DIR ?= .kubesvc
up: setup
	exec $(VENV)/bin/kubesvc up --data-dir $(DATA_DIR) $(ARGS)

# pytest exits 5 when it collected nothing: a run that tests nothing is a failure.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	 if [ $$rc = 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: setup
	$(VENV)/bin/ruff check kubesvc tests bench
	$(VENV)/bin/ruff format --check kubesvc tests bench
	cd . && $(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
