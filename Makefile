# The two commands of the README's quick start.
PROMPT ?= a red circle moves to the right
OUT ?= out/demo.mp4

.PHONY: demo test lint

demo:
	@bash scripts/setup.sh
	.venv/bin/python -m sora_core generate --prompt "$(PROMPT)" --out "$(OUT)"

test:
	@bash scripts/setup.sh --test
	.venv/bin/python -m pytest -q

lint:
	@bash scripts/setup.sh --test
	.venv/bin/ruff check .
