#!/bin/bash
# validation-only probe: does a class-balanced paired subset (data.balanced_pairs, 12 images per digit at
# 0.2 %) lift table1_mnist's DMVAE@0.2 best config? Data seeds 10-12 (never reported), 15 epochs (the study's
# budget), each seed with the random subset and with the balanced one
source "$(dirname "$0")/probe.sh"
BASE=results/table1_mnist/cells/DMVAE_disc@0.2/best.yaml
probe b02-s10-random $BASE --set seed=10 &
probe b02-s10-balanced $BASE --set seed=10 --set data.balanced_pairs=true ; wait
probe b02-s11-random $BASE --set seed=11 &
probe b02-s11-balanced $BASE --set seed=11 --set data.balanced_pairs=true ; wait
probe b02-s12-random $BASE --set seed=12 &
probe b02-s12-balanced $BASE --set seed=12 --set data.balanced_pairs=true ; wait
