# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Melody environment: music-theory rewards in the spirit of Magenta's RL Tuner (C speed).

An episode composes one melody in C major, 8 steps (eighth notes) per bar, ``bars`` uniform in
``[bars_min, bars_max]``. Actions ``0..24`` are the pitches MIDI 60..84 (C4..C6, two octaves).

State (small enough to be tabular)::

    state = (position * 26 + last) * 12 + interval
    position  step % 16 (place in the 2-bar phrase), or 16 on the melody's final step
    last      0 before the first note, else 1 + pitch index of the previous note
    interval  bucket of the previous move: 0 none, 1/2/3 the note has now been played
              2/3/4+ times in a row, 4/5 step up/down (1-2 semitones), 6/7 skip up/down (3-4),
              8/9 leap up/down (5-7), 10/11 large leap up/down (> 7, more than a fifth)

so ``n_states = 17 * 26 * 12 = 5304`` and ``n_actions = 25``.

Reward of playing pitch ``p`` at step ``t`` (the sum, in this order; weights are attributes):
    ``out_of_key`` if p is not in C major; ``tonic_start`` for a C on a phrase start
    (t % 16 == 0); ``tonic_end`` for a C on a phrase end (t % 16 == 15); on the final step
    ``final_tonic`` for a C, else ``final_other``; after the first note, by interval size:
    ``repeat`` (0, plus ``excess_repeat`` from the 4th equal note in a row on), ``step`` (1-2),
    ``skip`` (3-4), ``leap`` (5-7), ``big_leap`` (8-12), ``huge_leap`` (> 12); ``trill`` when the
    last four notes alternate between two pitches (A B A B); after a leap of more than a fifth,
    ``resolved`` if this move goes the opposite way by 1-4 semitones, else ``unresolved``;
    the style prior ``style_weight * style[last, p]`` (``style`` a float64 ``(26, 25)`` table,
    e.g. bigram log-probabilities of Bach soprano lines relative to uniform; row 0 is the
    first note); on the last step of every bar, ``motif`` if the bar holds >= 3
    distinct pitches and additionally ``repeated_motif`` if an earlier such bar has the same
    interval pattern (a motif repeated, transposition allowed).

Python entry points
-------------------
``train_melody_agent(episodes, *, alpha=0.1, gamma=0.8, epsilon=0.2, epsilon_decay=1.0,
epsilon_min=0.0, seed=0, q=None, algorithm="q", **env_kwargs) -> (q, stats)``
    Tabular Q-learning of :class:`MelodyEnv` through the generic ``fastcore._core.train_q`` loop
    (GIL released, no Python objects per step). ``q`` float64 ``(5304, 25)`` (fresh zeros when
    None, updated in place otherwise); ``stats`` is ``train_q``'s dict (per-episode
    ``returns``/``lengths`` and total ``updates``). ``env_kwargs`` go to :class:`MelodyEnv`
    (bars_min, bars_max, style_weight and the reward weights named above).

