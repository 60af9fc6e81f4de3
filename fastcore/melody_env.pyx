# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Music-theory reward parts of a batch of melodies (C speed), for RL tuning of the melody prior.

``theory_parts_batch(pitches, durations, lengths, bar_lens, minor) -> float64 [B, 10]``

* ``pitches``   int32 [B, T]: MIDI pitch of each event, -1 for a rest (C major / A minor)
* ``durations`` int32 [B, T]: sixteenths (> 0)
* ``lengths``   int32 [B]: events used in each row; ``bar_lens`` int32 [B]: sixteenths per bar
* ``minor``     uint8 [B]: 1 for A minor (scale = natural minor + F#, G#), 0 for C major

Columns, in ``fastcore.reference_music.PARTS`` order: out_of_key, end_tonic, end_long,
cadence, repeat, leap, trill, motif, copy_bar, monotone (``trainer.music_rewards`` defines and
weighs them). ``fastcore.reference_music.theory_parts_batch`` is the pure-Python twin: the same
counts for every input (tests). The loop runs without the GIL.
"""
import numpy as np

cdef enum:
    N_PARTS = 10
    MAJOR_MASK = 0xAB5            # pitch classes 0 2 4 5 7 9 11
    MINOR_MASK = 0xBF5            # + 6 8
    MAJOR_CHORD = 0x895           # 0 2 4 7 11
    MINOR_CHORD = 0xB11           # 0 4 8 9 11


cdef inline int iabs(int x) nogil:
    return -x if x < 0 else x


cdef bint same_bar(const int[:] pitch, const int[:] dur, const int[:] pos, int a0, int a1,
                   int b0, int b1, bint rhythm) noexcept nogil:
    """Bars [a0, a1) and [b0, b1) have the same rhythm (pos, duration, rest) or pitches."""
    cdef int k
    if a1 - a0 != b1 - b0:
        return False
    for k in range(a1 - a0):
        if rhythm:
            if pos[a0 + k] != pos[b0 + k] or dur[a0 + k] != dur[b0 + k] \
                    or (pitch[a0 + k] < 0) != (pitch[b0 + k] < 0):
                return False
        elif pitch[a0 + k] != pitch[b0 + k]:
            return False
    return True


cdef void score_one(const int[:] pitch, const int[:] dur, int n, int bar_len, bint minor,
                    int[:] notes, int[:] pos, int[:] bar_start, double[:] out) noexcept nogil:
    cdef int scale = MINOR_MASK if minor else MAJOR_MASK
    cdef int chord = MINOR_CHORD if minor else MAJOR_CHORD
    cdef int tonic = 9 if minor else 0
    cdef int i, k, c, m = 0, run = 0, iv, nxt, t = 0, nbars, b, e, last_note, durs_seen = 0
    cdef int first_dur = -1
    cdef bint rh_seen, mel_seen
    for k in range(N_PARTS):
        out[k] = 0.0
    for i in range(n):                             # notes (rests skipped), bars
        pos[i] = t % bar_len
        b = t // bar_len
        t += dur[i]
        if pitch[i] >= 0:
            notes[m] = pitch[i]
            m += 1
            if first_dur < 0:
                first_dur = dur[i]
            elif dur[i] != first_dur:
                durs_seen = 1
    for i in range(m):
        if not (scale >> (notes[i] % 12)) & 1:
            out[0] += 1
        run = run + 1 if i > 0 and notes[i] == notes[i - 1] else 1
        if run >= 4:
            out[4] += 1
        if i > 0:
            iv = notes[i] - notes[i - 1]
            if iabs(iv) > 12:
                out[5] += 1
            if iabs(iv) > 7:
                nxt = notes[i + 1] - notes[i] if i + 1 < m else 0
                if not (iv * nxt < 0 and 1 <= iabs(nxt) <= 2):
                    out[5] += 1
        if i >= 3 and notes[i] == notes[i - 2] and notes[i - 1] == notes[i - 3] \
                and notes[i] != notes[i - 1]:
            out[6] += 1
    if m > 0:
        out[1] = 1.0 if notes[m - 1] % 12 == tonic else -1.0
    for i in range(n - 1, -1, -1):
        if pitch[i] >= 0:
            out[2] = 1.0 if dur[i] >= 4 else 0.0
            break
    out[9] = 0.0 if durs_seen else 1.0
    if n == 0:
        return
    # bar b holds events [bar_start[b], bar_start[b + 1])
    t = 0
    nbars = 0
    for i in range(n):
        b = t // bar_len
        while nbars <= b:
            bar_start[nbars] = i
            nbars += 1
        t += dur[i]
    bar_start[nbars] = n
    b = 3
    while b < nbars - 1:
        if bar_start[b + 1] > bar_start[b]:
            e = bar_start[b + 1] - 1
            last_note = -1
            for i in range(e, bar_start[b] - 1, -1):
                if pitch[i] >= 0:
                    last_note = pitch[i]
                    break
            if (dur[e] >= 4 or pitch[e] < 0) and last_note >= 0 and (chord >> (last_note % 12)) & 1:
                out[3] += 1
        b += 4
    for b in range(1, nbars):
        rh_seen = False
        mel_seen = False
        for c in range(b):
            if not rh_seen and same_bar(pitch, dur, pos, bar_start[b], bar_start[b + 1],
                                        bar_start[c], bar_start[c + 1], True):
                rh_seen = True
            if not mel_seen and same_bar(pitch, dur, pos, bar_start[b], bar_start[b + 1],
                                         bar_start[c], bar_start[c + 1], False):
                mel_seen = True
        if rh_seen and not mel_seen:
            out[7] += 1
        if same_bar(pitch, dur, pos, bar_start[b], bar_start[b + 1], bar_start[b - 1],
                    bar_start[b], True) and same_bar(pitch, dur, pos, bar_start[b],
                                                     bar_start[b + 1], bar_start[b - 1],
                                                     bar_start[b], False):
            out[8] += 1


def theory_parts_batch(pitches, durations, lengths, bar_lens, minor):
    """See the module docstring."""
    cdef const int[:, :] p = np.ascontiguousarray(pitches, dtype=np.int32)
    cdef const int[:, :] d = np.ascontiguousarray(durations, dtype=np.int32)
    cdef const int[:] ln = np.ascontiguousarray(lengths, dtype=np.int32)
    cdef const int[:] bl = np.ascontiguousarray(bar_lens, dtype=np.int32)
    cdef const unsigned char[:] mi = np.ascontiguousarray(minor, dtype=np.uint8)
    cdef Py_ssize_t nb = p.shape[0], tt = p.shape[1], i
    if d.shape[0] != nb or d.shape[1] != tt or ln.shape[0] != nb or bl.shape[0] != nb \
            or mi.shape[0] != nb:
        raise ValueError("pitches/durations [B, T] and lengths, bar_lens, minor [B] must agree")
    for i in range(nb):
        if not 0 <= ln[i] <= tt or bl[i] <= 0:
            raise ValueError(f"row {i}: length {ln[i]} not in [0, {tt}] or bar length "
                             f"{bl[i]} <= 0")
    if nb and np.min(np.asarray(d)[np.arange(tt)[None, :] < np.asarray(ln)[:, None]],
                     initial=1) <= 0:
        raise ValueError("durations must be positive")
    out = np.zeros((nb, N_PARTS), np.float64)
    cdef double[:, :] o = out
    cdef int[:] notes = np.zeros(tt + 1, np.int32)
    cdef int[:] pos = np.zeros(tt + 1, np.int32)
    cdef int total_max = int(np.max(np.asarray(d).sum(axis=1), initial=0))
    cdef int[:] bar_start = np.zeros(tt + total_max + 2, np.int32)
    with nogil:
        for i in range(nb):
            score_one(p[i], d[i], ln[i], bl[i], mi[i] != 0, notes, pos, bar_start, o[i])
    return out
