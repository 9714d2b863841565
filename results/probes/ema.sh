#!/bin/bash
# validation-only probe: does an average of the weights (train.ema) lift table1_mnist's DMVAE best configs
# at 0.2 % and 1 %? Their tuning data seed (10, never reported), 15 epochs (the studies' budget)
cd "$(dirname "$0")/../.."
run() { [ -f runs/probes/$1/final.json ] || .venv/bin/dmvae train --config results/table1_mnist/cells/$2/best.yaml \
  --out runs/probes/$1 --set train.threads=1 --set eval.figures=false --set eval.coherence=false "${@:3}" \
  > runs/probes/$1.log 2>&1; }
mkdir -p runs/probes
run e02-base DMVAE_disc@0.2 &
run e02-ema0.999 DMVAE_disc@0.2 --set train.ema=0.999 ; wait
run e01-base DMVAE_disc@1 &
run e01-ema0.999 DMVAE_disc@1 --set train.ema=0.999 ; wait
