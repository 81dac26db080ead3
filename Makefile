# Two entry points (see README.md, Quick start):
#   make example   set up .venv, scaffold the bundled example experiment, show the result
#   make test      set up .venv with the test tools (and SLURM), run the whole test suite
# Plus: make tiny (the tiny experiment, trained and evaluated for real on CPU via SLURM),
#       make golden (regenerate tests/golden after reviewing a generator change).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXAMPLE_OUT := build/example-experiment

.PHONY: example tiny test golden clean

$(BIN)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# torch first, from the pinned CPU build: anything else lets pip pull CUDA wheels.
$(BIN)/.tools: $(BIN)/.base
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,tools]'
	touch $@

example: $(BIN)/.base
	rm -rf $(EXAMPLE_OUT)
	$(BIN)/copier copy --trust --defaults --data-file examples/capitalization/experiment_summary.yaml "$(CURDIR)" $(EXAMPLE_OUT)
	@echo; echo "== $(EXAMPLE_OUT): one commit, clean tree =="
	@git -C $(EXAMPLE_OUT) log --stat --format='%h %s' | head -n 60
	@git -C $(EXAMPLE_OUT) status --short
	@echo; echo "== one run's torchtune config =="
	@sed -n '1,40p' $(EXAMPLE_OUT)/Llama-3.2-1B-Instruct_rank8_lr1e-5/finetune.yaml
	@echo; echo "== verify =="
	$(BIN)/cruijff-gen verify $(EXAMPLE_OUT)
	@echo; echo "== next =="
	@echo "  your own design:   cp examples/capitalization/experiment_summary.yaml my_summary.yaml  (edit it; README: The design file by example)"
	@echo "  see what it makes: $(BIN)/cruijff-gen plan my_summary.yaml --dest /scratch/<you>/my_experiment"
	@echo "  scaffold it:       $(BIN)/cruijff-gen new my_summary.yaml /scratch/<you>/my_experiment"
	@echo "  run it:            cd /scratch/<you>/my_experiment && cruijff-gen submit && cruijff-gen status"
	@echo "  a whole tiny experiment, trained and evaluated on this machine's CPU: make tiny"

# The tiny experiment end to end: make a tiny model, scaffold, submit to SLURM (if sbatch is here).
tiny: $(BIN)/.tools
	$(BIN)/python examples/tiny/run.py

# On 2 pytest-xdist workers (README: Development); the tests' temporary files go to memory when
# /dev/shm has room (.ci/test-tmpdir says why).
test: $(BIN)/.tools
	bash .ci/install-slurm.sh
	@tmp=$$(bash .ci/test-tmpdir); if [ -n "$$tmp" ]; then echo "tests' temporary files: $$tmp (TMPDIR)"; export TMPDIR="$$tmp"; fi; \
	$(BIN)/python -m pytest -n 2 --dist loadfile

golden: $(BIN)/.base
	$(BIN)/python -m pytest tests/test_golden.py --update-golden
	git status --short tests/golden

clean:
	rm -rf $(VENV) build
