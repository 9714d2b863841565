"""The smallest valid study file, shared by the study-file tests and the Ray tests."""


def minimal(**changes) -> dict:
    values = {
        "name": "t",
        "base": "configs/mnist_dmvae.yaml",
        "space": {"train.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
    }
    return values | changes
