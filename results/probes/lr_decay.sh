#!/bin/bash
# validation-only probe: does a cosine learning rate (train.lr_decay) stop table1_mnist's DMVAE@1 best config
# from wandering after its early peak? Its tuning data seed (10, never reported), 50 epochs as the finals
# (one initialisation: no restarts), with and without the decay
source "$(dirname "$0")/probe.sh"
BASE=results/table1_mnist/cells/DMVAE_disc@1/best.yaml
probe l01-base $BASE --set train.epochs=50 &
probe l01-cosine $BASE --set train.epochs=50 --set train.lr_decay=cosine ; wait
