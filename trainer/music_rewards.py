"""Music-theory rewards for a melody in C major / A minor (the RL Tuner's rules, with rhythm).

``theory_reward(notes, meter, minor, w)`` -> (total, parts). ``notes`` = [(MIDI or None,
sixteenths)]; ``w`` maps each part's name to its weight (``Config`` in ``trainer.music``):

* ``out_of_key``  per note outside the scale (C major; A minor = natural minor + F#, G#)
* ``end_tonic``   +1 if the last note is the tonic, -1 otherwise
* ``end_long``    +1 if the last note lasts at least a quarter
* ``cadence``     per inner phrase end (bar 4, 8, ...) whose last event lasts at least a
                  quarter or is a rest (a breath), and whose last note is a tonic or dominant
                  chord tone
* ``repeat``      per note that is the 4th or later equal pitch in a row
* ``leap``        per leap larger than an octave, and per leap larger than a fifth not followed
                  by a step back the other way (1-2 semitones)
* ``trill``       per x-y-x-y figure (x != y)
* ``motif``       per bar whose rhythm repeats an earlier bar's but whose pitches do not
                  (a varied motif); ``copy_bar`` per bar equal to the previous bar in both
* ``monotone``    +1 if the melody uses only one note duration

``per_note_rates`` (the default in training): the per-note parts (``PER_NOTE``) count as rates,
``count * NOTES_PER_BAR * bars / notes``: the same as the count for a melody with the corpus's
3.8 notes per bar, but a melody no longer scores better by playing fewer notes (with raw
counts it did, and RL moved toward quarter notes).

These rewards are the reward's own terms: the evaluation reports them as "in the reward" and
judges the model on held-out tunes with other measures (``trainer.music_eval``).
The counting is ``fastcore.melody_env.theory_parts_batch`` (C speed) when fastcore is built,
else its pure-Python twin ``fastcore.reference_music`` (the same numbers; tests compare them).
"""
from __future__ import annotations

import numpy as np

from fastcore.reference_music import MAJOR, MINOR, PARTS, bars_of, theory_parts_batch
from runtime import music_vocab as V

__all__ = ["MAJOR", "MINOR", "PARTS", "PER_NOTE", "bars_of", "theory_parts", "theory_reward",
           "batch_rewards"]
PER_NOTE = ("out_of_key", "repeat", "leap", "trill")
NOTES_PER_BAR = 3.8            # training folk tunes: 3.83 notes per bar

try:
    from fastcore.melody_env import theory_parts_batch as _batch
except ImportError:                        # fastcore not built: the twin (same numbers)
    _batch = theory_parts_batch


def _arrays(melodies):
    n = len(melodies)
    t = max(1, max(len(m["notes"]) for m in melodies))
    pitches = np.full((n, t), -1, np.int32)
    durs = np.zeros((n, t), np.int32)
    for i, m in enumerate(melodies):
        for j, (p, d) in enumerate(m["notes"]):
            pitches[i, j] = -1 if p is None else p
            durs[i, j] = d
    lengths = np.array([len(m["notes"]) for m in melodies], np.int32)
    bar_lens = np.array([V.METERS[m["meter"]] for m in melodies], np.int32)
    minor = np.array([bool(m["minor"]) for m in melodies], np.uint8)
    return pitches, durs, lengths, bar_lens, minor


def batch_rewards(melodies, weights: dict,
                  per_note_rates: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(total reward [B], parts [B, len(PARTS)]) of melody dicts (notes, meter, minor); the
    parts are raw counts, the total counts ``PER_NOTE`` parts as rates if ``per_note_rates``."""
    arrays = _arrays(melodies)
    parts = np.asarray(_batch(*arrays))
    w = np.array([weights[k] for k in PARTS])
    if not per_note_rates:
        return parts @ w, parts
    pitches, durs, lengths, bar_lens = arrays[:4]
    notes = (pitches >= 0).sum(1)
    bars = durs.sum(1) / bar_lens
    scale = np.ones((len(melodies), len(PARTS)))
    cols = [PARTS.index(k) for k in PER_NOTE]
    scale[:, cols] = (NOTES_PER_BAR * bars / np.maximum(notes, 1))[:, None]
    return (parts * scale) @ w, parts


def theory_parts(notes, meter: str, minor: bool) -> dict:
    parts = batch_rewards([{"notes": notes, "meter": meter, "minor": minor}],
                          dict.fromkeys(PARTS, 0.0))[1][0]
    return dict(zip(PARTS, map(float, parts)))


def theory_reward(notes, meter: str, minor: bool, weights: dict) -> tuple[float, dict]:
    parts = theory_parts(notes, meter, minor)
    return float(sum(weights[k] * v for k, v in parts.items())), parts
