"""The level editor's lattice geometry, state layout and action masks (pure Python).

Part of the rule book ``runtime/level_env.py`` (which re-exports every name here; its docstring
specifies the state and the masks); the C twin is ``fastcore/level_env.pyx``.
"""
from __future__ import annotations

from runtime.level_targets import lattice

DX = (1, 0, -1, 0)            # right, down, left, up
DY = (0, 1, 0, -1)
PHASE_A, PHASE_B, PHASE_C, DONE = 0, 1, 2, 3
N_NB = 256
A_FEAT, B_FEAT, C_FEAT = 28, 28, 16
N_FEAT = A_FEAT + B_FEAT + C_FEAT
N_STATES = N_NB * N_FEAT
N_ACTIONS = 7
ACTIONS = ("right", "down", "left", "up", "mark", "hazard", "treasure")
ALL_ACTIONS = (1 << N_ACTIONS) - 1


def state_mask(state: int) -> int:
    """The actions allowed in ``state`` as bits (bit ``a`` set: action ``a`` may be chosen);
    C twin ``fastcore.level_env.state_mask``. Never empty."""
    nb, f = divmod(state, N_FEAT)
    allowed = 0
    if f < A_FEAT:                                       # A: 0 refused; hazard needs an edge
        allowed = 0b1010000 | (0b0100000 if f & 1 else 0)
        for k in range(4):
            if nb >> 2 * k & 3:
                allowed |= 1 << k
    elif f < A_FEAT + B_FEAT:                            # B: no mark, no hazard
        allowed = 0b1001111
    else:                                                # C: carve; end a non-empty branch
        c = f - A_FEAT - B_FEAT
        for k in range(4):
            if nb >> 2 * k & 3 == 1:
                allowed |= 1 << k
        if c >> 2:
            allowed |= 0b0010000 | (0b1000000 if c >> 1 & 1 else 0)
    return allowed or ALL_ACTIONS


_MASKS: list = []


def state_masks() -> list:
    """``state_mask`` of every state (computed once)."""
    if not _MASKS:
        _MASKS.extend(state_mask(s) for s in range(N_STATES))
    return _MASKS


# ------------------------------------------------------------------------------ the editor
def gap_bucket(gap: int) -> int:
    if gap <= -2:
        return 0
    if gap <= 1:
        return gap + 2
    return 4 if gap <= 3 else 5 if gap <= 7 else 6


_GEOMETRY: dict = {}


def geometry(n: int) -> tuple:
    """(junction tiles, in-lattice neighbour junctions, links, neighbour bit masks, shift
    masks) of an ``n x n`` level (constant)."""
    hit = _GEOMETRY.get(n)
    if hit is None:
        m = lattice(n)
        jtile = tuple((2 * (j // m) + 1) * n + 2 * (j % m) + 1 for j in range(m * m))
        nbrs = tuple(tuple((j // m + DY[k]) * m + j % m + DX[k] for k in range(4)
                           if 0 <= j % m + DX[k] < m and 0 <= j // m + DY[k] < m)
                     for j in range(m * m))
        # per junction, per direction: (neighbour junction, edge tile, status weight) or None
        links = tuple(tuple(((j // m + DY[k]) * m + j % m + DX[k], jtile[j] + DX[k] + DY[k] * n,
                             4 ** k)
                            if 0 <= j % m + DX[k] < m and 0 <= j // m + DY[k] < m else None
                            for k in range(4))
                      for j in range(m * m))
        nbmask = tuple(sum(1 << x for x in nb) for nb in nbrs)
        not_last = sum(1 << j for j in range(m * m) if j % m != m - 1)
        not_first = sum(1 << j for j in range(m * m) if j % m != 0)
        hit = _GEOMETRY[n] = (jtile, nbrs, links, nbmask, (not_last, not_first))
    return hit


_POPCOUNT = bytes(bin(b).count("1") for b in range(256))
_BIT_AT = tuple(tuple(i for i in range(8) if b >> i & 1) for b in range(256))


def select_bit(x: int, k: int) -> int:
    """The index of the ``k``-th (from 0) set bit of ``x``, counting from bit 0."""
    base = 0
    for byte in x.to_bytes((x.bit_length() + 7) >> 3, "little"):
        c = _POPCOUNT[byte]
        if k < c:
            return base + _BIT_AT[byte][k]
        k -= c
        base += 8
    raise ValueError("k is not below the number of set bits")


def e_bucket(e: int) -> int:
    """Return-arm excess (its length if it heads for S now, minus G's depth) -> 1..6."""
    if e <= -3:
        return 1
    if e <= 0:
        return e + 4
    return 5 if e <= 2 else 6


def slack_bucket(s: int) -> int:
    """Phase B steps left minus the moves to S -> 0..3."""
    return 0 if s < 0 else 1 if s <= 3 else 2 if s <= 10 else 3
