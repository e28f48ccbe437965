# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv from the lock files in locks/ on first use (and again when they change):
# pip installs the pinned installer (uv) with its hashes, uv installs every locked package
# with hashes required, then the project itself without resolving anything again. Bytecode
# is compiled at install: every `modelgate validate` in a pre-commit hook starts faster; so
# are the schema checks modelgate compiles (validator/cli/precompile.py), into its cache.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
LOCK_ARGS ?=

.PHONY: demo test lint scan bench fuzz venv lock lock-check clean system-deps

venv: $(STAMP)

$(STAMP): pyproject.toml locks/modelgate.txt locks/uv.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
	  --require-hashes -r locks/uv.txt
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes --compile-bytecode \
	  locks/modelgate.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	$(BIN)/python -m compileall -q validator >/dev/null
	$(BIN)/python -m validator.cli.precompile
	touch $(STAMP)

# Re-resolve locks/ after editing pyproject.toml. Existing pins are kept: upgrade one
# package with `make lock LOCK_ARGS="--upgrade-package numpy"`, all with LOCK_ARGS=--upgrade.
lock: $(STAMP)
	$(BIN)/python locks/update.py $(LOCK_ARGS)

# Resolve every lock again in a scratch copy and compare: a lock edited by hand (a package
# added under a made-up `# via`) is not what pyproject.toml resolves to, and fails here.
lock-check: $(STAMP)
	$(BIN)/python locks/update.py --check

demo: $(STAMP)
	$(BIN)/modelgate validate
	$(BIN)/modelgate render
	$(BIN)/modelgate deploy models/iris.yaml --target local

# pytest exits 5 when it collected no tests: for the whole suite that is a broken
# suite (fail); for a filtered run (PYTEST_ARGS=-k ...) it only means nothing matched.
test: $(STAMP) system-deps
	@rc=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then \
	  echo "pytest collected no tests"; \
	  if [ -z "$(PYTEST_ARGS)" ]; then exit 1; else exit 0; fi; \
	fi; exit $$rc

# System packages some tests drive for real (a headless browser for the catalog page,
# shellcheck for actionlint's checks of workflow scripts, redis and git for Argo CD; with
# MODELGATE_TEST_KUBELET=1, containerd, runc and the CNI plugins for the node of
# tests/kube_node.py). They are installed when missing and this machine allows it (root with
# apt-get); elsewhere those tests skip and say why.
system-deps:
	@if ! { command -v chromium && command -v shellcheck && command -v redis-server \
	    && command -v git; } >/dev/null 2>&1 \
	    && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium, shellcheck, redis and git for the browser, workflow and Argo CD tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium fonts-liberation shellcheck redis-server git \
	    >/dev/null) \
	  || echo "could not install them: those checks will skip"; \
	fi
	@if [ "$$MODELGATE_TEST_KUBELET" = 1 ] && [ "$$(id -u)" = 0 ] \
	    && command -v apt-get >/dev/null 2>&1 \
	    && ! { command -v containerd && command -v runc \
	           && [ -x /usr/lib/cni/bridge ]; } >/dev/null 2>&1; then \
	  echo "installing containerd, runc and the CNI plugins for the node (MODELGATE_TEST_KUBELET)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends containerd runc containernetworking-plugins >/dev/null) \
	  || echo "could not install them: the node's tests will skip"; \
	fi

# The property-based fuzz tests with many examples (make test runs a small, fixed sample).
FUZZ_EXAMPLES ?= 10000
fuzz: $(STAMP)
	MODELGATE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/test_fuzz.py

lint: $(STAMP)
	$(BIN)/ruff check .

# Checkov's Kubernetes checks on rendered/, offline: every failure must be listed with a reason
# in policies/checkov/exceptions.yaml, and every entry there must still match one (what
# tests/test_checkov.py asserts). Checkov runs in an environment of its own, installed from
# locks/checkov.txt on first use and cached (tests/checkov_scan.py says where).
scan: $(STAMP)
	$(BIN)/python tests/checkov_scan.py

# Every benchmark, and benchmarks/RESULTS.md with each target MET or MISSED.
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
