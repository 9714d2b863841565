#!/bin/bash
# validation-only probe: the 0.5 % finals of table1_mnist_restarts peak early (best epoch 12-14 on two of three
# seeds) and then wander. Does a cosine learning rate (train.lr_decay) help there? table1_mnist's DMVAE@0.5 best
# config with table1_mnist_rotate's 10 degrees, tuning data seed 10 (never reported), the finals' 50 epochs,
# one initialisation, with and without the decay. Rule fixed before it ran: the decay goes on to seeds 11 and
# 12 only if it beats the constant rate by more than 0.01 here (one seed's noise is about 0.02).
source "$(dirname "$0")/probe.sh"
BASE=results/table1_mnist/cells/DMVAE_disc@0.5/best.yaml
probe l05-base $BASE --set train.epochs=50 --set train.augment_rotate=10 &
probe l05-cosine $BASE --set train.epochs=50 --set train.augment_rotate=10 --set train.lr_decay=cosine ; wait
