#!/bin/bash
# validation-only probe: does a cosine learning rate (train.lr_decay) stop table1_mnist's DMVAE@1 best config
# from wandering after its early peak? Its tuning data seed (10, never reported), 50 epochs as the finals
# (one initialisation: no restarts), with and without the decay
cd "$(dirname "$0")/../.."
run() { [ -f runs/probes/$1/final.json ] || .venv/bin/dmvae train --config results/table1_mnist/cells/$2/best.yaml \
  --out runs/probes/$1 --set train.threads=1 --set eval.figures=false --set eval.coherence=false \
  --set train.epochs=50 "${@:3}" > runs/probes/$1.log 2>&1; }
mkdir -p runs/probes
run l01-base DMVAE_disc@1 &
run l01-cosine DMVAE_disc@1 --set train.lr_decay=cosine ; wait
