"""The smallest valid study file, shared by the study-file tests and the Ray tests, and a reader of an Optuna
study's trials."""


def minimal(**changes) -> dict:
    values = {
        "name": "t",
        "base": "configs/mnist_dmvae.yaml",
        "space": {"train.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
    }
    return values | changes


def optuna_trials(url: str, study_name: str):
    import optuna

    from tune.search import close_storage, open_storage

    storage = open_storage(url)  # polled every 0.5 s: each poll gives its connections back
    try:
        return optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    finally:
        close_storage(storage)
