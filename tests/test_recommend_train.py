"""The recommend quick profile trained (myopic and gamma runs, two rollout rounds), exported,
evaluated and served end to end (marked tf/slow)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import runtime
from runtime.recommend_features import featurise, item_features, parse_catalogue


# ------------------------------------------------------------------------------ end to end (tf)
@pytest.mark.tf
@pytest.mark.slow
def test_quick_profile_trains_exports_and_serves(tmp_path):
    pytest.importorskip("tensorflow")
    from trainer import recommend as rec

    cfg = dataclasses.replace(rec.PROFILES["quick"], eval_sessions=20, probe_histories=20,
                              focused_per_topic=1)
    work, out = tmp_path / "work", tmp_path / "out"
    rec.train(cfg, work)
    assert (work / "learning_curve.png").stat().st_size > 1000
    rec.export(cfg, work, out)
    entry = json.loads((out / "manifest.json").read_text())["models"]["recommend"]
    assert set(entry["files"]) == {"q", "q_int8", "catalogue"}
    assert entry["files"]["q"]["parity_max_abs_diff"] < 1e-3
    assert [i["name"] for i in entry["files"]["q"]["inputs"]] == ["state", "items"]
    shipped = json.loads((out / entry["files"]["catalogue"]["file"]).read_text())
    assert "appeal" not in shipped and len(shipped["items"]) == cfg.n_items
    # every weight comes back from the checkpoint (two restores agree, a fresh network differs)
    q = rec.load_q(cfg, work, "dqn")
    x = np.random.default_rng(0).random((3, q.inputs[0].shape[-1])).astype(np.float32)
    np.testing.assert_array_equal(q(x).numpy(), rec.load_q(cfg, work, "dqn")(x).numpy())
    assert np.abs(q(x).numpy() - rec.make_q_network(cfg, "fresh")(x).numpy()).max() > 1e-3
    # the runtime's slate is the top-k of the shipped score: the myopic (gamma 0) network's A
    # plus the last rollout round's linear term, computed in the exported graph
    from trainer.recommend_rollout import linear_term, load_fit

    assert rec.shipped_run(cfg) == "rollout"
    cat = parse_catalogue(shipped)
    hist = [10, 20, 30]
    state = featurise(hist, cat)[None]
    obs = np.concatenate([np.zeros((1, cfg.n_items), np.float32), state], 1)
    a = rec.load_q(cfg, work, "myopic")(obs).numpy()
    coef = load_fit(work, cfg.rollout_rounds)["coef"]
    assert np.abs(coef).max() > 0
    qv = (a + linear_term(a, state, item_features(cat), coef, cfg.n_topics, cfg.embedding_dim))[0]
    qv[hist] = -np.inf
    slate = runtime.generate("recommend", history=hist, k=5, seed=0, models_dir=out)
    assert list(slate) == [int(i) for i in np.argsort(-qv)[:5]]
    metrics = rec.evaluate(cfg, work, out)
    json.dumps(metrics)
    p = metrics["policies"]
    assert {"dqn", "dqn_int8", "random", "most_popular", "history_heuristic", "myopic_oracle",
            "patient_oracle", "myopic_learned", "dqn_gamma", "rollout_round1"} <= set(p)
    assert set(metrics["training"]["rollout"]) == {"round1", "round2"}
    paired = p["dqn"]["paired_minus"]["history_heuristic"]
    assert np.isclose(paired["diff"], p["dqn"]["mean_return"] - p["history_heuristic"]["mean_return"],
                      atol=2e-3) and paired["se"] > 0
    assert "history_heuristic" in metrics["new_catalogue"]["dqn_paired_minus"]
    assert p["random"]["coverage"] > 0.9 and p["most_popular"]["coverage"] < 0.5
    assert {"focused_topic_0", "mixed", "cold_start"} <= set(p["dqn"]["segments"])
    assert metrics["probes"]["skipped_items_back_in_next_slate"] == 0
    assert p["myopic_oracle"]["mean_return"] > p["random"]["mean_return"]
