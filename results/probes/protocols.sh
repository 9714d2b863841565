#!/bin/bash
# validation-only probes on unreported data seeds: the augmented DMVAE@1 config under eval.protocol=expected
cd "$(dirname "$0")/../.."
BASE=results/table1_mnist_mode/cells/DMVAE_disc@1/best.yaml
run() { .venv/bin/dmvae train --config $BASE --out runs/probes/$1 --set train.threads=1 --set eval.figures=false \
  --set eval.coherence=false --set eval.protocol=expected --set eval.samples=32 "${@:2}" > runs/probes/$1.log 2>&1; }
mkdir -p runs/probes
run exp-pd10-s20 --set seed=20 --set model.private_dim.image=10 &
run exp-pd10-s21 --set seed=21 --set model.private_dim.image=10 ; wait
run exp-pd10-s23 --set seed=23 --set model.private_dim.image=10 &
run exp-pd20-s23 --set seed=23 ; wait
run exp-pd10-s22 --set seed=22 --set model.private_dim.image=10 &
run exp-pd20-s20 --set seed=20 ; wait
