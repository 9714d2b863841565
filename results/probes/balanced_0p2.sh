#!/bin/bash
# validation-only probe: does a class-balanced paired subset (data.balanced_pairs, 12 images per digit at
# 0.2 %) lift table1_mnist's DMVAE@0.2 best config? Data seeds 10-12 (never reported), 15 epochs (the study's
# budget), each seed with the random subset and with the balanced one
cd "$(dirname "$0")/../.."
BASE=results/table1_mnist/cells/DMVAE_disc@0.2/best.yaml
run() { [ -f runs/probes/$1/final.json ] || .venv/bin/dmvae train --config $BASE --out runs/probes/$1 \
  --set train.threads=1 --set eval.figures=false --set eval.coherence=false "${@:2}" > runs/probes/$1.log 2>&1; }
mkdir -p runs/probes
run b02-s10-random --set seed=10 &
run b02-s10-balanced --set seed=10 --set data.balanced_pairs=true ; wait
run b02-s11-random --set seed=11 &
run b02-s11-balanced --set seed=11 --set data.balanced_pairs=true ; wait
run b02-s12-random --set seed=12 &
run b02-s12-balanced --set seed=12 --set data.balanced_pairs=true ; wait
