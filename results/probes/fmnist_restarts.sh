#!/bin/bash
# validation-only probes for Fashion-MNIST at 1 % paired, the cell furthest from the paper (0.783 against
# 0.834 over final seeds 0-2). Its weakest final (seed 1) and 0.2 % seed 1 gave Coat and Shirt to Pullover,
# as the merges of fmnist_merges.csv do; on MNIST, initialisations kept on validation accuracy
# (train.restarts) lifted 0.2 % from 0.877 to 0.902. So: table1_fmnist's DMVAE_disc@1 best config with 4
# initialisations of 1 epoch each (3 epochs more than the base: 17 + 3 would keep a final at 20 epochs of
# training), on the tuning data seeds 10 and 11 (never reported), 8 epochs (the studies' budget).
# Seed 10's base is the study's trial of the same config (0.775 at 8 epochs; probes repeat study trials
# exactly, see fmnist_recipe.csv); seed 11's base runs here.
# Rule fixed before these ran: restarts go into the 1 % recipe only if their mean over seeds 10-11 beats the
# base's mean by more than 0.01 (one seed's noise is about 0.02).
source "$(dirname "$0")/probe.sh"
B1=results/table1_fmnist/cells/DMVAE_disc@1/best.yaml
probe f01r-s11-r4 $B1 --set seed=11 --set train.restarts=4 --set train.restart_epochs=1 &
probe f01r-s11-base $B1 --set seed=11 ; wait
probe f01r-s10-r4 $B1 --set seed=10 --set train.restarts=4 --set train.restart_epochs=1 --set train.threads=2
# Outcome (session 24): seed 10 with restarts 0.808 (it kept its own initialisation; the study's trial without
# restarts: 0.775; this probe ran on 2 threads, the trial on 1, so the two runs differ after the first epoch);
# seed 11 with restarts 0.802, without 0.106 (chance: the config's own initialisation never learns). Means
# 0.805 against 0.441: the rule passes, by the collapse on seed 11. 4 of the 8 one-epoch initialisations
# (2 per seed) stayed at chance (0.084-0.106). tune/tables/table1_fmnist_restarts.yaml carries it to the finals.
