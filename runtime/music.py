"""Melodies: ``generate("music", bars=8, key="G", meter="3/4", seed=1)`` -> ``Melody``.

``Melody.notes`` is a list of ``(pitch, duration)``: ``pitch`` a MIDI number or ``None`` for a
rest, ``duration`` in sixteenth notes (``Melody.steps_per_quarter == 4``). The melody fills
exactly ``bars`` bars of ``meter`` and starts on the first beat. ``melody.score()`` prints it as
one line, ``melody.save("tune.mid")`` writes a MIDI file that plays the durations and rests.

How a melody is made (numpy + onnxruntime only)
-----------------------------------------------
The shipped ``step`` model is one step of a recurrent network over note events (trained by
maximum likelihood on folk songs and chorale melodies, then tuned by reinforcement learning
with music-theory rewards, KL-anchored to that prior; see ``docs/kinds/music.md``):
``(token int64 [B], context int64 [B], state float32 [B, H]) -> (logits float32 [B, 280],
state)``. The first token says the style, metre and mode; every later token is the event just
played (pitch-or-rest x duration, ``runtime.music_vocab``); the context says where the next
event starts (position in the bar, bar within the 4-bar phrase, bars to the end). Events whose
duration would overrun the last bar are masked, as are a rest first, last or after a rest, and
(``end_on_tonic=True``, the default) a final note that is not the tonic.
The event is drawn from ``softmax(logits / temperature)`` restricted to the smallest set of
events holding ``top_p`` of the probability (one uniform number per event from the seeded
generator). Melodies are made in C major or A minor and transposed to ``key``: up to a
tritone up, else down.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from runtime import music_vocab as V
from runtime.errors import ModelError
from runtime.model import Model, Option, Options

KIND = "music"
TONICS = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6,
          "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}
KEYS = tuple(TONICS) + tuple(k + "m" for k in TONICS)
MINOR_EXTRA = (6, 8)        # F# and G#: the raised 6th and 7th of A minor (melodic/harmonic)
_KEY_RE = re.compile(r"^([A-G][#b]?)(m?)$")
_KEY_WORDS_RE = re.compile(r"^\s*([a-g])([#b]?)\s+(major|minor)\s*$", re.IGNORECASE)
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
DURATION_NAMES = {1: "s", 2: "e", 3: "e.", 4: "q", 6: "q.", 8: "h", 12: "h.", 16: "w"}

OPTIONS = Options(
    Option("bars", 8, "int", "length of the melody in bars", lo=1, hi=64),
    Option("key", "C", "str", "major key (`C`, `F#`, `Bb`, ...) or minor key with `m` "
           "(`Am`, `F#m`, `Bbm`); spelled-out names too, any case (`A minor`, `C major`, "
           "`F# minor`, `Bb major`)", hi=20),
    Option("meter", "4/4", "choice", "time signature", choices=V.METER_NAMES),
    Option("style", "folk", "choice", "folk song or chorale melody", choices=V.STYLES),
    Option("temperature", 1.0, "float", "sampling temperature (lower: safer, plainer)",
           lo=0.05, hi=3.0),
    Option("top_p", 0.95, "float", "nucleus sampling: keep the smallest set of events with "
           "this much probability", lo=0.05, hi=1.0),
    Option("end_on_tonic", True, "bool", "the last note is the key's tonic (a cadence rule "
           "applied when sampling; False lets the model choose)"),
)


def canonical_key(key) -> str:
    """``"F#"``, ``"Am"`` as they are; ``"A minor"`` -> ``"Am"``, ``"bb MAJOR"`` -> ``"Bb"``
    (spelled-out names in any case); ValueError naming the option otherwise."""
    m = _KEY_RE.match(key) if isinstance(key, str) else None
    if m is None and isinstance(key, str):
        w = _KEY_WORDS_RE.match(key)
        if w is not None:
            m = _KEY_RE.match(w.group(1).upper() + w.group(2).replace("B", "b")
                              + ("m" if w.group(3).lower() == "minor" else ""))
    if m is None or m.group(1) not in TONICS:
        raise ValueError(f"key must be a major key ({', '.join(TONICS)}) or a minor key "
                         f"written with 'm' (e.g. Am, F#m, Bbm), or spelled out (e.g. "
                         f"'A minor', 'Bb major'); got {key!r}")
    return m.group(0)


def parse_key(key) -> tuple[int, bool]:
    """``"F#"`` -> (6, False), ``"Am"`` or ``"A minor"`` -> (9, True); ValueError naming the
    option otherwise."""
    m = _KEY_RE.match(canonical_key(key))
    return TONICS[m.group(1)], m.group(2) == "m"


def key_shift(key: str) -> int:
    """Semitones from the model's C major / A minor to ``key`` (-5..+6)."""
    tonic, minor = parse_key(key)
    s = (tonic - (9 if minor else 0)) % 12
    return s if s <= 6 else s - 12


