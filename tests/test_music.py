"""Tests for generate("music"): the melody vocabulary and sampler, the theory-reward kernel
against its pure-Python twin, the evaluation measures, the data split, the shipped model
(notes with durations, keys, metres, determinism, bad options, MIDI) and a quick profile
trained, exported, evaluated and served end to end (tf, slow)."""
from __future__ import annotations

import numpy as np
import pytest

import runtime
from fastcore import reference_music as twin
from runtime import music as rt
from runtime import music_vocab as V
from tests.conftest import require_kind


def melody(notes, meter="4/4", minor=False):
    return {"notes": notes, "meter": meter, "minor": minor}


# ------------------------------------------------------------------------------ vocabulary
def test_context_counts_bars_to_the_end_and_pickups():
    # 2 bars of 4/4 without pick-up: first bar is "one before the last", second the last
    assert V.context_at(0, 16, 0, 32) == V.context_index(0, 0, 1)
    assert V.context_at(20, 16, 0, 32) == V.context_index(4, 1, 0)
    # a 4-sixteenth pick-up: it is bar 3 of the phrase, the next bar line starts phrase bar 0
    assert V.context_at(0, 16, 4, 36) == V.context_index(12, 3, 2)
    assert V.context_at(4, 16, 4, 36) == V.context_index(0, 0, 1)


