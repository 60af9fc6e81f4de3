"""The melody vocabulary shared by the trainer and the runtime (numpy only, no model code).

A melody is a sequence of events ``(pitch or None for a rest, duration in sixteenths)``. The
model reads and writes one token per event and is told, before each event, where that event
starts (its *context*):

* event token ``p * N_DUR + d``: ``p`` = pitch index (MIDI ``LOW_MIDI + p``) or ``REST``;
  ``d`` = index into ``DURATIONS`` (sixteenths). ``N_EVENT`` event tokens.
* start token ``N_EVENT + bos_index(style, meter, minor)``: the first input of every melody;
  it says the style (folk song or chorale), the metre and the mode.
* context ``(position * 4 + bar_in_phrase) * 3 + to_end``: ``position`` = the onset in
  sixteenths from the bar line (0..15), ``bar_in_phrase`` = bar number mod 4 counted from the
  first full bar (a pick-up bar is 3), ``to_end`` = 0 in the last bar, 1 in the bar before,
  2 earlier. ``N_CONTEXT`` contexts.

Melodies are modelled in C major or A minor and transposed to the requested key afterwards.
"""
from __future__ import annotations

PITCH_LOW, PITCH_HIGH = 55, 88                   # G3 .. E6 inclusive, in C major / A minor
N_PITCH = PITCH_HIGH - PITCH_LOW + 1             # 34
REST = N_PITCH                                   # pitch index of a rest
DURATIONS = (1, 2, 3, 4, 6, 8, 12, 16)           # sixteenths
N_DUR = len(DURATIONS)
N_EVENT = (N_PITCH + 1) * N_DUR                  # 280
STYLES = ("folk", "chorale")
METERS = {"4/4": 16, "3/4": 12, "2/4": 8, "6/8": 12}   # sixteenths per bar
METER_NAMES = tuple(METERS)
N_BOS = len(STYLES) * len(METERS) * 2
N_TOKEN = N_EVENT + N_BOS
N_POSITION, N_PHRASE, N_TO_END = 16, 4, 3
N_CONTEXT = N_POSITION * N_PHRASE * N_TO_END     # 192
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)             # pitch classes of C major (= A natural minor)


def event_token(pitch_index: int, dur_index: int) -> int:
    return pitch_index * N_DUR + dur_index


def split_token(token: int) -> tuple[int, int]:
    """Event token -> (pitch index or REST, duration index)."""
    return divmod(int(token), N_DUR)


def bos_index(style: str, meter: str, minor: bool) -> int:
    return (STYLES.index(style) * len(METERS) + METER_NAMES.index(meter)) * 2 + int(minor)


def context_index(position: int, bar_in_phrase: int, to_end: int) -> int:
    return (position * N_PHRASE + bar_in_phrase) * N_TO_END + to_end


def context_at(onset: int, bar_len: int, pickup: int, total: int) -> int:
    """Context of an event starting ``onset`` sixteenths into a melody of ``total`` sixteenths
    whose first bar is a pick-up of ``pickup`` sixteenths (0: none)."""
    shifted = onset + (bar_len - pickup if pickup else 0)
    bar, pos = divmod(shifted, bar_len)
    last_bar = (total - 1 + (bar_len - pickup if pickup else 0)) // bar_len
    phrase = (bar - (1 if pickup else 0)) % N_PHRASE
    return context_index(min(pos, N_POSITION - 1), phrase, min(last_bar - bar, 2))
