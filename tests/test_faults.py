"""The short fault battery of `make test`: the driver SIGKILLed twice at seeded random moments of a study
(Optuna on a real PostgreSQL), resumed each time; no trial lost, none counted twice. The full battery
(10 kills, a worker node killed, a corrupt checkpoint, an S3 outage) is `make faults` (bench/faults.py)."""

from __future__ import annotations

import sys

from services import Postgres

from tune.study import REPO

sys.path.insert(0, str(REPO / "bench"))

from faults import driver_kills  # noqa: E402


def test_driver_killed_twice_at_random_moments_loses_and_doubles_nothing(ray_session, tmp_path):
    import ray

    postgres = Postgres()
    try:
        outcome = driver_kills(tmp_path, ray.get_runtime_context().gcs_address, postgres.url, kills=2, seed=1)
    finally:
        postgres.stop()
    assert outcome.injected == 2, outcome  # both kills landed mid-study
    assert (outcome.lost, outcome.doubled) == (0, 0), outcome
    assert outcome.survived == 2, outcome
