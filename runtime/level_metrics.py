"""Level metrics from the tiles: shortest path, disjoint routes, forced hazards, hazard-free
route, treasure off the shortest paths, floor share, unreachable floor, regions (pure Python;
the C twin is ``measure`` in ``fastcore/level_env.pyx``). Used by the editor's final reward
(``runtime.level_env``) and by ``Level.achieved``."""
from __future__ import annotations

from collections import deque

WALL, FLOOR, HAZARD, TREASURE = 0, 1, 2, 3
_WALKABLE = bytes([0] + [1] * 255)      # tile code -> 1 walkable, 0 wall (bytes.translate)
_DIGITS = bytes(range(48, 50)) + bytes(254)     # 0/1 -> "0"/"1" (for int(..., 2))


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


def _bits(walk) -> int:
    """A 0/1 bytearray as an int (bit c set: tile c walkable)."""
    return int(bytes(walk).translate(_DIGITS)[::-1], 2)


def _spread(cur: int, n: int) -> int:
    """The 4-neighbours of a set of tiles (the border is wall: no wrap reaches a walkable
    tile)."""
    return (cur << 1) | (cur >> 1) | (cur << n) | (cur >> n)


def _layers(walk_bits: int, n: int, start: int, stop: int = -1) -> tuple:
    """A BFS as bit sets: (layers, unreached) with ``layers[d]`` the tiles at distance d from
    ``start`` and ``unreached`` the walkable tiles never reached (``stop``: end once that
    tile is reached)."""
    cur = 1 << start
    rem = walk_bits & ~cur
    layers = [cur]
    while not (stop >= 0 and cur >> stop & 1):
        cur = ((cur << 1) | (cur >> 1) | (cur << n) | (cur >> n)) & rem
        if not cur:
            break
        rem ^= cur
        layers.append(cur)
    return layers, rem


def _depth(layers: list, c: int) -> int:
    for d, layer in enumerate(layers):
        if layer >> c & 1:
            return d
    return -1


def separating_tiles(walk, n: int, s: int, g: int, ds: list, walk_bits: int = None) -> tuple:
    """(routes, tiles every S-G route steps on) for a reachable G; ``ds`` = the BFS layers
    from S (``_layers``).

    Takes one shortest path P = p0..pk (S..G) and flood-fills the walkable tiles off P: each
    such region touching P at indices lo < hi gives a bypass of p(lo+1)..p(hi-1). An inner
    tile of P that no bypass covers separates S from G (a shortest path has no chords), so
    there are 2 vertex-disjoint routes iff no inner tile is uncovered (Menger); for adjacent
    S and G, iff some region touches both."""
    steps = (1, n, -1, -n)
    path, c = [g], g
    for d in range(_depth(ds, g) - 1, -1, -1):
        layer = ds[d]
        for st in steps:
            x = c + st
            if walk[x] and layer >> x & 1:
                c = x
                break
        path.append(c)
    path.reverse()
    k = len(path) - 1
    index = {c: i for i, c in enumerate(path)}
    on_path = 0
    for c in path:
        on_path |= 1 << c
    off = (_bits(walk) if walk_bits is None else walk_bits) & ~on_path
    cover = [0] * (k + 2)
    both = False
    for c0 in path:
        for st in steps:
            start = c0 + st
            if not off >> start & 1:
                continue
            region = cur = 1 << start
            off ^= cur
            while cur:
                cur = ((cur << 1) | (cur >> 1) | (cur << n) | (cur >> n)) & off
                off ^= cur
                region |= cur
            touch = _spread(region, n) & on_path
            lo, hi = k, 0
            while touch:
                low = touch & -touch
                touch ^= low
                i = index[low.bit_length() - 1]
                lo = i if i < lo else lo
                hi = i if i > hi else hi
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
    reachable from S; regions: connected areas of walkable tiles. The searches are BFS over
    bit sets of tiles (Python ints), one layer per operation: the tiles are the border-walled
    ``n x n`` grid, S and G on it."""
    tiles = bytes(tiles)
    if not (0 <= s < n * n and 0 <= g < n * n):
        raise ValueError(f"S and G must be tiles of the {n}x{n} level, got {s}, {g}")
    walk = tiles.translate(_WALKABLE)
    walk_bits = _bits(walk)
    ds, unreached = _layers(walk_bits, n, s)
    path_len = _depth(ds, g)
    n_walk = walk.count(1)
    hazards = _where(tiles, HAZARD)
    treasure = _where(tiles, TREASURE)
    routes, forced = 0, 0
    if path_len >= 0:
        routes, cut = separating_tiles(walk, n, s, g, ds, walk_bits)
        forced = sum(1 for c in cut if tiles[c] == HAZARD)
    if hazards and path_len >= 0:
        nohaz = walk_bits
        for h in hazards:
            nohaz &= ~(1 << h)
        hazard_free = 1 if _layers(nohaz, n, s, g)[0][-1] >> g & 1 else 0
    else:
        hazard_free = 1 if path_len >= 0 else 0
    off = 0
    if treasure:
        dg = _layers(walk_bits, n, g)[0]
        for t in treasure:
            a, b = _depth(ds, t), _depth(dg, t)
            off += a < 0 or b < 0 or a + b > path_len
    unreachable = bin(unreached).count("1")
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
