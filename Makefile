# Two commands for a newcomer: `make sim` (the main job on simulated hardware) and
# `make test` (the whole test suite). Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: sim test records lint typecheck imports mosquitto clean firmware

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

sim: $(STAMP)
	$(BIN)/vasopilot sim --scenario resuscitate --hours 2 --mode closed-loop --seed 7

# The real arterial-pressure records, into ~/.cache/vasopilot/records, unless they are beside the clone.
records: $(STAMP)
	@if [ -d ../shared/data/abp ]; then echo "records: ../shared/data/abp is there"; \
	else $(BIN)/vasopilot data fetch; fi

mosquitto:
	@bash scripts/ensure-mosquitto.sh

# The bridge firmware onto a Pico running MicroPython, booted with GP22 grounded.
PICO_PORT ?= /dev/ttyACM0
firmware: $(STAMP)
	$(BIN)/vasopilot firmware flash --port $(PICO_PORT)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/python scripts/typecheck_firmware.py

# The import contracts of pyproject.toml [tool.importlinter] (docs/architecture.md, "Enforced").
imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

test: $(STAMP) mosquitto lint typecheck imports
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache .hypothesis
