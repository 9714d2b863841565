"""tune: Ray Tune + Optuna hyperparameter studies around the dmvae trainer.

A study is one YAML file (tune/studies/*.yaml); `dmvae tune run|resume|status|export` drives it. Importing
this package does not import Ray (the dmvae CLI loads tune.cli on every start).
"""
