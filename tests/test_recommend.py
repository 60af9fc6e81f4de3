"""Tests for generate("recommend"): the simulator's dynamics (numpy only), the runtime on the
shipped models, and a quick DQN trained, exported, evaluated and served end to end (marked tf)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import runtime
from runtime.recommend import Catalogue, featurise, obs_dim
from trainer.recsim import RecSimConfig, RecSimEnv, make_catalogue


@pytest.fixture(scope="module")
def raw():
    return make_catalogue()


@pytest.fixture()
def env(raw):
    return RecSimEnv(raw, RecSimConfig())


# ------------------------------------------------------------------------------ simulator
def test_catalogue_is_seeded_and_large_enough(raw):
    assert raw == make_catalogue() and raw != make_catalogue(seed=1)
    assert raw["n_items"] >= 200 and len(raw["items"]) == raw["n_items"]
    topics = np.array([it["topics"] for it in raw["items"]])
    np.testing.assert_allclose(topics.sum(1), 1.0, atol=1e-3)
    assert len({it["topic"] for it in raw["items"]}) == raw["n_topics"]
    q = np.array([it["quality"] for it in raw["items"]])
    assert 0 <= q.min() and q.max() <= 1 and q.std() > 0.1
    # clickbait: hidden appeal is anti-correlated with quality
    assert np.corrcoef(q, raw["appeal"])[0, 1] < -0.5


def test_reset_is_deterministic_by_seed(env):
    def rollout(seed):
        env.reset(seed=seed)
        out = []
        for a in range(60, 90):
            if env.consumed[a]:
                continue
            _, r, term, trunc, info = env.step(a)
            out.append((r, info["clicked"]))
            if term or trunc:
                break
        return out, env.interest.copy()
    a, ua = rollout(5)
    b, ub = rollout(5)
    c, uc = rollout(6)
    assert a == b and np.array_equal(ua, ub)
    assert a != c or not np.array_equal(ua, uc)


def test_step_api_and_observation_is_the_runtime_featurisation(env):
    obs, info = env.reset(seed=0)
    assert obs.shape == (env.obs_dim,) and obs.dtype == np.float32 and not obs.any()
    assert info["budget"] == env.cfg.budget0
    rng = np.random.default_rng(0)
    for _ in range(25):
        slate = rng.choice(np.flatnonzero(~env.consumed), 5, replace=False)
        obs, r, term, trunc, info = env.step(slate)
        assert isinstance(r, float) and r >= 0.0
        assert (r > 0) == (info["clicked"] is not None)
        np.testing.assert_array_equal(obs, featurise(env.history, env.cat))
        if term or trunc:
            break
    assert env.history and obs[env.history].min() == 1.0


def test_choice_model_probabilities(env):
    env.reset(seed=1)
    p = env.choice_probs(np.array([0, 1, 2, 3, 4]))
    assert p.shape == (6,) and abs(p.sum() - 1) < 1e-12 and p.min() > 0   # incl. no click
    best = int(np.argmax(env.scores(np.arange(env.n_actions))))
    worst = int(np.argmin(env.scores(np.arange(env.n_actions))))
    assert env.choice_probs(np.array([best]))[0] > env.choice_probs(np.array([worst]))[0]
    # position bias: the same item is chosen more often in the first slot than in the last
    slate = np.array([10, 11, 12, 13, 14])
    assert env.choice_probs(slate)[0] > env.choice_probs(slate[::-1])[4]
    np.testing.assert_allclose(env.choice_probs(slate)[-1], env.choice_probs(slate[::-1])[-1]) \
        if env.cfg.position_bias == 0 else None
    # empirical click rate of a one-item slate matches the logit
    env.reset(seed=2)
    p_click = env.choice_probs(np.array([best]))[0]
    clicks = 0
    for s in range(400):
        env.reset(seed=2)
        env._rng = np.random.default_rng(100 + s)
        clicks += env.step(best)[4]["clicked"] is not None
    assert abs(clicks / 400 - p_click) < 0.08


def test_budget_refund_rewards_quality_and_sessions_end(env):
    q = env.cat.quality
    good, bad = int(np.argmax(q)), int(np.argmin(q))
    spent = {}
    for item in (good, bad):
        env.reset(seed=3)
        env._score[:] = 50.0                                      # force the click
        _, r, *_ = env.step(item)
        spent[item] = (env.cfg.budget0 - env.budget) / r
    assert spent[good] < spent[bad]                               # good content refunds time
    # no clicks: the budget drains by no_click_cost per slate -> terminated
    env.reset(seed=4)
    env._score[:] = -50.0
    steps = 0
    while True:
        _, r, term, trunc, _ = env.step(steps)
        steps += 1
        assert r == 0.0
        if term or trunc:
            break
    assert term and steps == int(np.ceil(env.cfg.budget0 / env.cfg.no_click_cost))


def test_truncation_after_max_steps(raw):
    env = RecSimEnv(raw, RecSimConfig(max_steps=3, budget0=1e9))
    env.reset(seed=0)
    flags = [env.step(i)[3] for i in range(3)]
    assert flags == [False, False, True]


def test_interest_drifts_toward_good_and_away_from_bad_content(env):
    q = env.cat.quality
    for item, sign in ((int(np.argmax(q)), 1), (int(np.argmin(q)), -1)):
        env.reset(seed=7)
        topic = env.raw["items"][item]["topic"]
        before = env.interest[topic]
        env._score[:] = 50.0
        env.step(item)
        assert sign * (env.interest[topic] - before) > 0
        assert np.all(np.abs(env.interest) <= 1.0)


def test_long_term_value_differs_from_myopic(raw):
    """Honest headroom: a quality-aware heuristic beats the oracle myopic policy on return."""
    def run(score_fn, n=60):
        env, total = RecSimEnv(raw, RecSimConfig()), 0.0
        for s in range(n):
            env.reset(seed=500 + s)
            while True:
                v = score_fn(env).copy()
                v[env.consumed] = -np.inf
                _, r, term, trunc, _ = env.step(np.argsort(-v)[:5])
                total += r
                if term or trunc:
                    break
        return total / n
    myopic = run(lambda e: e.myopic_values())
    patient = run(lambda e: e.myopic_values() * (1 + 4 * (e.cat.quality - 0.5)))
    assert patient > 1.1 * myopic


@pytest.mark.parametrize("slate, what", [([200], "unknown"), ([-1], "unknown"), ([3, 3], "duplicate"),
                                         ([], "non-empty"), ([1.5], "non-empty")])
def test_bad_slates_raise(env, slate, what):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=what):
        env.step(slate)


def test_consumed_items_cannot_be_recommended_again(env):
    env.reset(seed=0)
    env._score[:] = 50.0
    env.step(7)
    with pytest.raises(ValueError, match="already consumed"):
        env.step([1, 7])


def test_featurise_layout(raw):
    cat = Catalogue.from_json(raw)
    n, t = cat.n_items, cat.n_topics
    assert obs_dim(cat) == n + 2 * t + 4
    assert not featurise([], cat).any()
    h = [5, 9, 2, 11]
    x = featurise(h, cat)
    assert x.dtype == np.float32 and sorted(np.flatnonzero(x[:n])) == sorted(h)
    np.testing.assert_allclose(x[n:n + t], cat.topics[[9, 2, 11]].mean(0), atol=1e-6)
    w = 0.8 ** np.array([3, 2, 1, 0])                                  # newest weighs 1
    np.testing.assert_allclose(x[n + t:n + 2 * t], w @ cat.topics[h] / w.sum(), atol=1e-6)
    assert x[n + 2 * t] == pytest.approx(cat.quality[[9, 2, 11]].mean(), abs=1e-6)
    assert x[n + 2 * t + 1] == pytest.approx(4 / 20)


# ------------------------------------------------------------------------------ runtime (shipped)
@pytest.fixture(scope="module")
def models(exported_dir):
    if "recommend" not in runtime.available(exported_dir):
        pytest.skip("no 'recommend' model in exported/ yet (python -m trainer train recommend)")
    return exported_dir


def n_items(models_dir):
    from runtime import registry
    return len(registry.load_json("recommend", "catalogue", models_dir)["items"])


def test_slate_is_k_distinct_new_ids(models):
    n = n_items(models)
    assert n >= 200
    for history in ([], [0], [5, 17, 42, 99], list(range(0, n - 10))):
        out = runtime.generate("recommend", history=history, k=5, seed=0, models_dir=models)
        assert isinstance(out, list) and len(out) == 5 and len(set(out)) == 5
        assert all(type(i) is int and 0 <= i < n for i in out)
        assert not set(out) & set(history)
    assert len(runtime.generate("recommend", seed=0, models_dir=models)) == 5     # defaults
    last = runtime.generate("recommend", history=list(range(n - 3)), k=3, seed=0, models_dir=models)
    assert sorted(last) == [n - 3, n - 2, n - 1]                      # the only items left


def test_deterministic_and_history_dependent(models):
    a = runtime.generate("recommend", history=[3, 8], k=10, seed=1, models_dir=models)
    assert a == runtime.generate("recommend", history=[3, 8], k=10, seed=1, models_dir=models)
    # greedy slate: the seed only breaks exact ties
    assert a == runtime.generate("recommend", history=[3, 8], k=10, seed=2, models_dir=models)
    cold = runtime.generate("recommend", history=[], k=10, seed=1, models_dir=models)
    assert cold != a or set(cold) & {3, 8}
    # exploration: Gumbel-top-k differs across seeds, stays valid
    e1 = runtime.generate("recommend", history=[3, 8], k=10, explore=1.0, seed=1, models_dir=models)
    e2 = runtime.generate("recommend", history=[3, 8], k=10, explore=1.0, seed=2, models_dir=models)
    assert e1 != e2 and len(set(e1)) == 10 and not {3, 8} & set(e1)


def test_int8_precision(models):
    a = runtime.generate("recommend", history=[1, 2, 3], k=5, seed=0, models_dir=models)
    b = runtime.generate("recommend", history=[1, 2, 3], k=5, seed=0, precision="int8",
                         models_dir=models)
    assert len(set(b)) == 5 and len(set(a) & set(b)) >= 3


def test_unknown_and_duplicate_ids_are_named(models):
    n = n_items(models)
    with pytest.raises(ValueError, match=rf"unknown item ids \[{n}, 99999\]"):
        runtime.generate("recommend", history=[1, n, 99999], models_dir=models)
    with pytest.raises(ValueError, match=r"unknown item ids \[-1\]"):
        runtime.generate("recommend", history=[-1], models_dir=models)
    with pytest.raises(ValueError, match=r"duplicate item ids \[4\]"):
        runtime.generate("recommend", history=[4, 5, 4], models_dir=models)


@pytest.mark.parametrize("opts, name", [
    ({"history": ["3"]}, "history"), ({"history": [2.0]}, "history"), ({"history": [True]}, "history"),
    ({"history": [None]}, "history"), ({"history": "1,2"}, "history"), ({"history": 5}, "history"),
    ({"history": list(range(100_000))}, "history"),
    ({"k": 0}, "k"), ({"k": 51}, "k"), ({"k": 2.0}, "k"), ({"k": "5"}, "k"), ({"k": True}, "k"),
    ({"explore": -0.1}, "explore"), ({"explore": float("nan")}, "explore"), ({"explore": "x"}, "explore"),
    ({"temperature": 1.0}, "temperature"),
])
def test_bad_options_raise_value_error(models, opts, name):
    with pytest.raises(ValueError) as info:
        runtime.generate("recommend", seed=0, models_dir=models, **opts)
    assert name in str(info.value)


def test_k_larger_than_items_left(models):
    n = n_items(models)
    with pytest.raises(ValueError, match="k"):
        runtime.generate("recommend", history=list(range(n - 2)), k=3, models_dir=models)


def test_shipped_metrics_meet_targets(models):
    m = runtime.info("recommend", models_dir=models)["metrics"]
    p = m["policies"]
    assert m["sessions"] >= 1000
    for name in ("dqn", "random", "most_popular", "myopic_greedy_oracle"):
        assert {"mean_return", "ctr", "coverage"} <= set(p[name])
    assert p["dqn"]["mean_return"] >= 1.5 * p["random"]["mean_return"]
    assert m["dqn_return_vs_myopic_learned"] >= 1.05


# ------------------------------------------------------------------------------ end to end (tf)
@pytest.mark.tf
@pytest.mark.slow
def test_quick_profile_trains_exports_and_serves(tmp_path):
    pytest.importorskip("tensorflow")
    from trainer import recommend as rec

    cfg = rec.PROFILES["quick"]
    work, out = tmp_path / "work", tmp_path / "out"
    rec.train(cfg, work)
    assert (work / "learning_curve.png").stat().st_size > 1000
    assert (work / "dqn" / "replay.npz").exists()
    rec.export(cfg, work, out)
    entry = json.loads((out / "manifest.json").read_text())["models"]["recommend"]
    assert set(entry["files"]) == {"q", "q_int8", "catalogue"}
    assert entry["files"]["q"]["parity_max_abs_diff"] < 1e-3
    assert entry["files"]["q"]["inputs"][0]["name"] == "obs"
    shipped = json.loads((out / entry["files"]["catalogue"]["file"]).read_text())
    assert "appeal" not in shipped and len(shipped["items"]) == cfg.n_items
    # the runtime's slate is the top-k of the trained network's Q-values on featurise(history)
    q = rec._load_q(cfg, work, "dqn")
    hist = [10, 20, 30]
    qv = q(featurise(hist, Catalogue.from_json(shipped))[None]).numpy()[0]
    qv[hist] = -np.inf
    slate = runtime.generate("recommend", history=hist, k=5, seed=0, models_dir=out)
    assert slate == [int(i) for i in np.argsort(-qv)[:5]]
    metrics = rec.evaluate(cfg, work, out)
    assert set(metrics["policies"]) >= {"dqn", "dqn_int8", "random", "most_popular",
                                        "myopic_greedy_oracle"}
    json.dumps(metrics)                                           # JSON-serialisable
    assert metrics["policies"]["random"]["coverage"] > 0.9
    assert metrics["policies"]["most_popular"]["coverage"] < 0.5
