# The two commands: `make run` and `make test`. Both set everything up from nothing.
# A Python 3.11+ that an unprivileged user can run too (`serve` gives up root): scripts/pick-python.
PYTHON ?= $(shell ./scripts/pick-python)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml; echo "$(PYTHON)") | sha1sum | cut -c1-12)

.PHONY: run test setup system venv static bytecode lint format bench clean db-start db-stop

run: setup
	$(BIN)/connectivity serve

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

setup: system venv static bytecode

static:
	./scripts/fetch-static-assets

system:
	./scripts/install-system-packages

# The project's own modules compiled ahead: an editable install does not compile them, and
# where PYTHONDONTWRITEBYTECODE is set every command would compile them again (0.3 s a start).
bytecode: venv
	$(BIN)/python -m compileall -q geo api cli maps

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	@# A venv of another interpreter is made again.
	@if [ -x $(BIN)/python ] && [ "$$(cat $(VENV)/.interpreter 2>/dev/null)" != "$(PYTHON)" ]; then rm -rf $(VENV); fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	echo "$(PYTHON)" > $(VENV)/.interpreter
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

db-start: setup
	$(BIN)/connectivity db start

db-stop: venv
	$(BIN)/connectivity db stop

clean: db-stop
	rm -rf $(VENV) var
