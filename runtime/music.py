"""Melodies: rollout of a tabular Q-learning composer (RL Tuner-style rewards), in any key.

``generate("music", bars=4, key="C", seed=1)`` -> ``list[int]``: MIDI pitches, one per step,
8 steps (eighth notes) per bar, so ``8 * bars`` numbers.

Options and caps
----------------
``bars``: int in [1, 64] (the cap keeps a melody under 512 notes); ``key``: a major key
``C C# Db D D# Eb E F F# Gb G G# Ab A A# Bb B`` or the same name with ``m`` for its natural
minor (``"Am"``, ``"F#m"``, ``"Bbm"``).

How a melody is made (numpy + onnxruntime only)
-----------------------------------------------
The model is the Q-table of the agent trained in ``fastcore.melody_env`` in C major (5304
states = position in the 2-bar phrase or "final step" x previous pitch x previous interval
bucket; 25 actions = MIDI 60..84), shipped as an ONNX gather (state indices -> Q values). The
runtime reads the table once per session and, at every step, samples among the pitches whose
Q is within ``margin`` of the best with probabilities ``softmax((Q - max Q) / temperature)``
(``temperature`` and ``margin`` come from the exported ``env`` side file). The melody is then
transposed by the key's tonic (C..F# up 0..6 semitones, G..B down 5..1), so it lies between
MIDI 55 and 90. A minor key takes the melody of its parallel major and lowers the 3rd, 6th and
7th scale degrees by a semitone (natural minor); the tonic is unchanged.

``rollout(table, bars, rng, temperature, margin)`` returns the C major pitches (``table=None``:
uniform choice, the untrained zero-Q baseline); ``transpose(pitches, key)`` moves them to a key.
"""
from __future__ import annotations

import re
import threading

import numpy as np

from runtime import options, registry
from runtime.errors import ModelError

OPTIONS = {"bars": 4, "key": "C"}
BARS_MIN, BARS_MAX = 1, 64
STEPS_PER_BAR = 8
KIND = "music"

# must match fastcore.melody_env (checked against the exported "env" side file)
N_PITCH, LOW_MIDI = 25, 60
N_POS, N_LAST, N_IB = 17, 26, 12
N_STATES = N_POS * N_LAST * N_IB
ENCODING = "pos17-last26-interval12"
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR = {4: 3, 9: 8, 11: 10}       # major-scale degree (semitones) -> lowered
TONICS = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
          "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}
KEYS = tuple(TONICS) + tuple(k + "m" for k in TONICS)
_KEY_RE = re.compile(r"^([A-G][#b]?)(m?)$")

_lock = threading.Lock()
_tables: dict = {}
_cum_cache: dict = {}


def parse_key(key) -> tuple[int, bool]:
    """``"F#"`` -> (6, False), ``"Am"`` -> (9, True); ValueError naming the option otherwise."""
    m = _KEY_RE.match(key) if isinstance(key, str) else None
    if m is None or m.group(1) not in TONICS:
        raise ValueError(f"key must be a major key ({', '.join(TONICS)}) or a minor key "
                         f"written with 'm' (e.g. Am, F#m, Bbm); got {key!r}")
    return TONICS[m.group(1)], m.group(2) == "m"


def key_offset(tonic: int) -> int:
    """Transposition of the C major model to a tonic: up to a tritone up, else down."""
    return tonic if tonic <= 6 else tonic - 12


def transpose(pitches, key: str) -> list[int]:
    tonic, minor = parse_key(key)
    out = []
    for p in pitches:
        pc = p % 12
        if minor and pc in NATURAL_MINOR:
            p = p - pc + NATURAL_MINOR[pc]
        out.append(int(p + key_offset(tonic)))
    return out


def scale_of(key: str) -> set[int]:
    """Pitch classes of the key's scale (major or natural minor)."""
    tonic, minor = parse_key(key)
    degrees = [NATURAL_MINOR.get(d, d) if minor else d for d in MAJOR_SCALE]
    return {(tonic + d) % 12 for d in degrees}