``MelodyEnv(...).rollout(n_steps, seed)`` runs uniformly random actions and returns
``(states, actions, rewards, dones)``; ``fastcore.reference_envs.MelodyEnvPy`` reproduces it
exactly (tests). ``MelodyEnv.melody()`` returns the current episode's notes as MIDI pitches.
"""
from libc.stdint cimport int64_t, uint64_t

import numpy as np

from fastcore._core cimport Env, Rng, rng_below, rng_next, rng_uniform

from fastcore import _core

cdef enum:
    N_PITCH = 25
    LOW_MIDI = 60
    N_POS = 17
    N_LAST = 26
    N_IB = 12
    MAXBARS = 16
    MAXLEN = 128
    MAJOR_MASK = 0xAB5   # pitch classes 0 2 4 5 7 9 11


cdef inline int interval_bucket(int iv, int rep) noexcept nogil:
    cdef int a = iv if iv >= 0 else -iv
    if a == 0:
        return 1 if rep <= 2 else (2 if rep == 3 else 3)
    if a <= 2:
        return 4 if iv > 0 else 5
    if a <= 4:
        return 6 if iv > 0 else 7
    if a <= 7:
        return 8 if iv > 0 else 9
    return 10 if iv > 0 else 11


cdef class MelodyEnv(Env):
    """One melody per episode; see the module docstring."""

    cdef public int bars_min, bars_max
    cdef public double out_of_key, tonic_start, tonic_end, final_tonic, final_other
    cdef public double repeat, excess_repeat, step_w, skip, leap, big_leap, huge_leap
    cdef public double trill, resolved, unresolved, motif, repeated_motif, style_weight
    cdef int length, t, last, prev_iv, rep, ib
    cdef int hist[MAXLEN]
    cdef double style[N_LAST * N_PITCH]

    def __init__(self, *, int bars_min=1, int bars_max=8, style=None, double style_weight=0.0,
                 double out_of_key=-1.0, double tonic_start=1.0, double tonic_end=1.0,
                 double final_tonic=2.0, double final_other=-2.0, double repeat=-0.2,
                 double excess_repeat=-1.5, double step=0.3, double skip=0.1, double leap=-0.2,
                 double big_leap=-0.8, double huge_leap=-1.5, double trill=-0.5,
                 double resolved=0.5, double unresolved=-1.0, double motif=0.3,
                 double repeated_motif=1.0):
        if not 1 <= bars_min <= bars_max <= MAXBARS:
            raise ValueError(f"need 1 <= bars_min <= bars_max <= {MAXBARS}")
        self.bars_min = bars_min
        self.bars_max = bars_max
        cdef int i
        if style is None:
            for i in range(N_LAST * N_PITCH):
                self.style[i] = 0.0
        else:
            arr = np.ascontiguousarray(style, dtype=np.float64)
            if arr.shape != (N_LAST, N_PITCH) or not np.all(np.isfinite(arr)):
                raise ValueError(f"style must be a finite ({N_LAST}, {N_PITCH}) table")
            flat = arr.ravel()
            for i in range(N_LAST * N_PITCH):
                self.style[i] = flat[i]
        self.style_weight = style_weight
        self.out_of_key = out_of_key
        self.tonic_start = tonic_start
        self.tonic_end = tonic_end
        self.final_tonic = final_tonic
        self.final_other = final_other
        self.repeat = repeat
        self.excess_repeat = excess_repeat
        self.step_w = step
        self.skip = skip
        self.leap = leap
        self.big_leap = big_leap
        self.huge_leap = huge_leap
        self.trill = trill
        self.resolved = resolved
        self.unresolved = unresolved
        self.motif = motif
        self.repeated_motif = repeated_motif
        self.n_states = N_POS * N_LAST * N_IB
        self.n_actions = N_PITCH
        self.length = 8 * bars_min
        self.t = 0
        self.last = -1
        self.prev_iv = 0
        self.rep = 0
        self.ib = 0

    cdef inline int observe(self) noexcept nogil:
        cdef int pos = 16 if self.t == self.length - 1 else self.t % 16
        return (pos * N_LAST + self.last + 1) * N_IB + self.ib

    cdef int reset(self, Rng* rng) noexcept nogil:
        self.length = 8 * (self.bars_min + rng_below(rng, self.bars_max - self.bars_min + 1))
        self.t = 0
        self.last = -1
        self.prev_iv = 0
        self.rep = 0
        self.ib = 0
        return self.observe()

    cdef double bar_reward(self, int bar) noexcept nogil:
        cdef int i, b, start = 8 * bar
        cdef bint same
        cdef double r = 0.0
        if self.bar_distinct(bar) < 3:
            return r
        r += self.motif
        for b in range(bar):
            if self.bar_distinct(b) < 3:
                continue
            same = True
            for i in range(1, 8):
                if self.hist[8 * b + i] - self.hist[8 * b + i - 1] != \
                        self.hist[start + i] - self.hist[start + i - 1]:
                    same = False
                    break
            if same:
                r += self.repeated_motif
                break
        return r

    cdef int bar_distinct(self, int bar) noexcept nogil:
        cdef int i, j, distinct = 0, start = 8 * bar
        cdef bint same
        for i in range(8):
            same = False
            for j in range(i):
                if self.hist[start + j] == self.hist[start + i]:
                    same = True
                    break
            if not same:
                distinct += 1
        return distinct

    cdef int step(self, int state, int action, Rng* rng, double* reward,
                  bint* done) noexcept nogil:
        cdef int p = action
        cdef int t = self.t
        cdef int pc = (p + LOW_MIDI) % 12
        cdef int phase = t % 16
        cdef int iv = 0, a, new_rep
        cdef double r = 0.0
        if not ((MAJOR_MASK >> pc) & 1):
            r += self.out_of_key
        if phase == 0 and pc == 0:
            r += self.tonic_start
        if phase == 15 and pc == 0:
            r += self.tonic_end
        if t == self.length - 1:
            if pc == 0:
                r += self.final_tonic
            else:
                r += self.final_other
        new_rep = 1
        if self.last >= 0:
            iv = p - self.last
            a = iv if iv >= 0 else -iv
            if a == 0:
                new_rep = self.rep + 1
                r += self.repeat
                if new_rep >= 4:
                    r += self.excess_repeat
            elif a <= 2:
                r += self.step_w
            elif a <= 4:
                r += self.skip
            elif a <= 7:
                r += self.leap
            elif a <= 12:
                r += self.big_leap
            else:
                r += self.huge_leap
            if t >= 3 and a != 0 and p == self.hist[t - 2] and self.last == self.hist[t - 3]:
                r += self.trill
            if self.ib >= 10:
                if iv * self.prev_iv < 0 and 1 <= a <= 4:
                    r += self.resolved
                else:
                    r += self.unresolved
        r += self.style_weight * self.style[(self.last + 1) * N_PITCH + p]
        self.hist[t] = p
        if t % 8 == 7:
            r += self.bar_reward(t // 8)
        if self.last >= 0:
            self.ib = interval_bucket(iv, new_rep)
        else:
            self.ib = 0
        # the first note has no interval: ib stays 0 ("none") for the second step's state
        self.prev_iv = iv
        self.rep = new_rep
        self.last = p
        self.t = t + 1
        reward[0] = r
        done[0] = self.t >= self.length
        return self.observe()

    # ------------------------------------------------------------------ Python-side helpers

    def melody(self):
        """MIDI pitches played so far in the current episode."""
        return [self.hist[i] + LOW_MIDI for i in range(self.t)]


def train_melody_agent(long episodes, *, double alpha=0.1, double gamma=0.8,
                       double epsilon=0.2, double epsilon_decay=1.0, double epsilon_min=0.0,
                       uint64_t seed=0, q=None, algorithm="q", **env_kwargs):
    """Q-learning of the melody agent in C; returns ``(q, stats)`` (see the module docstring)."""
    env = MelodyEnv(**env_kwargs)
    if q is None:
        q = np.zeros((env.n_states, env.n_actions), dtype=np.float64)
    stats = _core.train_q(env, q, episodes, alpha=alpha, gamma=gamma, epsilon=epsilon,
                          epsilon_decay=epsilon_decay, epsilon_min=epsilon_min,
                          max_steps=MAXLEN, seed=seed, algorithm=algorithm)
    return q, stats
