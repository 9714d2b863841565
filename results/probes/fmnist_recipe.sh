#!/bin/bash
# validation-only probes for the Fashion-MNIST cells short of the paper (seed 0: 0.2 % by 0.017, 1 % below
# it too): table1_fmnist's DMVAE_disc best configs on the tuning data seeds 10 and 11 (never reported),
# 8 epochs (the studies' budget), one knob each:
#   at 0.2 %, model.batch_norm (BatchNorm2d in the convolutional networks, as in the authors' code);
#   at 1 %, augmentation: train.augment_flip plus train.augment_shift 2 (on MNIST a 2-pixel shift lifted 1 %
#   from 0.904 to 0.950; see augment_shift.csv), where the final overfits its 600 pairs from epoch 5.
# Seed 11's 0.2 % pair runs before seed 10's base runs (batch norm is the knob that gained on seed 10).
# Seed 10's base runs repeat the studies' trials of the same configs (0.686 and 0.775 at 8 epochs).
# Rule fixed before these ran: a knob goes into that fraction's recipe only if its mean over seeds 10-11
# beats the base's mean.
# Outcome (session 22; the last two pairs not run):
#   0.2 %, batch norm: seed 10 0.716 (the study's trial without it: 0.686), seed 11 0.664 against 0.694 without
#   it: mean 0.690 with it, 0.690 without (seed 10's base taken from the study's trial, not rerun here). A tie,
#   so batch norm does not pass the rule and table1_fmnist's 0.2 % recipe stays as it is.
#   1 %, augmentation: seed 10 0.736 against the study's 0.775 without it; seed 11 not run.
source "$(dirname "$0")/probe.sh"
B02=results/table1_fmnist/cells/DMVAE_disc@0.2/best.yaml
B1=results/table1_fmnist/cells/DMVAE_disc@1/best.yaml
probe f02-s10-bn $B02 --set seed=10 --set model.batch_norm=true &
probe f01-s10-aug $B1 --set seed=10 --set train.augment_flip=true --set train.augment_shift=2 ; wait
probe f02-s11-bn $B02 --set seed=11 --set model.batch_norm=true &
probe f02-s11-base $B02 --set seed=11 ; wait
probe f02-s10-base $B02 --set seed=10 &
probe f01-s10-base $B1 --set seed=10 ; wait
probe f01-s11-aug $B1 --set seed=11 --set train.augment_flip=true --set train.augment_shift=2 &
probe f01-s11-base $B1 --set seed=11 ; wait
