#!/bin/bash
# validation-only probe: do the 0.2 % studies' winners keep their edge on data seeds they were not tuned on?
# table1_mnist_wide's best (0.859 on seed 10) and table1_mnist_balanced's best (0.895 on seed 10, balanced
# pairs) against table1_mnist's best (lambda 500), on data seeds 11 and 12 (never reported), 15 epochs
source "$(dirname "$0")/probe.sh"
BASE=results/table1_mnist/cells/DMVAE_disc@0.2/best.yaml
WIDE=results/table1_mnist_wide/cells/DMVAE_disc@0.2/best.yaml
BAL=results/table1_mnist_balanced/cells/DMVAE_disc@0.2/best.yaml
probe t02-s11-base $BASE --set seed=11 &
probe t02-s11-wide $WIDE --set seed=11 ; wait
probe t02-s12-base $BASE --set seed=12 &
probe t02-s12-wide $WIDE --set seed=12 ; wait
probe t02-s11-balanced-base $BASE --set seed=11 --set data.balanced_pairs=true &
probe t02-s11-balanced-best $BAL --set seed=11 ; wait
probe t02-s12-balanced-base $BASE --set seed=12 --set data.balanced_pairs=true &
probe t02-s12-balanced-best $BAL --set seed=12 ; wait
