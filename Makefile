# Two commands for a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 3000

# Development defaults for `make run` only; real deployments set these in the environment.
RUN_ENV := DEBUG=$${DEBUG:-true} \
	SECRET_KEY=$${SECRET_KEY:-dev-only-secret-key-change-me} \
	JWT_SECRET=$${JWT_SECRET:-dev-only-jwt-secret-change-me-please} \
	LOG_PRETTY=$${LOG_PRETTY:-true} \
	HTTP_PORT=$${HTTP_PORT:-$(PORT)} \
	HOST=$${HOST:-127.0.0.1} \
	HTTP_ALLOWED_PRIVATE_HOSTS=$${HTTP_ALLOWED_PRIVATE_HOSTS:-127.0.0.1,localhost}

.PHONY: install run test lint pytest clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput
	$(RUN_ENV) $(BIN)/python manage.py nexus_demo
	$(RUN_ENV) $(BIN)/python manage.py nexus_serve --single-port

lint: install
	$(BIN)/ruff check .
	JWT_SECRET=lint-only SECRET_KEY=lint-only $(BIN)/mypy nexus workspaces runtime
	$(BIN)/lint-imports

pytest: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache staticfiles
