# dmvae-study: `make demo` (set-up + the main job) and `make test` (set-up + the tests) from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup postgres data test bench bench-peer faults demo lint clean

setup: $(STAMP) postgres

# The tests start a throwaway PostgreSQL server (tests/services.py): Debian's postgresql package, installed
# here when its binaries are missing (as root: apt-get; otherwise say what to run).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; \
	  else echo "PostgreSQL not found: run 'sudo apt-get install postgresql' (the tests need initdb and pg_ctl)"; exit 1; fi; }

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

data: setup
	$(BIN)/dmvae data fetch mnist fmnist

# DMVAE_REQUIRE_SERVICES: a missing PostgreSQL or S3 server fails the tests instead of skipping them.
test: setup data
	DMVAE_REQUIRE_SERVICES=1 $(BIN)/python -m pytest -q

# The full fault battery (driver kills, a worker node killed, a corrupt checkpoint, an S3 outage); make
# test runs its short version (tests/test_faults.py).
faults: setup data
	$(BIN)/python bench/faults.py

# Training speed against this machine's matmul ceiling (eager, then the MNIST models compiled), and the
# throughput of the dmvae_mnist study on the local Ray.
bench: setup data
	$(BIN)/python bench/train_speed.py --cases mnist-authors mnist-mixed mnist-paired mnist-mvae fmnist-fp32 fmnist-auto
	$(BIN)/python bench/train_speed.py --cases mnist-authors mnist-mixed mnist-paired mnist-mvae --set train.compile=true
	$(BIN)/python bench/study_throughput.py

# Our DMVAE vs MultiVae's (PyPI `multivae`) on one paired MNIST epoch, in a venv of its own: MultiVae is no
# dependency of the project. Our package comes from this folder through PYTHONPATH.
PEER       := .venv-peer
PEER_STAMP := $(PEER)/.installed-multivae-1.0.3
PEER_ARGS  ?=

bench-peer: data $(PEER_STAMP)
	PYTHONPATH=$(CURDIR) $(PEER)/bin/python bench/peer_multivae.py $(PEER_ARGS)

$(PEER_STAMP):
	@test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1 \
		multivae==1.0.3 pyyaml
	@touch $@

# The main job: a small DMVAE study and the matching MVAE study at 0.2 % paired on the local Ray, both best
# configs exported, final models for seeds 1 2 3 (the searches tuned on seed 0), and the report. Model
# selection sees 1,000 validation labels. Sizes: DEMO_TRIALS, DEMO_EPOCHS, FINAL_EPOCHS.
DEMO_DIR     ?= runs/demo
DEMO_TRIALS  ?= 6
DEMO_EPOCHS  ?= 6
FINAL_EPOCHS ?= 15
DEMO_SIZE    := --set study.num_samples=$(DEMO_TRIALS) --set study.max_epochs=$(DEMO_EPOCHS) --set data.val_labels=1000
RUN          = echo '$(BIN)/dmvae $(1)' >> $(DEMO_DIR)/commands.txt && $(BIN)/dmvae $(1)

demo: setup data
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(call RUN,tune run tune/studies/dmvae_mnist.yaml --name dmvae --storage-path $(DEMO_DIR)/tune $(DEMO_SIZE))
	$(call RUN,tune run tune/studies/mvae_mnist.yaml --name mvae --storage-path $(DEMO_DIR)/tune $(DEMO_SIZE))
	$(call RUN,tune export $(DEMO_DIR)/tune/dmvae --out $(DEMO_DIR)/best-dmvae.yaml)
	$(call RUN,tune export $(DEMO_DIR)/tune/mvae --out $(DEMO_DIR)/best-mvae.yaml)
	$(call RUN,tune final $(DEMO_DIR)/best-dmvae.yaml --seeds 1 2 3 --out $(DEMO_DIR)/final/dmvae --cpus 0.66 --set train.epochs=$(FINAL_EPOCHS))
	$(call RUN,tune final $(DEMO_DIR)/best-mvae.yaml --seeds 1 2 3 --out $(DEMO_DIR)/final/mvae --cpus 0.66 --set train.epochs=$(FINAL_EPOCHS))
	$(call RUN,report $(DEMO_DIR)/tune/dmvae $(DEMO_DIR)/tune/mvae $(DEMO_DIR)/final --out report)
	@echo "report:      report/report.md"
	@echo "tensorboard: $(BIN)/tensorboard --logdir $(DEMO_DIR)/tune"

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(PEER) runs report
