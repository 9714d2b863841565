#!/bin/bash
# validation-only probe: the 0.2 % finals were still creeping up at epoch 50, so does more training per epoch
# lift table1_mnist's DMVAE@0.2 best config at the study's budget (15 epochs)? Batch 50 (twice the steps; the
# paper's batch at 0.1 and 0.5 %) and a wider hidden layer (512 against Table 3's 256), on its tuning data
# seed (10, never reported); its 15-epoch base is k02-base (0.853) in knobs_0p2.csv
source "$(dirname "$0")/probe.sh"
BASE=results/table1_mnist/cells/DMVAE_disc@0.2/best.yaml
probe s02-batch50 $BASE --set train.batch_size=50 &
probe s02-hidden512 $BASE --set model.hidden_dim=512 ; wait