def test_allowed_events_never_overrun_and_never_rest_at_the_edges():
    idx = rt.allowed(3, first=False, last_rest=False)
    assert all(V.DURATIONS[t % V.N_DUR] <= 3 for t in idx)
    assert V.event_token(V.REST, V.DURATIONS.index(3)) not in idx     # rest may not end it
    assert V.event_token(V.REST, V.DURATIONS.index(2)) in idx
    assert not any(t // V.N_DUR == V.REST for t in rt.allowed(16, True, False))
    assert not any(t // V.N_DUR == V.REST for t in rt.allowed(16, False, True))


def test_pick_respects_nucleus_and_uniform():
    logits = np.full(V.N_EVENT, -50.0)
    logits[[10, 20, 30]] = [5.0, 4.0, 0.0]
    idx = np.arange(V.N_EVENT)
    picks = {rt.pick(logits, idx, u, 1.0, 0.9) for u in np.linspace(0, 0.999, 50)}
    assert picks == {10, 20}                                   # 30 is outside the 90% nucleus
    assert rt.pick(logits, idx, 0.5, 1.0, 1.0) == 10
    assert rt.pick(logits, np.array([20, 30]), 0.5, 1.0, 1.0) == 20    # only allowed ones


def fake_step(token, context, state):
    """A stand-in network: prefers quarter-note Cs and Gs, whatever the input."""
    logits = np.zeros(V.N_EVENT)
    for p in (72, 79):
        logits[V.event_token(p - V.PITCH_LOW, V.DURATIONS.index(4))] = 6.0
    return logits, state


@pytest.mark.parametrize("meter,bars", [("4/4", 8), ("3/4", 5), ("6/8", 3), ("2/4", 1)])
@pytest.mark.parametrize("minor", [False, True])
def test_sampler_fills_exactly_the_bars_and_ends_on_the_tonic(meter, bars, minor):
    notes, tokens = rt.sample_events(fake_step, 4, bars=bars, meter=meter, style="folk",
                                     minor=minor, rng=np.random.default_rng(0))
    assert sum(d for _, d in notes) == bars * V.METERS[meter]
    assert notes[0][0] is not None and notes[-1][0] % 12 == (9 if minor else 0)
    assert len(tokens) == len(notes)
    free, _ = rt.sample_events(fake_step, 4, bars=2, meter="4/4", style="folk",
                               minor=True, rng=np.random.default_rng(0), end_on_tonic=False)
    assert free[-1][0] in (72, 79)                 # the stand-in's own choice, not A


def test_keys_transpose_and_scales():
    assert rt.key_shift("C") == 0 and rt.key_shift("Am") == 0
    assert rt.key_shift("G") == -5 and rt.key_shift("F#") == 6 and rt.key_shift("Em") == -5
    assert rt.scale_of("D") == {2, 4, 6, 7, 9, 11, 1}
    assert {9, 11, 0, 2, 4, 5, 7, 6, 8} == rt.scale_of("Am")
    with pytest.raises(ValueError, match="key"):
        rt.parse_key("H")


@pytest.mark.parametrize("spelled,short", [("A minor", "Am"), ("C major", "C"),
                                           ("F# minor", "F#m"), ("Bb major", "Bb"),
                                           ("bb MAJOR", "Bb"), (" e  Minor ", "Em")])
def test_spelled_out_key_names_are_accepted(spelled, short):
    assert rt.canonical_key(spelled) == short
    assert rt.parse_key(spelled) == rt.parse_key(short)
    assert rt.key_shift(spelled) == rt.key_shift(short)


@pytest.mark.parametrize("bad", ["H", "am", "E# minor", "A dorian", "Aminor", "A minor minor",
                                 "", 5, None])
def test_bad_key_names_are_refused(bad):
    with pytest.raises(ValueError, match="key"):
        rt.canonical_key(bad)


def test_melody_score_and_midi_play_durations(tmp_path):
    mido = pytest.importorskip("mido")
    mel = rt.Melody(notes=[(72, 4), (None, 4), (74, 8), (76, 16)], key="C", bars=2)
    assert mel.score() == "C 4/4: C5/q rest/q D5/h | E5/w ||"
    summary = mel.save(tmp_path / "m.mid")
    assert "3 notes" in summary
    track = mido.MidiFile(tmp_path / "m.mid").tracks[0]
    ons = [m for m in track if m.type == "note_on"]
    offs = [m for m in track if m.type == "note_off"]
    assert [m.time for m in offs] == [480, 960, 1920]          # quarter, half, whole
    assert [m.time for m in ons] == [0, 480, 0]                # the rest is a quarter of silence


# ------------------------------------------------------------------------------ rewards
def test_theory_kernel_matches_twin_exactly():
    melody_env = pytest.importorskip("fastcore.melody_env", reason="fastcore is not built")
    rng = np.random.default_rng(0)
    b, t = 300, 50
    p = rng.integers(55, 82, (b, t)).astype(np.int32)
    p[rng.random((b, t)) < 0.15] = -1
    p[::4, 5:9] = 70
    p[::3, 10:14] = [60, 62, 60, 62]
    d = rng.choice(V.DURATIONS, (b, t)).astype(np.int32)
    d[::2] = 4
    lengths = rng.integers(0, t + 1, b).astype(np.int32)
    bar_lens = rng.choice([8, 12, 16], b).astype(np.int32)
    minor = rng.integers(0, 2, b).astype(np.uint8)
    c = melody_env.theory_parts_batch(p, d, lengths, bar_lens, minor)
    py = twin.theory_parts_batch(p, d, lengths, bar_lens, minor)
    assert np.array_equal(c, py)
    assert (c != 0).any(axis=0).all()                         # every part is exercised
    with pytest.raises(ValueError):
        melody_env.theory_parts_batch(p, d, lengths + t, bar_lens, minor)


def test_theory_parts_count_what_they_say():
    notes = [(60, 4), (62, 4), (60, 4), (62, 4), (61, 4), (60, 4), (60, 4), (60, 4), (60, 8)]
    parts = twin.theory_parts(notes, 16, False)
    assert parts["out_of_key"] == 1 and parts["trill"] == 1 and parts["repeat"] == 1
    assert parts["end_tonic"] == 1 and parts["end_long"] == 1 and parts["monotone"] == 0
    assert twin.theory_parts([(60, 4), (74, 4), (76, 8)], 16, False)["leap"] == 2


# ------------------------------------------------------------------------------ evaluation
def test_set_metrics_on_known_sets():
    from trainer.music_eval import set_metrics, tv, two_sample_auc

    scale = [(60, 4), (62, 4), (64, 4), (65, 4)] * 2
    same = [melody(scale) for _ in range(4)]
    m = set_metrics(same)
    assert m["near_copy_pct"] == 100.0 and m["unique_rhythm_pct"] == 0.0
    assert m["two_durations_pct"] == 0.0 and m["in_key_pct"] == 100.0
    assert m["end_tonic_pct"] == 0.0 and m["steps_pct"] == pytest.approx(600 / 7)  # F-C leaps
    assert tv(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    rng = np.random.default_rng(0)
    a = [melody([(int(rng.integers(60, 72)), 4) for _ in range(16)]) for _ in range(60)]
    b = [melody([(int(rng.integers(60, 84)), 2) for _ in range(32)]) for _ in range(60)]
    assert two_sample_auc(a, b, trees=20) > 0.95


def test_split_keeps_tune_variants_together():
    from trainer.music_data import split, tune_groups

    tune = [[60 + (i * 5) % 12, 4] for i in range(20)]
    variant = [[p + 2, d] for p, d in tune]                   # same intervals, transposed
    other = [[60 + (i * 7) % 5, 2] for i in range(20)]
    recs = [{"name": f"n{i}", "notes": n} for i, n in enumerate([tune, variant, other])]
    groups = tune_groups(recs)
    assert groups[0] == groups[1] != groups[2]
    many = [dict(r, name=f"{r['name']}-{k}") for k in range(30) for r in recs[:2]]
    train, held = split(many, 0.5)
    assert len(train) + len(held) == 60 and (not train or not held)   # one group: one side



def test_split_joins_near_identical_tunes_not_shared_formulae():
    from trainer.music_data import intervals, near_identical

    rng = np.random.default_rng(0)
    base = [int(x) for x in 64 + np.cumsum(rng.choice([-2, -1, 1, 2, 3], 40))]
    tune = melody([(p, 2) for p in base])
    changed = [(p + (1 if i == 20 else 0), 2) for i, p in enumerate(base)]   # one note off
    assert near_identical(intervals(tune), intervals(melody(changed)))
    formula = base[:11]                             # an 11-note run, then another tune
    other = formula + [int(x) for x in formula[-1] + np.cumsum(rng.choice([-4, 0, 4], 29))]
    assert not near_identical(intervals(tune), intervals(melody([(p, 2) for p in other])))
    quoted = melody([(p, 2) for p in base[5:35]])   # a shorter tune quoted whole
    assert near_identical(intervals(tune), intervals(quoted))


# ------------------------------------------------------------------------------ RL rewards
def test_per_note_rates_do_not_pay_for_fewer_notes():
    from trainer.music import Config, reward_weights
    from trainer.music_rewards import batch_rewards

    w = reward_weights(Config())
    cycle = (61, 63, 66)                            # C#, D#, F#: out of key, no repeats
    eighths = melody([(cycle[i % 3], 2) for i in range(16)])     # 16 in 2 bars
    quarters = melody([(cycle[i % 3], 4) for i in range(8)])     # 8 in the same time
    counts = batch_rewards([eighths, quarters], w)[0]
    rates = batch_rewards([eighths, quarters], w, per_note_rates=True)[0]
    assert counts[1] > counts[0] and rates[1] == pytest.approx(rates[0])


def test_stats_reward_pulls_the_batch_mean_toward_training_tunes():
    from trainer.music_stats import melody_stats, stats_rewards, targets

    recs = [dict(melody([(60, 4), (None, 4), (62, 4), (64, 4)] * 4), style="folk", pickup=0)
            for _ in range(5)]
    target = targets(recs)
    same = [dict(melody(r["notes"]), style="folk") for r in recs[:4]]
    assert np.allclose(stats_rewards(same, target, 1.0)[0], 0.0)
    no_rests = dict(melody([(60, 4), (62, 4), (62, 4), (64, 4)] * 4), style="folk")
    batch = [no_rests] * 3 + [same[0]]
    rewards, gap = stats_rewards(batch, target, 1.0)
    assert rewards[3] > rewards[0]                   # the melody with rests is rewarded
    assert gap[1] < 0 and melody_stats(same[0])[1] == pytest.approx(1.0)
    assert stats_rewards([dict(no_rests, style="chorale")], target, 1.0)[0][0] == 0.0

# ------------------------------------------------------------------------------ shipped model
@pytest.fixture(scope="module")
def shipped():
    require_kind("music")
    if "step" not in runtime.info("music")["files"]:
        pytest.skip("the shipped music model predates the event model")


def test_generate_returns_notes_with_durations(shipped):
    mel = runtime.generate("music", seed=3, bars=8, key="G", meter="3/4")
    assert isinstance(mel, rt.Melody) and mel.steps_per_quarter == 4
    assert sum(d for _, d in mel.notes) == 8 * 12
    assert all((p is None or 0 <= p <= 127) and d in V.DURATIONS for p, d in mel.notes)
    assert mel.key == "G" and mel.bars == 8
    again = runtime.generate("music", seed=3, bars=8, key="G", meter="3/4")
    assert again.notes == mel.notes
    assert runtime.generate("music", seed=4, bars=8).notes != runtime.generate(
        "music", seed=5, bars=8).notes
    spelled = runtime.generate("music", seed=3, bars=8, key="g MAJOR", meter="3/4")
    assert spelled.notes == mel.notes and spelled.key == "G"
    minor = runtime.generate("music", seed=3, bars=4, key="A minor")
    assert minor.key == "Am" and minor.notes == runtime.generate("music", seed=3, bars=4,
                                                                 key="Am").notes


def test_shipped_melodies_are_tunes(shipped):
    mels = [runtime.generate("music", seed=i, bars=8, key=k)
            for i, k in enumerate(["C", "Am", "Eb", "F#m"] * 10)]
    ends = sum(m.pitches[-1] % 12 == rt.parse_key(m.key)[0] for m in mels)
    in_key = [p % 12 in rt.scale_of(m.key) for m in mels for p in m.pitches]
    assert ends >= 30 and np.mean(in_key) >= 0.9
    assert sum(len({d for p, d in m.notes if p is not None}) >= 2 for m in mels) >= 36


@pytest.mark.parametrize("opts,name", [({"bars": 0}, "bars"), ({"bars": "8"}, "bars"),
                                       ({"key": "H"}, "key"), ({"meter": "5/4"}, "meter"),
                                       ({"temperature": 0}, "temperature"),
                                       ({"style": "jazz"}, "style"), ({"tempo": 1}, "tempo"),
                                       ({"end_on_tonic": "yes"}, "end_on_tonic")])
def test_bad_options_name_the_option(shipped, opts, name):
    with pytest.raises(ValueError, match=name):
        runtime.generate("music", seed=0, **opts)


# ------------------------------------------------------------------------------ end to end
@pytest.mark.tf
@pytest.mark.slow
def test_quick_profile_trains_exports_and_serves(tmp_path):
    from trainer.__main__ import main

    out = tmp_path / "models"
    assert main(["train", "music", "--profile", "quick", "--out", str(out), "--work",
                 str(tmp_path / "runs"), "--set", "eval_melodies=12"]) == 0
    entry = runtime.info("music", models_dir=out)
    assert entry["parity_max_abs_diff"] < 1e-4
    metrics = entry["metrics"]
    assert set(metrics) >= {"rl", "prior", "markov", "uniform", "heldout_nats_per_event"}
    mel = runtime.generate("music", seed=1, models_dir=out, bars=4, key="Bb")
    assert sum(d for _, d in mel.notes) == 64


def test_discriminator_reward_prefers_melodies_like_the_training_tunes():
    from trainer.music_disc import Discriminator

    rng = np.random.default_rng(1)
    real = [dict(melody([(int(p), 2) for p in 64 + np.cumsum(rng.choice([-1, 1], 32))]),
                 style="folk", pickup=0) for _ in range(40)]          # stepwise eighths
    disc = Discriminator(real, refit_every=1, trees=20)
    fake = [dict(melody([(int(p), 4) for p in rng.integers(55, 80, 16)]), style="folk")
            for _ in range(20)]
    first = disc.rewards(fake)                        # fitted on these: they look fake
    mixed = disc.rewards(fake[:5] + [dict(r, style="folk") for r in real[:5]])
    assert first.shape == (20,) and np.isfinite(first).all()
    assert mixed[5:].mean() > mixed[:5].mean()
    assert disc.rewards([dict(fake[0], style="chorale")])[0] == 0.0


def test_held_out_discriminator_scores_batches_it_was_not_fitted_on():
    from trainer.music_disc import Discriminator

    rng = np.random.default_rng(2)
    real = [dict(melody([(int(p), 2) for p in 64 + np.cumsum(rng.choice([-1, 1], 32))]),
                 style="folk", pickup=0) for _ in range(40)]
    disc = Discriminator(real, refit_every=1, trees=20, openings=True, holdout=True)
    fake = [dict(melody([(int(p), 4) for p in rng.integers(55, 80, 16)]), style="folk")
            for _ in range(20)]
    assert (disc.rewards(fake) == 0).all()           # nothing fitted before the first batch
    mixed = disc.rewards(fake[:5] + [dict(r, style="folk") for r in real[:5]])
    assert mixed[5:].mean() > mixed[:5].mean()


def test_kl_coefficient_decays_geometrically():
    from trainer.music_rl import kl_at

    assert kl_at(0, 400, 1.0, None) == kl_at(399, 400, 1.0, None) == 1.0
    assert kl_at(0, 400, 1.0, 0.2) == 1.0 and kl_at(399, 400, 1.0, 0.2) == pytest.approx(0.2)
    assert kl_at(200, 401, 1.0, 0.25) == pytest.approx(0.5)


def test_structure_statistics_and_opening_targets():
    from trainer.music_stats import NAMES, GapTracker, melody_stats, opening_targets, \
        stats_rewards, window_stats

    # bar 2 starts with a half note on beat 4 of bar 1 (crosses the bar line); bar 4 ends
    # with a rest; the second half has that one rest
    m = melody([(60, 4)] * 3 + [(62, 8)] + [(64, 4)] * 3 + [(60, 4)] * 4 + [(62, 8), (None, 8)])
    f = dict(zip(NAMES, melody_stats(m)))
    assert f["bar-line crossings per bar"] == pytest.approx(0.25)
    assert f["phrase-end rests"] == 1.0 and f["phrase-end long notes"] == 0.0
    assert f["rests per bar, second half"] == pytest.approx(0.5)
    recs = [dict(m, style="folk", pickup=0) for _ in range(3)]
    tg = opening_targets(recs, (4,), stats=window_stats)
    assert np.allclose(stats_rewards([dict(m, style="folk")] * 2, tg, 1.0)[0], 0.0)
    tracker = GapTracker(0.5)
    assert np.allclose(tracker.update(np.ones(2)), 1.0)
    assert np.allclose(tracker.update(np.zeros(2)), 0.5)


def test_pattern_distances_to_the_reference():
    from trainer.music_eval import pattern_counts, set_metrics

    a = [melody([(60, 4), (62, 4), (64, 4), (62, 4)] * 2)]
    b = [melody([(60, 8), (67, 8)] * 2)]
    same = set_metrics(a, reference_patterns=pattern_counts(a))
    other = set_metrics(a, reference_patterns=pattern_counts(b))
    assert same["interval_pair_tv"] == 0.0 and same["bar_rhythm_tv"] == 0.0
    assert other["interval_pair_tv"] == 1.0 and other["bar_rhythm_tv"] == 1.0
