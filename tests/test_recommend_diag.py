"""The recommend diagnostic (trainer.recommend_diag): its state-based heuristic and its oracle
reference for the largest item share (numpy only, no TensorFlow)."""
from __future__ import annotations

import numpy as np
import pytest

from trainer.recsim import RecSimConfig, RecSimEnv, make_catalogue


@pytest.fixture(scope="module")
def raw():
    return make_catalogue()


def test_diagnostic_heuristic_and_oracle_reference(raw):
    """The diagnostic scores states exactly like the evaluation's heuristic, and its oracle
    reference gives each random history to a population user who has consumed it."""
    from trainer.recommend_diag import (dominant_item_reference, heuristic_from_states,
                                        random_histories)
    from trainer.recommend_eval import heuristic_scores

    envs = [RecSimEnv(raw, RecSimConfig()) for _ in range(30)]
    for i, e in enumerate(envs):
        e.reset(seed=700 + i)
        e.step(np.flatnonzero(~e.blocked)[:5])
    got = heuristic_from_states(np.stack([e.state() for e in envs]), envs[0].cat)
    assert np.allclose(got, heuristic_scores(envs), atol=1e-5)
    assert random_histories(200, 3) == random_histories(200, 3)
    cat = envs[0].cat
    ref = dominant_item_reference(raw, RecSimConfig(), cat, {})
    for name in ("myopic_oracle", "patient_oracle"):
        assert 0.0 < ref[name]["max_item_share"] <= 1.0 and ref[name]["coverage"] > 0.3
