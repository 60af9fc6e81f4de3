"""The recommend rollout stage (trainer.recommend_rollout): simulator clones and forced
outcomes, the rollout targets (common random numbers, determinism), the eight features and the
least-squares fit (numpy only, except the graph parity test, marked tf)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from runtime.recommend_features import item_features, parse_catalogue
from trainer import recommend_rollout as rr
from trainer.recsim import RecSimConfig, RecSimEnv, make_catalogue


@pytest.fixture(scope="module")
def raw():
    return make_catalogue()


@pytest.fixture(scope="module")
def cat(raw):
    return parse_catalogue(raw)


def _env(raw, seed=3):
    e = RecSimEnv(raw, RecSimConfig())
    e.reset(seed=seed, options={"cold": False})
    return e


def test_clone_is_independent_and_replays_the_same_stream(raw):
    e = _env(raw)
    a, b = e.clone(seed=5), e.clone(seed=5)
    slate = np.flatnonzero(~e.blocked)[:5]
    ra = [a.step(slate)[1] for _ in range(1)] + [a.step(np.flatnonzero(~a.blocked)[:5])[1]]
    rb = [b.step(slate)[1] for _ in range(1)] + [b.step(np.flatnonzero(~b.blocked)[:5])[1]]
    assert ra == rb and a.history == b.history
    assert e.t == 0 and a.t == 2                                     # the original is untouched
    assert not np.shares_memory(a.satiation, e.satiation)
    assert not np.shares_memory(a.consumed, e.consumed)


def test_forced_click_and_no_click(raw):
    e = _env(raw)
    item = int(np.flatnonzero(~e.blocked)[0])
    w = float(e.expected_watch([item])[0])
    p = float(e.click_probs_alone()[item])
    assert 0 < p < 1 and np.isclose(p * w, e.myopic_values()[item])
    c = e.clone(seed=0)
    _, r, *_ , info = c.step(item, pick=0)
    assert info["clicked"] == item and np.isclose(r, w)
    n = e.clone(seed=0)
    _, r, *_, info = n.step(item, pick=1)
    assert info["clicked"] is None and r == 0.0 and item in n.skipped
    with pytest.raises(ValueError, match="pick"):
        e.clone().step(item, pick=2)


def test_features_layout_and_linear_term(cat):
    items = item_features(cat)
    states = np.zeros((2, 56), np.float32)
    states[:, 54] = [0.4, 0.7]                                       # the trust estimate
    a = np.random.default_rng(0).random((2, cat.n_items))
    phi = rr.features(a, states, items, cat.n_topics, cat.embedding_dim)
    assert phi.shape == (2, cat.n_items, 8)
    q, length = cat.quality, cat.length / 4.0
    np.testing.assert_allclose(phi[1, :, 0], q, rtol=1e-6)
    np.testing.assert_allclose(phi[1, :, 1], q * 0.7, rtol=1e-5)
    np.testing.assert_allclose(phi[0, :, 6], a[0] * (q - 0.5) * 0.4, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(phi[0, :, 7], a[0] * length, rtol=1e-5)
    coef = np.arange(8.0)
    np.testing.assert_allclose(rr.linear_term(a, states, items, coef, 10, 8), phi @ coef,
                               rtol=1e-5)


@pytest.mark.tf
def test_graph_terms_match_numpy(cat):
    pytest.importorskip("tensorflow")
    from keras import ops

    items = item_features(cat)
    rng = np.random.default_rng(1)
    states = rng.random((3, 56)).astype(np.float32)
    a = rng.random((3, cat.n_items)).astype(np.float32)
    coef = rng.normal(size=8)
    got = np.asarray(rr.linear_term(ops.convert_to_tensor(a), ops.convert_to_tensor(states),
                                    ops.convert_to_tensor(items), coef, 10, 8, ops))
    np.testing.assert_allclose(got, rr.linear_term(a, states, items, coef, 10, 8), rtol=1e-4,
                               atol=1e-5)


def test_fit_recovers_coefficients_and_state_terms_only(cat):
    items = item_features(cat)
    rng = np.random.default_rng(2)
    m, c = 300, 20
    states = rng.random((m, 56)).astype(np.float32)
    cands = np.stack([rng.choice(cat.n_items, c, replace=False) for _ in range(m)])
    a = rng.random((m, c))
    true = np.array([1.0, -2.0, 0.5, 0.3, -0.4, 2.0, 1.5, -0.7])
    phi = np.stack([rr.features(a[j:j + 1], states[j:j + 1], items[cands[j]], 10, 8)[0]
                    for j in range(m)])
    p = np.full((m, c), 0.5)
    data = {"states": states, "cands": cands, "a": a, "p": p,
            "gc": 2.0 * (phi @ true + 0.3) + rng.normal(0, 0.01, (m, c)), "gnc": np.zeros((m, c))}
    res = rr.fit(data, items, 10, 8)
    np.testing.assert_allclose(res["coef"], true, atol=0.02)
    assert res["r2_train"] > 0.99 and res["r2_held_out"] > 0.99
    only = rr.fit(data, items, 10, 8, terms=rr.STATE_TERMS)
    assert [i for i, v in enumerate(only["coef"]) if v != 0.0] == list(rr.STATE_TERMS)


def test_rollout_targets_are_deterministic_with_common_random_numbers(raw, cat):
    from trainer.recommend import PROFILES
    from trainer.recommend_diag import heuristic_from_states

    cfg = dataclasses.replace(PROFILES["quick"], rollout_click=2, rollout_noclick=2)
    policy = lambda s: heuristic_from_states(s, cat)                  # noqa: E731
    envs = rr.collect_states(policy, raw, RecSimConfig(), 3, 123, 0.3, 5)
    assert len(envs) == 3
    before = [(len(e.history), e.t) for e in envs]
    cands = [rr.candidates(e, policy(e.state()[None])[0], 3, 2, np.random.default_rng(0))
             for e in envs]
    assert all(len(set(c.tolist())) == 5 and not envs[0].blocked[c].any() for c in cands[:1])
    one = rr.rollout_group(envs, cands, policy, [(0, 1, m) for m in range(3)], cfg)
    two = rr.rollout_group(envs, cands, policy, [(0, 1, m) for m in range(3)], cfg)
    assert [(len(e.history), e.t) for e in envs] == before          # rollouts run on clones
    for (p, w, gc, gnc), (p2, w2, gc2, gnc2) in zip(one, two):
        np.testing.assert_array_equal(gc, gc2)
        np.testing.assert_array_equal(gnc, gnc2)
        assert ((0 < p) & (p < 1)).all() and (w > 0).all() and (gc >= 0).all()
