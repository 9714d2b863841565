"""analysis/: read what studies (tune/) and final runs (dmvae train) wrote, compare with the paper, report.

Nothing here needs a live Ray: experiments are read from their folders (Ray's result files, Optuna's
storage), runs from config.yaml / final.json / metrics.jsonl.
"""
