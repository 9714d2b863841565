#!/bin/bash
# validation-only probe: table1_mnist_restarts16's 0.2 % finals were still rising at epoch 50 (best epochs 46-49,
# about +0.01 validation per 10 epochs at the end), so does a larger constant learning rate get further within
# the finals' 50 epochs? table1_mnist's DMVAE@0.2 best config with table1_mnist_restarts's 10 degrees of rotation,
# one initialisation, the finals' 50 epochs, on tuning data seeds 10 and 11 (never reported), train.lr 1e-3 (its
# own) against 2e-3. Rule fixed before it ran: a 0.2 % table with lr 2e-3 is written only if it beats 1e-3 on
# both seeds and by more than 0.01 on their mean.
source "$(dirname "$0")/probe.sh"
BASE=results/table1_mnist/cells/DMVAE_disc@0.2/best.yaml
probe lr02-s10-lr1e-3 $BASE --set seed=10 --set train.epochs=50 --set train.augment_rotate=10 &
probe lr02-s10-lr2e-3 $BASE --set seed=10 --set train.epochs=50 --set train.augment_rotate=10 --set train.lr=0.002 ; wait
probe lr02-s11-lr1e-3 $BASE --set seed=11 --set train.epochs=50 --set train.augment_rotate=10 &
probe lr02-s11-lr2e-3 $BASE --set seed=11 --set train.epochs=50 --set train.augment_rotate=10 --set train.lr=0.002 ; wait
