#!/bin/bash
# validation-only probes on unreported data seeds: the augmented DMVAE@1 config under eval.protocol=expected
source "$(dirname "$0")/probe.sh"
BASE=results/table1_mnist_mode/cells/DMVAE_disc@1/best.yaml
EXPECTED=(--set eval.protocol=expected --set eval.samples=32)
probe exp-pd10-s20 $BASE "${EXPECTED[@]}" --set seed=20 --set model.private_dim.image=10 &
probe exp-pd10-s21 $BASE "${EXPECTED[@]}" --set seed=21 --set model.private_dim.image=10 ; wait
probe exp-pd10-s23 $BASE "${EXPECTED[@]}" --set seed=23 --set model.private_dim.image=10 &
probe exp-pd20-s23 $BASE "${EXPECTED[@]}" --set seed=23 ; wait
probe exp-pd10-s22 $BASE "${EXPECTED[@]}" --set seed=22 --set model.private_dim.image=10 &
probe exp-pd20-s20 $BASE "${EXPECTED[@]}" --set seed=20 ; wait
