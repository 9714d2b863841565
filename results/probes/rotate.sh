#!/bin/bash
# validation-only probe: does a random rotation of the training images (train.augment_rotate, on top of each
# config's own shift) lift table1_mnist's DMVAE best configs at 1 %, 0.5 % and 0.2 %? Their tuning data seed
# (10, never reported), 15 epochs (the studies' budget). r01-base repeats e01-base (ema.csv) with the
# refactored augmentation code, so it must read 0.950 again.
source "$(dirname "$0")/probe.sh"
CELLS=results/table1_mnist/cells
probe r01-base $CELLS/DMVAE_disc@1/best.yaml &
probe r01-rot10 $CELLS/DMVAE_disc@1/best.yaml --set train.augment_rotate=10 ; wait
probe r01-rot20 $CELLS/DMVAE_disc@1/best.yaml --set train.augment_rotate=20 &
probe r05-base $CELLS/DMVAE_disc@0.5/best.yaml ; wait
probe r05-rot10 $CELLS/DMVAE_disc@0.5/best.yaml --set train.augment_rotate=10 &
probe r02-rot10 $CELLS/DMVAE_disc@0.2/best.yaml --set train.augment_rotate=10 ; wait
