"""Pure-Python twin of ``melody_env.pyx``: the music-theory reward parts of a melody.

``theory_parts(notes, bar_len, minor)`` counts each part for one melody in C major / A minor
(``notes`` = [(MIDI or None, sixteenths)], ``bar_len`` sixteenths per bar);
``theory_parts_batch`` does the same on padded arrays (pitch -1 = rest), exactly like the
Cython ``fastcore.melody_env.theory_parts_batch`` (tests compare them). ``trainer.music_rewards``
documents the parts and weighs them.
"""
from __future__ import annotations

import numpy as np

PARTS = ("out_of_key", "end_tonic", "end_long", "cadence", "repeat", "leap", "trill", "motif",
         "copy_bar", "monotone")
MAJOR = frozenset((0, 2, 4, 5, 7, 9, 11))
MINOR = MAJOR | {6, 8}
CHORD_TONES = {False: frozenset({0, 4, 7, 2, 11}), True: frozenset({9, 0, 4, 8, 11})}


def bars_of(notes, bar_len: int) -> list[list[tuple]]:
    """Events grouped by the bar they start in: [(onset in bar, pitch, duration)]."""
    bars: list[list[tuple]] = []
    t = 0
    for p, d in notes:
        b, pos = divmod(t, bar_len)
        while len(bars) <= b:
            bars.append([])
        bars[b].append((pos, p, d))
        t += d
    return bars


def theory_parts(notes, bar_len: int, minor: bool) -> dict:
    """Unweighted counts of each reward part (``trainer.music_rewards`` documents them)."""
    scale = MINOR if minor else MAJOR
    tonic = 9 if minor else 0
    pitches = [p for p, _ in notes if p is not None]
    parts = dict.fromkeys(PARTS, 0.0)
    parts["out_of_key"] = float(sum(p % 12 not in scale for p in pitches))
    if pitches:
        parts["end_tonic"] = 1.0 if pitches[-1] % 12 == tonic else -1.0
    last = [d for p, d in notes if p is not None]
    parts["end_long"] = float(bool(last) and last[-1] >= 4)
    run = 0
    for i, p in enumerate(pitches):
        run = run + 1 if i and p == pitches[i - 1] else 1
        parts["repeat"] += run >= 4
        if i:
            iv = p - pitches[i - 1]
            if abs(iv) > 12:
                parts["leap"] += 1
            if abs(iv) > 7:
                nxt = pitches[i + 1] - p if i + 1 < len(pitches) else 0
                if not (iv * nxt < 0 and 1 <= abs(nxt) <= 2):
                    parts["leap"] += 1
        if i >= 3 and p == pitches[i - 2] and pitches[i - 1] == pitches[i - 3] \
                and p != pitches[i - 1]:
            parts["trill"] += 1
    bars = bars_of(notes, bar_len)
    chord = CHORD_TONES[minor]
    for b in range(3, len(bars) - 1, 4):
        bar = bars[b]
        if not bar:
            continue
        last_note = next((p for _, p, _ in reversed(bar) if p is not None), None)
        held = bar[-1][2] >= 4 or bar[-1][1] is None
        parts["cadence"] += float(held and last_note is not None and last_note % 12 in chord)
    rhythms = [tuple((pos, d, p is None) for pos, p, d in bar) for bar in bars]
    melodies = [tuple(p for _, p, _ in bar) for bar in bars]
    for b in range(1, len(bars)):
        if rhythms[b] in rhythms[:b] and melodies[b] not in melodies[:b]:
            parts["motif"] += 1
        if rhythms[b] == rhythms[b - 1] and melodies[b] == melodies[b - 1]:
            parts["copy_bar"] += 1
    parts["monotone"] = float(len({d for p, d in notes if p is not None}) <= 1)
    return parts


def theory_parts_batch(pitches, durations, lengths, bar_lens, minor) -> np.ndarray:
    """float64 [B, len(PARTS)] from int arrays [B, T] (pitch -1 = rest) and [B] vectors."""
    out = np.zeros((len(lengths), len(PARTS)))
    for i, n in enumerate(lengths):
        notes = [(None if p < 0 else int(p), int(d))
                 for p, d in zip(pitches[i][:n], durations[i][:n])]
        parts = theory_parts(notes, int(bar_lens[i]), bool(minor[i]))
        out[i] = [parts[k] for k in PARTS]
    return out
