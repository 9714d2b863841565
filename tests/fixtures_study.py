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
    from tune.search import stored_trials

    return stored_trials(url, study_name)  # polled every 0.5 s: each poll gives its connections back
