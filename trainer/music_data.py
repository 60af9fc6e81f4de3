"""Melodies from music21's bundled corpus: Essen folk songs and Bach chorale soprano lines.

* **Folk songs**: the European collections of the Essen folk song database bundled with music21
  (``essenFolksong/*.abc`` without the Chinese ``han1``/``han2`` sets, whose pentatonic tunes
  have no major/minor tonic, and without the ``test*`` files). A tune is kept when its header
  has one metre among 4/4, 3/4, 2/4 and 6/8 and no inline metre change.
* **Chorales**: every Bach score of the corpus with a part *named* Soprano (``partName`` or
  ``id``); the instrumental parts some chorale files put first (horn, trumpet, oboe, violin)
  are never read. Repeated files of the same chorale collapse in the split below.

Each melody becomes events ``(pitch or None, duration in sixteenths)`` (ties merged, grace
notes dropped, chords read as their top note) with its metre and pick-up. The key comes from
music21's key analysis; the melody is transposed to C major or A minor with the octave that
puts its median pitch in [64, 76). A melody is dropped if any duration is not a whole number
of sixteenths in ``DURATIONS`` (the last note is clipped to a whole bar first), if a pitch
falls outside ``PITCH_LOW..PITCH_HIGH``, if a middle bar is not a full bar, or if it has fewer
than 8 notes.

**Split by tune.** Only near-identical melodies are joined into one group (union-find):
variants of one tune, a hymn tune harmonised twice, a short tune quoted whole in a longer one.
Two melodies are near-identical (``near_identical``, on their interval sequences) when the
runs of at least ``NEAR_BLOCK`` intervals they have in common (``difflib`` alignment) cover
``NEAR_COVER`` of the shorter one (the same tune up to a few changed notes), or when one shared
run covers ``NEAR_LONGEST`` of the shorter one. Candidate pairs share a run of ``NEAR_RUN``
intervals that at most ``NEAR_RUN_CAP`` melodies have, in at least a tenth of the shorter
one's positions (a near-identical pair shares many runs; a stock formula that hundreds of tunes
use does not nominate a pair). The old rule (any shared run of 10 intervals) chained 2,940
melodies that merely share common folk formulae into one group. Whole groups go to the
held-out side by a hash of the group's smallest member name, so near-identical tunes never
straddle the split.

Parsing takes minutes; the parsed corpus is cached as JSON (``load``).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np

from runtime import music_vocab as V

EXCLUDED_FOLK = ("han1", "han2", "test0", "test1", "testd", "teste")
NEAR_RUN, NEAR_RUN_CAP = 6, 50  # candidate pairs: a shared 6-interval run that few tunes have
NEAR_BLOCK = 4                  # shared runs counted towards the cover: >= 4 intervals
NEAR_COVER = 0.8                # they cover 80% of the shorter melody: the same tune ...
NEAR_LONGEST = 0.7              # ... or one shared run covers 70% of the shorter melody
CACHE_VERSION = 2
_M_RE = re.compile(r"^M:\s*(\S+)\s*$", re.M)


# ------------------------------------------------------------------------------ parsing
def _corpus_dir() -> Path:
    from music21 import corpus

    return Path(corpus.getComposer("bach")[0]).parent.parent


def folk_tunes(limit_files: int | None = None, per_file: int | None = None):
    """(name, abc text) of every folk tune whose header metre is supported."""
    files = sorted(p for p in (_corpus_dir() / "essenFolksong").glob("*.abc")
                   if p.stem not in EXCLUDED_FOLK)
    for path in files[:limit_files]:
        text = path.read_text(encoding="latin-1")
        blocks = re.split(r"\n(?=X:)", text)
        kept = 0
        for block in blocks:
            if not block.startswith("X:"):
                continue
            meters = _M_RE.findall(block)
            if len(meters) != 1 or meters[0] not in V.METERS or "[M:" in block:
                continue
            number = block.split("\n", 1)[0][2:].strip()
            yield f"{path.stem}/{number}", block
            kept += 1
            if per_file is not None and kept >= per_file:
                break


def _events_of(part, bar_len: int):
    """(events [(midi or None, sixteenths)], pickup sixteenths) or None if unusable."""
    measures = list(part.getElementsByClass("Measure"))
    if not measures:
        return None
    lengths = [round(m.duration.quarterLength * 4) for m in measures]
    if any(x != bar_len for x in lengths[1:-1]):
        return None
    pickup = lengths[0] if lengths[0] < bar_len else 0
    events = []
    for n in part.flatten().stripTies().notesAndRests:
        q = n.duration.quarterLength * 4
        if n.duration.isGrace or q == 0:
            continue
        if abs(q - round(q)) > 1e-6:
            return None
        pitch = None
        if n.isNote:
            pitch = n.pitch.midi
        elif n.isChord:
            pitch = max(p.midi for p in n.pitches)
        if pitch is None and events and events[-1][0] is None:   # merge adjacent rests
            events[-1] = (None, events[-1][1] + int(round(q)))
            continue
        events.append((pitch, int(round(q))))
    while events and events[0][0] is None:          # leading rests: start on the first note
        pickup = (pickup - events[0][1]) % bar_len
        events.pop(0)
    while events and events[-1][0] is None:
        events.pop()
    return events, pickup


def _normalise(events, key_tonic: int, minor: bool, bar_len: int):
    """Transpose to C major / A minor, check pitches and durations; None if unusable."""
    if not events:
        return None
    last_p, last_d = events[-1]
    events = events[:-1] + [(last_p, min(last_d, max(d for d in V.DURATIONS if d <= bar_len)))]
    if any(d not in V.DURATIONS for _, d in events):
        return None
    shift = ((9 if minor else 0) - key_tonic) % 12
    pitches = [p + shift for p, _ in events if p is not None]
    if len(pitches) < 8:
        return None
    median = float(np.median(pitches))
    shift += 12 * int(np.floor((70 - median) / 12 + 0.5))
    out = []
    for p, d in events:
        if p is not None:
            p += shift
            if not V.PITCH_LOW <= p <= V.PITCH_HIGH:
                return None
        out.append((p, d))
    return out


def melody_record(name: str, style: str, score) -> dict | None:
    """A corpus score (one part already chosen) -> the cached record, or None."""
    part = score
    ts = part.recurse().getElementsByClass("TimeSignature")
    if not ts:
        return None
    meter = ts[0].ratioString
    if meter not in V.METERS or any(t.ratioString != meter for t in ts):
        return None
    bar_len = V.METERS[meter]
    got = _events_of(part, bar_len)
    if got is None:
        return None
    events, pickup = got
    key = part.analyze("key")
    minor = key.mode == "minor"
    events = _normalise(events, key.tonic.pitchClass, minor, bar_len)
    if events is None:
        return None
    return {"name": name, "style": style, "meter": meter, "minor": minor, "pickup": pickup,
            "notes": [[p, d] for p, d in events]}


def parse_folk(limit_files=None, per_file=None, log=print) -> list[dict]:
    from music21 import converter

    out, seen, t0 = [], 0, time.time()
    for name, text in folk_tunes(limit_files, per_file):
        seen += 1
        try:
            score = converter.parse(text, format="abc")
            part = score.parts[0] if hasattr(score, "parts") and score.parts else score
            rec = melody_record(name, "folk", part)
        except Exception:                        # malformed ABC in the corpus: skip the tune
            rec = None
        if rec is not None:
            out.append(rec)
        if seen % 250 == 0:
            log(f"folk: {seen} tunes parsed, {len(out)} kept ({time.time() - t0:.0f}s)")
    return out


def soprano_of(score):
    """The part named Soprano, or None (instrument parts are never taken)."""
    for part in score.parts:
        names = {str(part.partName or "").strip().lower(), str(part.id or "").strip().lower()}
        if names & {"soprano", "s.", "sopran", "s"}:
            return part
    return None


def parse_chorales(limit=None, log=print) -> list[dict]:
    from music21 import corpus

    paths = sorted(corpus.getComposer("bach"), key=lambda p: Path(p).name)[:limit]
    out, t0 = [], time.time()
    for i, path in enumerate(paths):
        try:
            score = corpus.parse(path)
            part = soprano_of(score) if hasattr(score, "parts") else None
            rec = None if part is None else melody_record(Path(path).stem, "chorale", part)
        except Exception:
            rec = None
        if rec is not None:
            out.append(rec)
        if (i + 1) % 100 == 0:
            log(f"chorales: {i + 1} files parsed, {len(out)} kept ({time.time() - t0:.0f}s)")
    return out


# ------------------------------------------------------------------------------ split
def intervals(rec) -> tuple:
    pitches = [p for p, _ in rec["notes"] if p is not None]
    return tuple(b - a for a, b in zip(pitches, pitches[1:]))


def runs(iv: tuple, length: int) -> set:
    return {iv[i:i + length] for i in range(len(iv) - length + 1)}


def near_identical(a: tuple, b: tuple) -> bool:
    """Two interval sequences are the same tune (see the module docstring)."""
    short = min(len(a), len(b))
    if short == 0:
        return False
    blocks = [m.size for m in difflib.SequenceMatcher(None, a, b, autojunk=False)
              .get_matching_blocks()]
    return (sum(x for x in blocks if x >= NEAR_BLOCK) >= NEAR_COVER * short
            or max(blocks) >= NEAR_LONGEST * short)


def candidate_pairs(ivs: list[tuple]) -> dict:
    """{(i, j): shared rare runs} for the melodies worth comparing with ``near_identical``."""
    owners: dict = {}
    for i, iv in enumerate(ivs):
        for run in runs(iv, NEAR_RUN):
            owners.setdefault(run, []).append(i)
    shared: dict = {}
    for members in owners.values():
        if len(members) > NEAR_RUN_CAP:
            continue
        for x, i in enumerate(members):
            for j in members[x + 1:]:
                shared[(i, j)] = shared.get((i, j), 0) + 1
    return {(i, j): n for (i, j), n in shared.items()
            if n >= 0.1 * min(len(ivs[i]), len(ivs[j]))}


def tune_groups(records: list[dict]) -> list[int]:
    """Group id per record: near-identical records (and chains of them) share a group."""
    parent = list(range(len(records)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict = {}                                   # identical interval sequences
    for i, rec in enumerate(records):
        parent[i] = first.setdefault(intervals(rec), i)
    ivs = list(first)
    members = list(first.values())
    for a, b in candidate_pairs(ivs):
        i, j = members[a], members[b]
        if find(i) != find(j) and near_identical(ivs[a], ivs[b]):
            parent[find(i)] = find(j)
    return [find(i) for i in range(len(records))]


def split(records: list[dict], heldout_fraction: float) -> tuple[list[dict], list[dict]]:
    groups = tune_groups(records)
    first: dict = {}
    for rec, g in zip(records, groups):
        first[g] = min(first.get(g, rec["name"]), rec["name"])
    train, held = [], []
    for rec, g in zip(records, groups):
        h = int(hashlib.sha256(first[g].encode()).hexdigest()[:8], 16) / 2**32
        (held if h < heldout_fraction else train).append(rec)
    return train, held


# ------------------------------------------------------------------------------ cache
def load(cache: Path, *, folk_files=None, folk_per_file=None, chorales=None,
         log=print) -> list[dict]:
    """The parsed corpus, from ``cache`` when it was made with the same selection."""
    selection = {"version": CACHE_VERSION, "folk_files": folk_files,
                 "folk_per_file": folk_per_file, "chorales": chorales}
    cache = Path(cache)
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("selection") == selection:
            return data["melodies"]
    melodies = parse_folk(folk_files, folk_per_file, log) + parse_chorales(chorales, log)
    from trainer.common import save_json

    cache.parent.mkdir(parents=True, exist_ok=True)
    save_json(cache, {"selection": selection, "melodies": melodies})
    return melodies


def to_tokens(rec: dict) -> tuple[list[int], list[int]]:
    """(input tokens, contexts) of a melody; targets are inputs[1:] + nothing (the BOS token
    is the first input; the context list is aligned with the events being predicted)."""
    bar_len = V.METERS[rec["meter"]]
    total = sum(d for _, d in rec["notes"])
    tokens = [V.N_EVENT + V.bos_index(rec["style"], rec["meter"], rec["minor"])]
    contexts = []
    onset = 0
    for p, d in rec["notes"]:
        contexts.append(V.context_at(onset, bar_len, rec["pickup"], total))
        pi = V.REST if p is None else p - V.PITCH_LOW
        tokens.append(V.event_token(pi, V.DURATIONS.index(d)))
        onset += d
    return tokens, contexts
