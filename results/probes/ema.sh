#!/bin/bash
# validation-only probe: does an average of the weights (train.ema) lift table1_mnist's DMVAE best configs
# at 0.2 % and 1 %? Their tuning data seed (10, never reported), 15 epochs (the studies' budget)
source "$(dirname "$0")/probe.sh"
CELLS=results/table1_mnist/cells
probe e02-base $CELLS/DMVAE_disc@0.2/best.yaml &
probe e02-ema0.999 $CELLS/DMVAE_disc@0.2/best.yaml --set train.ema=0.999 ; wait
probe e01-base $CELLS/DMVAE_disc@1/best.yaml &
probe e01-ema0.999 $CELLS/DMVAE_disc@1/best.yaml --set train.ema=0.999 ; wait
