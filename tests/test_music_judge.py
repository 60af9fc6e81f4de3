"""The held-out judge compares like with like: a generated melody's opening window with real
tunes' openings and its closing window with real closings (``framed``, ``position_aucs``), and
the RL terms built from training tunes are cut the same way."""
from __future__ import annotations

import numpy as np
import pytest

from trainer.music_eval import position_aucs, pooled_auc, two_sample_auc, windows
from trainer.music_report import framed


def tune(notes, pickup=0, meter="4/4", minor=False):
    return {"notes": notes, "pickup": pickup, "meter": meter, "minor": minor, "style": "folk"}


def bars_of_quarters(first, n):
    """``n`` bars of 4/4 quarter notes; bar ``k`` plays pitch ``first + k``."""
    return [(first + k, 4) for k in range(n) for _ in range(4)]


def test_framed_takes_the_opening_and_the_closing():
    rec = tune(bars_of_quarters(60, 12))                      # 12 full bars, no pick-up
    f = framed(rec, 8)
    assert sum(d for _, d in f["notes"]) == 8 * 16
    pitches = [p for p, _ in f["notes"]][::4]
    assert pitches == [60, 61, 62, 63, 68, 69, 70, 71]       # bars 1-4, then bars 9-12
    assert framed(tune(bars_of_quarters(60, 8)), 8)["notes"] == bars_of_quarters(60, 8)
    assert framed(tune(bars_of_quarters(60, 7)), 8) is None   # opening and closing overlap


def test_framed_drops_the_pickup_and_completes_a_shortened_final_bar():
    # a quarter pick-up, 9 full bars, a final bar of 3 quarters (the pick-up's complement)
    notes = [(55, 4)] + bars_of_quarters(60, 9) + [(72, 4), (71, 4), (72, 4)]
    f = framed(tune(notes, pickup=4), 8)
    assert f["notes"][0] == (60, 4)                           # the pick-up is gone
    assert sum(d for _, d in f["notes"]) == 8 * 16
    assert f["notes"][-1] == (72, 8)                          # final note held to the bar line
    assert f["notes"][-3:-1] == [(72, 4), (71, 4)]
    assert [p for p, _ in f["notes"][16:20]] == [66] * 4      # the closing starts at bar 7


def test_framed_keeps_a_note_tied_into_the_closing():
    notes = bars_of_quarters(60, 5)[:-1] + [(70, 8)] + [(71, 4)] * 3 + bars_of_quarters(62, 3)
    f = framed(tune(notes), 8)        # 9 bars; bar 5 ends with a half note held into bar 6
    assert sum(d for _, d in f["notes"]) == 8 * 16
    assert f["notes"][16] == (70, 4)          # the closing (bars 6-9) starts with its rest


def judge_sets(seed):
    """Melodies whose openings are stepwise eighths and closings long leaps, against real
    tunes alike (the same construction) and unlike (closings like the openings)."""
    rng = np.random.default_rng(seed)

    def mel(closing_leaps):
        head = [(int(p), 2) for p in 64 + np.cumsum(rng.choice([-1, 1], 32))]
        tail = ([(int(p), 4) for p in rng.integers(55, 80, 16)] if closing_leaps
                else [(int(p), 2) for p in 64 + np.cumsum(rng.choice([-1, 1], 32))])
        return {"notes": head + tail, "meter": "4/4", "minor": False}
    return mel


def test_position_aucs_judge_each_window_position_against_its_own():
    mel = judge_sets(0)
    gen = [mel(True) for _ in range(40)]
    like = [mel(True) for _ in range(40)]
    unlike = [mel(False) for _ in range(40)]
    assert all(len(windows(m)) == 2 for m in gen)
    alike = position_aucs(gen, like, trees=30)
    apart = position_aucs(gen, unlike, trees=30)
    assert len(alike) == 2 and max(alike) < 0.75
    assert apart[0] < 0.75 and apart[1] > 0.95                # only the closings differ
    assert two_sample_auc(gen, unlike, trees=30) == pytest.approx(np.mean(apart))
    # pooled, the position is lost: openings and closings are mixed in one test
    assert pooled_auc(gen, unlike, trees=30) == two_sample_auc(gen, unlike, trees=30,
                                                               by_position=False)


def test_rl_targets_use_the_same_cut():
    from trainer.music_disc import Discriminator
    from trainer.music_stats import frame, opening_targets, position_stats

    recs = [tune(bars_of_quarters(60, 12)) for _ in range(3)]
    tg = opening_targets(recs, (8,), stats=position_stats, cut=frame)
    f = framed(recs[0], 8)
    assert np.allclose(tg[8]["mean"], position_stats(f))
    disc = Discriminator(recs, frames=True)
    assert disc.real.shape == (2 * 3, len(position_stats(f)) // 2 + 2)   # + position flags
    assert disc.real[:, -2].tolist() == [1, 0] * 3 and disc.real[:, -1].tolist() == [0, 1] * 3


def test_rl_emphasis_weights_named_statistics():
    from trainer.music import Config, _emphasis
    from trainer.music_stats import NAMES, POSITION_NAMES, stats_rewards, targets

    own, pos = _emphasis(Config(rl_emphasis=(("final note", 4), ("closing: longest event", 3))))
    assert own[NAMES.index("final note")] == 4 and own.sum() == len(NAMES) + 3
    assert pos[POSITION_NAMES.index("closing: longest event")] == 3 and pos.sum() == len(pos) + 2
    assert _emphasis(Config(rl_emphasis=())) == (None, None)
    with pytest.raises(ValueError, match="unknown statistics"):
        _emphasis(Config(rl_emphasis=(("final notes", 2),)))
    recs = [tune(bars_of_quarters(60, 8)), tune(bars_of_quarters(62, 8)[:-1] + [(69, 4)])]
    tg = targets(recs)
    mels = [{"notes": [(60, 4)] * 31 + [(60, 2)], "meter": "4/4", "minor": False}] * 2
    plain, gap = stats_rewards(mels, tg, 1.0)
    scale = np.ones(len(NAMES))
    scale[NAMES.index("final note")] = 3.0
    scaled, _ = stats_rewards(mels, tg, 1.0, scale=scale)
    z = np.clip((tg["stats"](mels[0]) - tg["mean"]) / tg["spread"], -5, 5)
    assert scaled[0] - plain[0] == pytest.approx(-2.0 * z[-1] * gap[-1])


def test_rl_progress_is_kept_with_emphasis_pairs(tmp_path):
    # the saved config has lists where the Config has tuples: still the same config
    from trainer.common import save_json
    from trainer.music import Config, _state

    cfg = Config(rl_emphasis=(("final note", 4.0), ("closing: longest event", 3.0)))
    state = _state(cfg, tmp_path)
    state.update(mle_done=True, rl_done=400)
    save_json(tmp_path / "state.json", state)
    assert _state(cfg, tmp_path)["rl_done"] == 400
    assert _state(Config(rl_emphasis=()), tmp_path)["rl_done"] == 0   # other pairs: RL restarts
