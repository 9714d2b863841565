#!/bin/bash
# validation-only one-knob probes around table1_mnist's DMVAE@0.2 best config, on its tuning data seed (10,
# never reported), 15 epochs (the study's budget): which knob the next 0.2 % study should widen
source "$(dirname "$0")/probe.sh"
BASE=results/table1_mnist/cells/DMVAE_disc@0.2/best.yaml
probe k02-base $BASE &
probe k02-pd2 $BASE --set model.private_dim.image=2 ; wait
probe k02-pd8 $BASE --set model.private_dim.image=8 &
probe k02-lambda2000 $BASE --set objective.recon_weight.label=2000 ; wait
probe k02-mi0.3 $BASE --set objective.mi_weight=0.3 &
probe k02-dw3 $BASE --set objective.dw_weight=3 ; wait
probe k02-T1 $BASE --set model.temperature=1.0 &
probe k02-T0.4 $BASE --set model.temperature=0.4 ; wait
probe k02-unpaired0.5 $BASE --set objective.unpaired_weight=0.5 &
probe k02-shift0 $BASE --set train.augment_shift=0 ; wait
