#!/bin/bash
# validation-only one-knob probes around table1_mnist's DMVAE@0.2 best config, on its tuning data seed (10,
# never reported), 15 epochs (the study's budget): which knob the next 0.2 % study should widen
cd "$(dirname "$0")/../.."
BASE=results/table1_mnist/cells/DMVAE_disc@0.2/best.yaml
run() { [ -f runs/probes/$1/final.json ] || .venv/bin/dmvae train --config $BASE --out runs/probes/$1 \
  --set train.threads=1 --set eval.figures=false --set eval.coherence=false "${@:2}" > runs/probes/$1.log 2>&1; }
mkdir -p runs/probes
run k02-base &
run k02-pd2 --set model.private_dim.image=2 ; wait
run k02-pd8 --set model.private_dim.image=8 &
run k02-lambda2000 --set objective.recon_weight.label=2000 ; wait
run k02-mi0.3 --set objective.mi_weight=0.3 &
run k02-dw3 --set objective.dw_weight=3 ; wait
run k02-T1 --set model.temperature=1.0 &
run k02-T0.4 --set model.temperature=0.4 ; wait
run k02-unpaired0.5 --set objective.unpaired_weight=0.5 &
run k02-shift0 --set train.augment_shift=0 ; wait
