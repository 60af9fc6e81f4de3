"""The level kind's designer targets and the target score of a measured level.

Shared by the editor environment (``runtime.level_env``, the twin of ``fastcore/level_env.pyx``,
which computes the same numbers in C), the runtime and the evaluation.
"""
from __future__ import annotations


def lattice(n: int) -> int:
    return (n - 1) // 2


def targets(m: int, d: float) -> tuple:
    """Difficulty ``d`` in [0, 1] -> (path L in lattice steps, ring wanted, hazards H,
    treasure T, floor share F). The tile path length is 2 L."""
    path = int((0.5 + d) * m + 0.5)
    if path < 2:
        path = 2
    ring = d >= 0.25
    hazards = int(d * path / 3.0 + 0.5) if ring else 0
    treasure = 1 + int(2.0 * d + 0.5)
    floor = 0.28 + 0.08 * d
    return path, ring, hazards, treasure, floor


def path_score(lattice_len: int, path: int) -> float:
    s = 1.0 - abs(lattice_len - path) / (0.3 * path + 1.0)
    return s if s > 0.0 else 0.0


def score(met: tuple, tg: tuple) -> float:
    """Target score in [0, 5] of the measured level ``met`` (see ``measure``) for targets ``tg``:
    path + routes + hazards + treasure + floor, each in [0, 1]."""
    path_len, routes, hazards, forced, hazard_free, treasure, off_route, floor_share = met[:8]
    path, ring, h_want, t_want, f_want = tg
    total = path_score(path_len // 2, path) if path_len >= 0 else 0.0
    if ring:
        total += 1.0 if routes >= 2 else 0.0
    else:
        total += 1.0
    total += hazard_term(met, tg)
    total += (off_route if off_route < t_want else t_want) / t_want
    f = floor_share / f_want
    total += f if f < 1.0 else 1.0
    return total


def hazard_term(met: tuple, tg: tuple) -> float:
    """The hazards' part of ``score``: hazards not forced, up to the target, half credit
    without a hazard-free route (none wanted: 1 without hazards, else 0.5)."""
    hazards, forced, hazard_free, h_want = met[2], met[3], met[4], tg[2]
    if h_want == 0:
        return 1.0 if hazards == 0 else 0.5
    ok = hazards - forced
    return (ok if ok < h_want else h_want) / h_want * (0.5 + 0.5 * hazard_free)


def hazard_credit(hazards: int, h_want: int) -> float:
    """What placing ``hazards`` hazards has paid so far: half of each one's share of the
    hazard term up to the target (the other half, or a refund, comes when phase C starts and
    the routes are known); none wanted: -0.5 from the first one."""
    if h_want == 0:
        return -0.5 if hazards else 0.0
    return 0.5 * (hazards if hazards < h_want else h_want) / h_want