def scale_of(key: str) -> set[int]:
    """Pitch classes counted as in ``key``: the major scale, or for a minor key the natural
    minor plus its raised 6th and 7th."""
    tonic, minor = parse_key(key)
    base = {(p + key_shift(key)) % 12 for p in V.MAJOR_SCALE}
    if minor:
        base |= {(p + key_shift(key)) % 12 for p in MINOR_EXTRA}
    return base


def note_name(pitch) -> str:
    return "rest" if pitch is None else f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


@dataclass
class Melody:
    """A generated melody: ``notes`` = [(MIDI pitch or None, duration in sixteenths)]."""
    notes: list
    key: str = "C"
    bars: int = 8
    meter: str = "4/4"
    style: str = "folk"
    steps_per_quarter: int = 4
    tokens: list = field(default_factory=list, repr=False)
    suffix = ".mid"

    @property
    def pitches(self) -> list[int]:
        return [p for p, _ in self.notes if p is not None]

    def score(self) -> str:
        """One printed line: note name + duration letter (s e q h w, '.' dotted), '|' bars."""
        bar_len = V.METERS[self.meter]
        out, t = [], 0
        for p, d in self.notes:
            if t and t % bar_len == 0:
                out.append("|")
            out.append(f"{note_name(p)}/{DURATION_NAMES.get(d, d)}")
            t += d
        return f"{self.key} {self.meter}: " + " ".join(out) + " ||"

    def save(self, path) -> str:
        """Write a MIDI file (needs the ``media`` extra); returns a one-line summary."""
        from pathlib import Path

        from runtime import media

        media.write_midi(Path(path), self.notes, ticks_per_step=120, meter=self.meter)
        return (f"{len(self.pitches)} notes, {self.bars} bars of {self.meter} in {self.key}: "
                f"{self.score()}")


def _allowed(remaining: int, first: bool, last_rest: bool, final_tonic: int = -1) -> np.ndarray:
    """Indices of the events that may come next (see the module docstring); ``final_tonic``
    (a pitch class, -1: free) is the only pitch class the final note may have."""
    d_ok = np.array([d <= remaining for d in V.DURATIONS])
    mask = np.tile(d_ok, V.N_PITCH + 1)
    if first or last_rest:
        mask[V.REST * V.N_DUR:] = False
    elif remaining in V.DURATIONS:             # a rest may not end the melody
        mask[V.REST * V.N_DUR + V.DURATIONS.index(remaining)] = False
    if final_tonic >= 0 and remaining in V.DURATIONS:
        di = V.DURATIONS.index(remaining)
        for p in range(V.N_PITCH):
            if (V.PITCH_LOW + p) % 12 != final_tonic:
                mask[p * V.N_DUR + di] = False
    idx = np.flatnonzero(mask)
    idx.flags.writeable = False
    return idx


_ALLOWED: dict = {}


def allowed(remaining: int, first: bool, last_rest: bool, final_tonic: int = -1) -> np.ndarray:
    """Cached ``_allowed`` (remaining sixteenths beyond 16 allow every duration)."""
    key = (min(remaining, 17), first, last_rest, final_tonic)
    idx = _ALLOWED.get(key)
    if idx is None:
        idx = _ALLOWED[key] = _allowed(*key)
    return idx


