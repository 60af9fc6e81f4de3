"""Tests for generate("music"): the C environment against its pure-Python twin, the runtime's
state encoding and key handling, the metric definitions, the shipped model (lengths, keys,
determinism, bad options) and a quick profile trained, exported, evaluated and served end to
end (marked tf)."""
from __future__ import annotations

import numpy as np
import pytest

import runtime
from runtime import music as rt
from tests.conftest import require_kind

pytest.importorskip("fastcore.melody_env", reason="fastcore is not built "
                    "(python setup.py build_ext --inplace)")
from fastcore import SplitMix64, reference  # noqa: E402
from fastcore import reference_envs as twins  # noqa: E402
from fastcore.melody_env import MelodyEnv, train_melody_agent  # noqa: E402


def style_table(seed=0):
    return np.random.default_rng(seed).normal(size=(26, 25))


# ------------------------------------------------------------------------------ fastcore
@pytest.mark.parametrize("seed", [0, 5, 2**64 - 1])
@pytest.mark.parametrize("kwargs", [{}, {"bars_min": 2, "bars_max": 16, "style_weight": 0.7,
                                         "motif": 2.0, "trill": -3.0}])
def test_env_matches_twin_exactly(seed, kwargs):
    if "style_weight" in kwargs:
        kwargs = dict(kwargs, style=style_table(seed % 7))
    c = MelodyEnv(**kwargs).rollout(5000, seed)
    p = twins.rollout(twins.MelodyEnvPy(**kwargs), 5000, reference.SplitMix64(seed))
    for name, a, b in zip(("states", "actions", "rewards", "dones"), c, p):
        assert np.array_equal(a, b), name
    lengths = np.diff(np.flatnonzero(np.r_[1, c[3]]))
    assert set(lengths[:-1]) <= {8 * b for b in range(kwargs.get("bars_min", 1),
                                                      kwargs.get("bars_max", 8) + 1)}


def test_reward_terms_by_hand():
    env = twins.MelodyEnvPy(bars_min=1, bars_max=1)
    rng = SplitMix64(0)
    s = env.reset(rng)
    C4, D4, E4, Fs4, C5, G5 = 0, 2, 4, 6, 12, 19
    rewards = []
    for p in (C4, D4, Fs4, C5, G5, E4, C4, C4):
        s, r, done = env.step(s, p, rng)
        rewards.append(r)
    # C4 on the phrase start: tonic_start; D4: step; F#4: out of key + skip (4 semitones);
    # C5, G5: leaps of 6 and 7 (not more than a fifth); E4: huge leap (15 down); C4: skip, but
    # the leap of 15 down is not resolved (same direction); final C4: repeat + final tonic +
    # motif (the bar holds >= 3 distinct pitches)
    assert rewards[:6] == pytest.approx([1.0, 0.3, -1.0 + 0.1, -0.2, -0.2, -1.5])
    assert rewards[6] == pytest.approx(0.1 - 1.0)
    assert done and rewards[7] == pytest.approx(-0.2 + 2.0 + 0.3)
    # a leap > a fifth then resolved by a step the other way
    env.reset(rng)
    s, _, _ = env.step(0, C4, rng)
    s, r1, _ = env.step(s, 12, rng)                          # octave up: big leap
    s, r2, _ = env.step(s, 11, rng)                          # B4: step down, resolves
    assert r1 == pytest.approx(-0.8) and r2 == pytest.approx(0.3 + 0.5)


