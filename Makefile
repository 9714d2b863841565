# dmvae-study: `make demo` (set-up + the main job) and `make test` (set-up + the tests) from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup data test bench demo lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

data: setup
	$(BIN)/dmvae data fetch mnist fmnist

test: setup data
	$(BIN)/python -m pytest -q

bench: setup data
	$(BIN)/python bench/train_speed.py --dataset mnist
	$(BIN)/python bench/train_speed.py --dataset fmnist

demo: setup data
	$(BIN)/dmvae train --config configs/mnist_dmvae.yaml --set data.paired_fraction=0.002 --set train.epochs=10 --out runs/demo-$(shell date +%Y%m%d-%H%M%S)

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs report