# ------------------------------------------------------------------------------ state
def interval_bucket(iv: int, rep: int) -> int:
    a = abs(iv)
    if a == 0:
        return 1 if rep <= 2 else (2 if rep == 3 else 3)
    if a <= 2:
        return 4 if iv > 0 else 5
    if a <= 4:
        return 6 if iv > 0 else 7
    if a <= 7:
        return 8 if iv > 0 else 9
    return 10 if iv > 0 else 11


def state_index(t: int, length: int, last: int, ib: int) -> int:
    """Same encoding as fastcore.melody_env: ``last`` is a pitch index (0..24) or -1."""
    pos = 16 if t == length - 1 else t % 16
    return (pos * N_LAST + last + 1) * N_IB + ib


# ------------------------------------------------------------------------------ model
def _model(models_dir, precision: str):
    sess = registry.session(KIND, "q", models_dir, precision)
    with _lock:
        hit = _tables.get(id(sess))
        if hit is not None and hit[0] is sess:
            return hit[1], hit[2]
    env = registry.load_json(KIND, "env", models_dir)
    if env.get("encoding") != ENCODING or env.get("n_states") != N_STATES \
            or env.get("n_actions") != N_PITCH or env.get("low_midi") != LOW_MIDI:
        raise ModelError(f"the {KIND} model was exported for another state encoding "
                         f"({env.get('encoding')!r}); this runtime expects {ENCODING} with "
                         f"{N_STATES} states and {N_PITCH} pitches from MIDI {LOW_MIDI}: "
                         f"re-export {KIND}")
    (table,) = registry.run(sess, {"state": np.arange(N_STATES, dtype=np.int64)})
    table = np.asarray(table, dtype=np.float64)
    if table.shape != (N_STATES, N_PITCH) or not np.all(np.isfinite(table)):
        raise ModelError(f"the {KIND} Q model returned shape {table.shape} (or non-finite "
                         f"values); expected ({N_STATES}, {N_PITCH}): re-export {KIND}")
    sampling = {"temperature": float(env["temperature"]), "margin": float(env["margin"])}
    with _lock:
        _tables[id(sess)] = (sess, table, sampling)
    return table, sampling


def q_table(models_dir, precision: str = "fp32") -> tuple[np.ndarray, dict]:
    """(Q-table (5304, 25) read through the ONNX model, {"temperature", "margin"})."""
    return _model(models_dir, precision)


def _cumulative(table, temperature: float, margin: float) -> np.ndarray:
    """Per-state cumulative pitch probabilities (cached per table, temperature, margin)."""
    key = (id(table), float(temperature), float(margin))
    with _lock:
        hit = _cum_cache.get(key)
        if hit is not None and hit[0] is table:
            return hit[1]
    hi = table.max(axis=1, keepdims=True)
    z = np.where(table >= hi - margin, (table - hi) / temperature, -np.inf)
    p = np.exp(z)
    c = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    c[:, -1] = 1.0
    with _lock:
        if len(_cum_cache) > 16:
            _cum_cache.clear()
        _cum_cache[key] = (table, c)
    return c


def rollout(table, bars: int, rng: np.random.Generator, temperature: float = 0.7,
            margin: float = 1.5) -> list[int]:
    """A C major melody (MIDI pitches) of ``8 * bars`` steps; ``table=None``: uniform."""
    length = STEPS_PER_BAR * bars
    uniforms = rng.random(length)
    cum = None if table is None else _cumulative(table, temperature, margin)
    last, ib, rep = -1, 0, 0
    out = []
    for t in range(length):
        if cum is None:
            a = min(int(uniforms[t] * N_PITCH), N_PITCH - 1)
        else:
            row = cum[state_index(t, length, last, ib)]
            a = min(int(np.searchsorted(row, uniforms[t], side="right")), N_PITCH - 1)
        if last >= 0:
            iv = a - last
            rep = rep + 1 if iv == 0 else 1
            ib = interval_bucket(iv, rep)
        else:
            rep, ib = 1, 0
        last = a
        out.append(a + LOW_MIDI)
    return out


def generate(*, rng: np.random.Generator, models_dir, precision: str = "fp32", bars=4,
             key="C") -> list[int]:
    bars = options.check_int("bars", bars, BARS_MIN, BARS_MAX)
    parse_key(key)
    table, sampling = q_table(models_dir, precision)
    return transpose(rollout(table, bars, rng, **sampling), key)
