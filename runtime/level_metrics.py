"""Level metrics from the tiles: shortest path, disjoint routes, forced hazards, hazard-free
route, treasure off the shortest paths, floor share, unreachable floor, regions (pure Python;
the C twin is ``measure`` in ``fastcore/level_env.pyx``). Used by the editor's final reward
(``runtime.level_env``) and by ``Level.achieved``."""
from __future__ import annotations

from collections import deque

WALL, FLOOR, HAZARD, TREASURE = 0, 1, 2, 3
_WALKABLE = bytes([0] + [1] * 255)      # tile code -> 1 walkable, 0 wall (bytes.translate)


def _bfs(walk, n: int, start: int, blocked: int = -1) -> list:
    """Distances over walkable tiles (flat y * n + x) from ``start``; -1 unreachable."""
    dist = [-1] * (n * n)
    dist[start] = 0
    dq = deque([start])
    steps = (1, n, -1, -n)
    while dq:
        c = dq.popleft()
        dc = dist[c] + 1
        for s in steps:
            nc = c + s
            if walk[nc] and dist[nc] < 0 and nc != blocked:
                dist[nc] = dc
                dq.append(nc)
    return dist


def separating_tiles(walk, n: int, s: int, g: int, ds: list) -> tuple:
    """(routes, tiles every S-G route steps on) for a reachable G; ``ds`` = BFS from S.

    Takes one shortest path P = p0..pk (S..G) and flood-fills the walkable tiles off P: each
    such region touching P at indices lo < hi gives a bypass of p(lo+1)..p(hi-1). An inner
    tile of P that no bypass covers separates S from G (a shortest path has no chords), so
    there are 2 vertex-disjoint routes iff no inner tile is uncovered (Menger); for adjacent
    S and G, iff some region touches both."""
    steps = (1, n, -1, -n)
    path, c = [g], g
    while c != s:
        for st in steps:
            d = c + st
            if walk[d] and ds[d] == ds[c] - 1:
                c = d
                break
        path.append(c)
    path.reverse()
    k = len(path) - 1
    index = {c: i for i, c in enumerate(path)}
    seen = bytearray(n * n)
    for c in path:
        seen[c] = 1
    cover = [0] * (k + 2)
    both = False
    for c0 in path:
        for st in steps:
            start = c0 + st
            if not walk[start] or seen[start]:
                continue
            seen[start] = 1
            lo, hi, stack = k, 0, [start]
            while stack:
                c = stack.pop()
                for st2 in steps:
                    d = c + st2
                    i = index.get(d)
                    if i is not None:
                        lo = i if i < lo else lo
                        hi = i if i > hi else hi
                    elif walk[d] and not seen[d]:
                        seen[d] = 1
                        stack.append(d)
            if lo == 0 and hi == k:
                both = True
            if hi - lo >= 2:
                cover[lo + 1] += 1
                cover[hi] -= 1
    if k == 1:
        return (2 if both else 1), []
    cut, run = [], 0
    for i in range(1, k):
        run += cover[i]
        if run == 0:
            cut.append(path[i])
    return (1 if cut else 2), cut


def measure(tiles, n: int, s: int, g: int) -> tuple:
    """Level metrics from the tile codes (flat ``y * n + x``, WALL/FLOOR/HAZARD/TREASURE) and the
    S and G tiles: ``(path_length, routes, hazards, hazards_forced, hazard_free_route,
    treasure, treasure_off_route, floor_share, unreachable_floor, regions)``.

    path_length: shortest S-G path in tiles (-1 if none); routes: vertex-disjoint S-G routes
    (at most 2); a hazard is forced when every S-G route steps on it (the C twin counts both
    with a max flow and one BFS per hazard: two algorithms, the same numbers); hazard_free_route: G is
    reachable from S without stepping on any hazard; treasure_off_route: treasure on no
    shortest S-G path; floor_share: walkable tiles / n^2; unreachable_floor: walkable tiles not
    reachable from S; regions: connected areas of walkable tiles."""
    tiles = bytes(tiles)
    walk = bytearray(tiles.translate(_WALKABLE))
    ds = _bfs(walk, n, s)
    dg = _bfs(walk, n, g)
    path_len = ds[g]
    n_walk = walk.count(1)
    unreachable = n_walk - (n * n - ds.count(-1)) + (0 if walk[s] else 1)
    hazards = _where(tiles, HAZARD)
    treasure = _where(tiles, TREASURE)
    routes, forced = 0, 0
    if path_len >= 0:
        routes, cut = separating_tiles(walk, n, s, g, ds)
        forced = sum(1 for c in cut if tiles[c] == HAZARD)
    if hazards and path_len >= 0:
        nohaz = bytearray(walk)
        for h in hazards:
            nohaz[h] = 0
        hazard_free = 1 if _bfs(nohaz, n, s)[g] >= 0 else 0
    else:
        hazard_free = 1 if path_len >= 0 else 0
    off = sum(1 for t in treasure
              if ds[t] < 0 or dg[t] < 0 or ds[t] + dg[t] > path_len)
    regions = 1 if unreachable == 0 and n_walk else _regions(walk, n)
    return (path_len, routes, len(hazards), forced, hazard_free, len(treasure), off,
            n_walk / (n * n), unreachable, regions)


def _where(tiles, code: int) -> list:
    """Indices of the tiles with this code (a C-speed scan)."""
    out, i = [], tiles.find(code)
    while i >= 0:
        out.append(i)
        i = tiles.find(code, i + 1)
    return out


def _regions(walk, n: int) -> int:
    seen = bytearray(n * n)
    count = 0
    for c in range(n * n):
        if walk[c] and not seen[c]:
            count += 1
            for d, v in enumerate(_bfs(walk, n, c)):
                if v >= 0:
                    seen[d] = 1
    return count


METRIC_NAMES = ("path_length", "routes", "hazards", "hazards_forced", "hazard_free_route",
                "treasure", "treasure_off_route", "floor_share", "unreachable_floor", "regions")


def parse_rows(rows: list[str]) -> tuple:
    """Rows -> (tiles bytearray, n, S tile, G tile) for ``measure``; S/G -1 when absent."""
    n = len(rows)
    text = "".join(rows)
    code = {"#": WALL, "^": HAZARD, "$": TREASURE}
    tiles = bytearray(code.get(ch, FLOOR) for ch in text)
    return tiles, n, text.find("S"), text.find("G")