def test_training_matches_twin_and_learns():
    kw = dict(alpha=0.2, gamma=0.8, epsilon=0.3, epsilon_decay=0.99, epsilon_min=0.05, seed=4,
              style=style_table(1), style_weight=0.3, bars_max=3)
    qc, sc = train_melody_agent(60, **kw)
    qp, sp = twins.train_melody_agent(60, **kw)
    np.testing.assert_allclose(qc, qp, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sc["returns"], sp["returns"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(sc["lengths"], sp["lengths"])
    q, stats = train_melody_agent(30_000, seed=2, epsilon=0.3, epsilon_decay=0.9999,
                                  epsilon_min=0.02)
    per_step = stats["returns"] / stats["lengths"]
    assert per_step[-3000:].mean() > per_step[:3000].mean() + 0.5


def test_env_validation():
    for bad in ({"bars_min": 0}, {"bars_max": 17}, {"bars_min": 3, "bars_max": 2},
                {"style": np.zeros((25, 25))}, {"style": np.full((26, 25), np.nan)}):
        with pytest.raises(ValueError):
            MelodyEnv(**bad)


def test_runtime_state_encoding_matches_the_environment():
    env = twins.MelodyEnvPy(bars_min=2, bars_max=2)
    rng = SplitMix64(9)
    s = env.reset(rng)
    last, ib, rep = -1, 0, 0
    gen = np.random.default_rng(0)
    for t in range(16):
        assert s == rt.state_index(t, 16, last, ib)
        a = int(gen.choice([0, 0, 2, 4, 7, 12, 24]))
        s, _, _ = env.step(s, a, rng)
        if last >= 0:
            rep = rep + 1 if a == last else 1
            ib = rt.interval_bucket(a - last, rep)
        else:
            rep, ib = 1, 0
        last = a
    for iv in range(-24, 25):
        for rep in range(1, 6):
            assert rt.interval_bucket(iv, rep) == twins.interval_bucket(iv, rep)


# ------------------------------------------------------------------------------ keys, metrics
def test_keys_and_transposition():
    assert rt.parse_key("C") == (0, False) and rt.parse_key("F#") == (6, False)
    assert rt.parse_key("Bb") == (10, False) and rt.parse_key("Am") == (9, True)
    assert rt.transpose([60, 62, 64, 72], "G") == [55, 57, 59, 67]
    assert rt.transpose([60, 64, 69, 71], "Am") == [57, 60, 65, 67]     # A C F G
    assert rt.scale_of("D") == {2, 4, 6, 7, 9, 11, 1}
    assert rt.scale_of("Am") == rt.scale_of("C")
    for bad in ("H", "c", "C##", "Cmaj", "", "am", 5, None, ["C"]):
        with pytest.raises(ValueError, match="key"):
            rt.parse_key(bad)


def test_melody_metrics_definitions():
    from trainer.music import melody_metrics

    m = melody_metrics([[60, 60, 60, 60, 60, 72, 71, 60]], ["C"])
    assert m["excessive_repeat_pct"] == pytest.approx(100 * 2 / 8)
    assert m["leaps_resolved_pct"] == 100.0 and m["leaps_over_fifth_per_melody"] == 1
    assert m["end_on_tonic_pct"] == 100.0 and m["in_key_pct"] == 100.0
    m = melody_metrics([[60, 61, 73, 80, 62], [62, 62]], ["C", "D"])
    assert m["in_key_pct"] == pytest.approx(100 * 4 / 7)
    assert m["leaps_resolved_pct"] == 0.0 and m["end_on_tonic_pct"] == 50.0
    assert m["distinct_pct"] == 100.0


def test_rollout_with_zero_table_is_uniform_and_respects_length():
    mel = rt.rollout(np.zeros((rt.N_STATES, rt.N_PITCH)), 64, np.random.default_rng(0))
    assert len(mel) == 512 and min(mel) >= 60 and max(mel) <= 84
    assert len(set(mel)) == 25


# ------------------------------------------------------------------------------ shipped model
@pytest.fixture(scope="module")
def shipped(exported_dir):
    require_kind("music")
    return exported_dir


def test_shipped_melodies_have_the_contract_shape(shipped):
    for bars in (1, 2, 4, 64):
        mel = runtime.generate("music", seed=bars, models_dir=shipped, bars=bars)
        assert isinstance(mel, list) and len(mel) == 8 * bars
        assert all(type(p) is int and 0 <= p <= 127 for p in mel)
    assert len(runtime.generate("music", seed=0, models_dir=shipped)) == 8 * rt.OPTIONS["bars"]


def test_shipped_melodies_are_in_key_and_end_on_the_tonic(shipped):
    from trainer.music import melody_metrics

    keys = ["C", "F#", "Bb", "E", "Am", "C#m", "Ebm", "G"]
    mels = [runtime.generate("music", seed=i, models_dir=shipped, bars=4, key=k)
            for i, k in enumerate(keys * 10)]
    m = melody_metrics(mels, keys * 10)
    assert m["in_key_pct"] >= 97.0 and m["end_on_tonic_pct"] >= 90.0
    assert m["excessive_repeat_pct"] <= 3.0 and m["distinct_pct"] >= 90.0
    assert all(50 <= p <= 95 for mel in mels for p in mel)


def test_shipped_determinism_and_transposition(shipped):
    a = runtime.generate("music", seed=7, models_dir=shipped, bars=3, key="C")
    assert a == runtime.generate("music", seed=7, models_dir=shipped, bars=3, key="C")
    assert a != runtime.generate("music", seed=8, models_dir=shipped, bars=3, key="C")
    d = runtime.generate("music", seed=7, models_dir=shipped, bars=3, key="D")
    assert [x - y for x, y in zip(d, a)] == [2] * len(a)


@pytest.mark.parametrize("opts", [
    {"bars": 0}, {"bars": 65}, {"bars": 2.0}, {"bars": "4"}, {"bars": True}, {"bars": None},
    {"key": "H"}, {"key": "c"}, {"key": 0}, {"key": "C major"}, {"tempo": 120},
])
def test_bad_options_raise_value_error(shipped, opts):
    with pytest.raises(ValueError) as err:
        runtime.generate("music", seed=0, models_dir=shipped, **opts)
    assert next(iter(opts)) in str(err.value)


def test_shipped_metrics_meet_the_targets(shipped):
    m = runtime.info("music", models_dir=shipped)["metrics"]
    assert m, "no metrics stored"
    rl = m["rl"]
    assert rl["in_key_pct"] >= 98 and rl["excessive_repeat_pct"] <= 3
    assert rl["leaps_resolved_pct"] is None or rl["leaps_resolved_pct"] >= 80
    assert rl["end_on_tonic_pct"] >= 95 and rl["distinct_pct"] >= 95
    assert rl["style_loglik"] > m["baseline_uniform_random"]["style_loglik"] + 1.0


# ------------------------------------------------------------------------------ end to end
@pytest.mark.tf
@pytest.mark.slow
def test_quick_profile_trains_exports_evaluates_and_generates(tmp_path):
    from trainer import music as tr

    cfg = tr.PROFILES["quick"]
    work, out = tmp_path / "work", tmp_path / "out"
    tr.train(cfg, work)
    assert (work / "learning_curve.png").exists() and (work / "style_bigram.json").exists()
    tr.export(cfg, work, out)
    metrics = tr.evaluate(cfg, work, out)
    rl, base = metrics["rl"], metrics["baseline_uniform_random"]
    assert rl["in_key_pct"] > 95 > base["in_key_pct"]
    assert rl["end_on_tonic_pct"] > 90 > base["end_on_tonic_pct"]
    assert rl["style_loglik"] > base["style_loglik"]
    mel = runtime.generate("music", seed=1, models_dir=out, bars=2, key="Eb")
    assert len(mel) == 16 and mel[-1] % 12 == 3
    table, _ = rt.q_table(out)
    np.testing.assert_allclose(table, np.load(work / "q.npy"), rtol=1e-6, atol=1e-5)