def pick(logits: np.ndarray, idx: np.ndarray, u: float, temperature: float,
         top_p: float) -> int:
    """One event among ``idx`` from ``softmax(logits / temperature)`` within the ``top_p``
    nucleus (ties at the nucleus edge are kept), using the uniform number ``u``."""
    z = logits.take(idx).astype(np.float64)    # array methods: no numpy dispatch per step
    if temperature != 1.0:
        z /= temperature
    z -= z.max()
    p = np.exp(z)
    if top_p < 1.0:
        s = np.sort(p)[::-1]
        c = s.cumsum()
        k = int(c.searchsorted(top_p * c[-1]))
        edge = s[k if k < len(s) else len(s) - 1]
        p[p < edge] = 0.0
    c = p.cumsum()
    k = int(c.searchsorted(u * c[-1], side="right"))
    return int(idx[k if k < len(idx) else len(idx) - 1])


def sample_events(step, hidden: int, *, bars: int, meter: str, style: str, minor: bool,
                  rng: np.random.Generator, temperature: float = 1.0, top_p: float = 0.95,
                  end_on_tonic: bool = True):
    """Sample one melody in C major / A minor with ``step(token, context, state) -> (logits,
    state)`` (batch of one); returns (notes, tokens)."""
    final_tonic = (9 if minor else 0) if end_on_tonic else -1
    bar_len = V.METERS[meter]
    total = bars * bar_len
    token = V.N_EVENT + V.bos_index(style, meter, minor)
    state = np.zeros((1, hidden), np.float32)
    onset, notes, tokens, last_rest = 0, [], [], False
    while onset < total:
        ctx = V.context_at(onset, bar_len, 0, total)
        logits, state = step(token, ctx, state)
        idx = allowed(total - onset, not notes, last_rest, final_tonic)
        token = pick(logits.reshape(-1), idx, rng.random(), temperature, top_p)
        pi, di = V.split_token(token)
        d = V.DURATIONS[di]
        last_rest = pi == V.REST
        notes.append((None if last_rest else V.PITCH_LOW + pi, d))
        tokens.append(token)
        onset += d
    return notes, tokens


class MusicModel(Model):
    kind = KIND
    options = OPTIONS

    def _step_fn(self):
        def build():
            sess = self.session("step")
            names = [i.name for i in sess.get_inputs()]
            if names[:2] != ["token", "context"] or len(names) != 3:
                raise ModelError(f"the {KIND} step model {self.info['files']['step']['file']} "
                                 f"has inputs {names}; expected token, context, state: "
                                 f"re-export {KIND}")
            vocab = self.json("vocab")
            want = {"pitch_low": V.PITCH_LOW, "pitch_high": V.PITCH_HIGH,
                    "durations": list(V.DURATIONS), "n_context": V.N_CONTEXT,
                    "n_token": V.N_TOKEN}
            if any(vocab.get(k) != v for k, v in want.items()):
                raise ModelError(f"the {KIND} vocabulary {self.info['files']['vocab']['file']} "
                                 f"does not match this runtime's ({want}): re-export {KIND}")
            hidden = int(sess.get_inputs()[2].shape[1])

            def step(token, context, state):      # fresh feeds: models are shared by threads
                logits, new_state = self.run(sess, {"token": np.array([token], np.int64),
                                                    "context": np.array([context], np.int64),
                                                    "state": state})
                return logits, new_state
            return step, hidden
        return self.cached("step_fn", build)

    def _generate(self, rng, *, bars, key, meter, style, temperature, top_p, end_on_tonic):
        key = canonical_key(key)
        tonic, minor = parse_key(key)
        step, hidden = self._step_fn()
        notes, tokens = sample_events(step, hidden, bars=bars, meter=meter, style=style,
                                      minor=minor, rng=rng, temperature=temperature, top_p=top_p,
                                      end_on_tonic=end_on_tonic)
        shift = key_shift(key)
        notes = [(None if p is None else p + shift, d) for p, d in notes]
        return Melody(notes=notes, key=key, bars=bars, meter=meter, style=style, tokens=tokens)


MODEL = MusicModel
