# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Level editing environment (PCGRL turtle on a corridor lattice), at C speed.

The rules are those of ``runtime/level_env.py`` (its docstring is the specification: lattice,
phases, actions, action masks, observation, rewards, metrics); this file runs them without the
GIL for the Q-learning loop below and the pure-Python ``runtime.level_env.Editor`` is its
bit-exact twin (``fastcore.reference_level.LevelEnvPy``; parity tests in tests/test_level.py).

Per episode the environment draws (SplitMix64, in this order): the size ``n`` uniform in
``[size_min, size_max]``, the difficulty ``d`` uniform in [0, 1), whether the path target comes
from ``d`` (probability 1/2) or is uniform in ``1 .. 2 m`` (so that explicit ``path_length=``
requests are in the training distribution), then the start junction; the branch roots of
phase C come from the same stream. The targets go into the observation (``targets`` in the
rule book).

Speed: a step is O(1) (the carve, the neighbour statuses, the phase feature), except that in
phases A (two routes wanted) and B the observation reads a BFS from S through the uncarved
junctions, O(m^2), recomputed only after a carve (``reach``); the full level
metrics (shortest path, disjoint routes by max flow, forced hazards, hazard-free route,
treasure off the shortest paths, floor share, unreachable floor, regions) are computed once, at
the end of the episode, for the final reward; ``LevelEnv.metrics()`` exposes them.

Python entry points
-------------------
``train_level_agent(episodes, *, alpha=0.1, gamma=0.98, epsilon=0.2, epsilon_decay=1.0,
epsilon_min=0.0, max_steps=20000, seed=0, q=None, algorithm="q", **env_kwargs) -> (q, stats)``
    Tabular Q-learning (GIL released) with the semantics of ``fastcore._core.train_q``, except
    that exploration, the greedy action and the target's max range over the actions the state
    allows (``state_mask``, twin ``runtime.level_env.state_mask``); ``env_kwargs``:
    ``size_min``, ``size_max``. ``action_masks()`` lists the masks of all states.
``LevelEnv(...).rollout(n_steps, seed)`` uniformly random actions (the benchmark and the
parity tests); ``LevelEnv.tiles()``, ``.metrics()``, ``.targets()`` inspect the episode.
"""
from libc.stdint cimport int64_t, uint64_t
from libc.math cimport fabs

import numpy as np

from fastcore._core cimport (Env, EpisodeLog, Rng, episode_log, rng_below, rng_uniform,
                             seeded_rng)

from fastcore import _core

cdef enum:
    MAXN = 64
    MAXCELLS = 4096
    MAXJ = 1024
    N_NB = 256
    A_FEAT = 28
    B_FEAT = 28
    C_FEAT = 16
    N_FEAT = 72
    N_STATES = 256 * 72
    N_ACTIONS = 7
    WALL = 0
    FLOOR = 1
    HAZARD = 2
    TREASURE = 3
    PHASE_A = 0
    PHASE_B = 1
    PHASE_C = 2
    DONE = 3

cdef double STEP_REWARD = -0.01
cdef double BUMP_REWARD = -0.05
cdef double RING_REWARD = 1.0

cdef int DXS[4]
cdef int DYS[4]
DXS[:] = [1, 0, -1, 0]
DYS[:] = [0, 1, 0, -1]


cdef struct Metrics:
    int path_len, routes, hazards, forced, hazard_free, treasure, off_route
    double floor_share
    int unreachable, regions


cdef struct Targets:
    int path
    int ring
    int hazards
    int treasure
    double floor


cdef inline int iabs(int v) noexcept nogil:
    return v if v >= 0 else -v


cdef inline int e_bucket(int e) noexcept nogil:
    if e <= -3:
        return 1
    if e <= 0:
        return e + 4
    return 5 if e <= 2 else 6


cdef inline int slack_bucket(int sl) noexcept nogil:
    if sl < 0:
        return 0
    if sl <= 3:
        return 1
    return 2 if sl <= 10 else 3


cdef inline int gap_bucket(int gap) noexcept nogil:
    if gap <= -2:
        return 0
    if gap <= 1:
        return gap + 2
    if gap <= 3:
        return 4
    if gap <= 7:
        return 5
    return 6


cdef Targets make_targets(int m, double d) noexcept nogil:
    cdef Targets t
    t.path = <int>((0.5 + d) * m + 0.5)
    if t.path < 2:
        t.path = 2
    t.ring = d >= 0.25
    t.hazards = <int>(d * t.path / 3.0 + 0.5) if t.ring else 0
    t.treasure = 1 + <int>(2.0 * d + 0.5)
    t.floor = 0.28 + 0.08 * d
    return t


cdef inline double path_score(int lattice_len, int path) noexcept nogil:
    cdef double s = 1.0 - fabs(<double>(lattice_len - path)) / (0.3 * path + 1.0)
    return s if s > 0.0 else 0.0


cdef double hazard_term(Metrics* met, Targets* tg) noexcept nogil:
    cdef int ok
    if tg.hazards == 0:
        return 1.0 if met.hazards == 0 else 0.5
    ok = met.hazards - met.forced
    return <double>(ok if ok < tg.hazards else tg.hazards) / tg.hazards \
        * (0.5 + 0.5 * met.hazard_free)


cdef double hazard_credit(int hazards, int want) noexcept nogil:
    if want == 0:
        return -0.5 if hazards else 0.0
    return 0.5 * <double>(hazards if hazards < want else want) / want


cdef double score(Metrics* met, Targets* tg) noexcept nogil:
    cdef double total = path_score(met.path_len // 2, tg.path) if met.path_len >= 0 else 0.0
    cdef int ok
    cdef double f
    if tg.ring:
        total += 1.0 if met.routes >= 2 else 0.0
    else:
        total += 1.0
    total += hazard_term(met, tg)
    total += <double>(met.off_route if met.off_route < tg.treasure else tg.treasure) / tg.treasure
    f = met.floor_share / tg.floor
    total += f if f < 1.0 else 1.0
    return total


cdef int state_mask(int state) noexcept nogil:
    """The actions allowed in ``state`` as bits (runtime ``state_mask``); never empty."""
    cdef int nb = state // N_FEAT, f = state % N_FEAT, allowed = 0, k, c
    if f < A_FEAT:
        allowed = 0b1010000 | (0b0100000 if f & 1 else 0)
        for k in range(4):
            if (nb >> (2 * k)) & 3:
                allowed |= 1 << k
    elif f < A_FEAT + B_FEAT:
        allowed = 0b1001111
    else:
        c = f - A_FEAT - B_FEAT
        for k in range(4):
            if (nb >> (2 * k)) & 3 == 1:
                allowed |= 1 << k
        if c >> 2:
            allowed |= 0b0010000 | (0b1000000 if (c >> 1) & 1 else 0)
    return allowed if allowed else (1 << N_ACTIONS) - 1


cdef inline int masked_argmax(const double* row, int mask) noexcept nogil:
    """First allowed index of the largest allowed value."""
    cdef int a, best = -1
    cdef double v = 0.0
    for a in range(N_ACTIONS):
        if (mask >> a) & 1 and (best < 0 or row[a] > v):
            v = row[a]
            best = a
    return best


cdef inline int masked_pick(int mask, int k) noexcept nogil:
    """The k-th allowed action (k from 0)."""
    cdef int a
    for a in range(N_ACTIONS):
        if (mask >> a) & 1:
            if k == 0:
                return a
            k -= 1
    return -1


cdef inline int popcount7(int mask) noexcept nogil:
    cdef int a, n = 0
    for a in range(N_ACTIONS):
        n += (mask >> a) & 1
    return n


# ------------------------------------------------------------------------------ metrics
cdef struct Scratch:
    int dist_s[MAXCELLS]
    int dist_g[MAXCELLS]
    int tmp[MAXCELLS]
    int queue[2 * MAXCELLS]
    int parent[2 * MAXCELLS]
    unsigned char walk[MAXCELLS]
    unsigned char vflow[MAXCELLS]
    unsigned char eflow[4 * MAXCELLS]


cdef void bfs(const unsigned char* walk, int n, int start, int blocked, int* dist,
              int* queue) noexcept nogil:
    cdef int c, k, nc, head = 0, tail = 1
    cdef int steps[4]
    steps[0] = 1
    steps[1] = n
    steps[2] = -1
    steps[3] = -n
    for c in range(n * n):
        dist[c] = -1
    dist[start] = 0
    queue[0] = start
    while head < tail:
        c = queue[head]
        head += 1
        for k in range(4):
            nc = c + steps[k]
            if walk[nc] and dist[nc] < 0 and nc != blocked:
                dist[nc] = dist[c] + 1
                queue[tail] = nc
                tail += 1


cdef int disjoint_routes(Scratch* w, int n, int s, int g, int cap) noexcept nogil:
    """Vertex-disjoint S-G routes, at most cap (unit max flow on in/out-split tiles)."""
    cdef int steps[4]
    cdef int flow = 0, head, tail, node, c, isout, k, d, nxt, prev, pc, pout, found, kk
    steps[0] = 1
    steps[1] = n
    steps[2] = -1
    steps[3] = -n
    for c in range(n * n):
        w.vflow[c] = 0
        for k in range(4):
            w.eflow[4 * c + k] = 0
    while flow < cap:
        for c in range(2 * n * n):
            w.parent[c] = -2
        w.parent[2 * s + 1] = -1
        w.queue[0] = 2 * s + 1
        head = 0
        tail = 1
        found = 0
        while head < tail and not found:
            node = w.queue[head]
            head += 1
            c = node >> 1
            isout = node & 1
            if isout:
                for k in range(4):
                    d = c + steps[k]
                    nxt = 2 * d
                    if w.walk[d] and not w.eflow[4 * c + k] and w.parent[nxt] == -2:
                        w.parent[nxt] = node
                        if d == g:
                            found = 1
                            break
                        w.queue[tail] = nxt
                        tail += 1
                if not found and w.vflow[c] and w.parent[2 * c] == -2:
                    w.parent[2 * c] = node
                    w.queue[tail] = 2 * c
                    tail += 1
            else:
                nxt = 2 * c + 1
                if (c == s or not w.vflow[c]) and w.parent[nxt] == -2:
                    w.parent[nxt] = node
                    w.queue[tail] = nxt
                    tail += 1
                for k in range(4):
                    d = c - steps[k]
                    nxt = 2 * d + 1
                    if w.walk[d] and w.eflow[4 * d + k] and w.parent[nxt] == -2:
                        w.parent[nxt] = node
                        w.queue[tail] = nxt
                        tail += 1
        if not found:
            break
        node = 2 * g
        while w.parent[node] != -1:
            prev = w.parent[node]
            pc = prev >> 1
            pout = prev & 1
            c = node >> 1
            if pc == c:
                w.vflow[c] = node & 1
            elif pout:
                for kk in range(4):
                    if pc + steps[kk] == c:
                        w.eflow[4 * pc + kk] = 1
            else:
                for kk in range(4):
                    if c + steps[kk] == pc:
                        w.eflow[4 * c + kk] = 0
            node = prev
        flow += 1
    return flow


cdef void measure(const unsigned char* tiles, int n, int s, int g, Scratch* w,
                  Metrics* out) noexcept nogil:
    cdef int c, h, n_walk = 0, unreachable = 0, hazards = 0, treasure = 0, off = 0, forced = 0
    cdef int path_len, hc, regions, k
    for c in range(n * n):
        w.walk[c] = 1 if tiles[c] != WALL else 0
        n_walk += w.walk[c]
    bfs(w.walk, n, s, -1, w.dist_s, w.queue)
    bfs(w.walk, n, g, -1, w.dist_g, w.queue)
    path_len = w.dist_s[g]
    for c in range(n * n):
        if w.walk[c] and w.dist_s[c] < 0:
            unreachable += 1
        if tiles[c] == HAZARD:
            hazards += 1
        elif tiles[c] == TREASURE:
            treasure += 1
            if w.dist_s[c] < 0 or w.dist_g[c] < 0 or w.dist_s[c] + w.dist_g[c] > path_len:
                off += 1
    out.path_len = path_len
    out.routes = disjoint_routes(w, n, s, g, 2) if path_len >= 0 else 0
    if path_len >= 0 and out.routes < 2:
        for h in range(n * n):
            if tiles[h] == HAZARD:
                bfs(w.walk, n, s, h, w.tmp, w.queue)
                if w.tmp[g] < 0:
                    forced += 1
    if hazards and path_len >= 0:
        for c in range(n * n):
            if tiles[c] == HAZARD:
                w.walk[c] = 0
        bfs(w.walk, n, s, -1, w.tmp, w.queue)
        out.hazard_free = 1 if w.tmp[g] >= 0 else 0
        for c in range(n * n):
            w.walk[c] = 1 if tiles[c] != WALL else 0
    else:
        out.hazard_free = 1 if path_len >= 0 else 0
    out.hazards = hazards
    out.forced = forced
    out.treasure = treasure
    out.off_route = off
    out.floor_share = <double>n_walk / (n * n)
    out.unreachable = unreachable
    if unreachable == 0 and n_walk:
        regions = 1
    else:
        regions = 0
        for c in range(n * n):
            w.parent[c] = 0
        for c in range(n * n):
            if w.walk[c] and not w.parent[c]:
                regions += 1
                bfs(w.walk, n, c, -1, w.tmp, w.queue)
                for k in range(n * n):
                    if w.tmp[k] >= 0:
                        w.parent[k] = 1
    out.regions = regions


# ------------------------------------------------------------------------------ environment
cdef class LevelEnv(Env):
    """The level editor of runtime/level_env.py in C; see the module docstrings."""

    cdef public int size_min, size_max
    cdef int n, m, s, g, pos, phase, steps, c_steps, last_edge, hazards, treasures, blen
    cdef int floor_tiles, depth_g, carves, reach_at
    cdef double paid
    cdef Targets tg
    cdef unsigned char cells[MAXCELLS]
    cdef int depth[MAXJ]
    cdef unsigned char owner[MAXJ]
    cdef int roots[MAXJ]
    cdef int jdist[MAXJ]
    cdef int jqueue[MAXJ]
    cdef Scratch work
    cdef Metrics last

    def __init__(self, *, int size_min=8, int size_max=40):
        if not 7 <= size_min <= size_max <= MAXN:
            raise ValueError(f"need 7 <= size_min <= size_max <= {MAXN}, "
                             f"got {size_min}, {size_max}")
        self.size_min = size_min
        self.size_max = size_max
        self.n_states = N_STATES
        self.n_actions = N_ACTIONS
        self.n = self.m = 0
        self.phase = DONE

    cdef inline int jt(self, int j) noexcept nogil:
        return (2 * (j // self.m) + 1) * self.n + 2 * (j % self.m) + 1

    cdef int status(self, int k) noexcept nogil:
        cdef int m = self.m, j = self.pos
        cdef int i = j % m + DXS[k], jj = j // m + DYS[k], nj
        if i < 0 or i >= m or jj < 0 or jj >= m:
            return 0
        nj = jj * m + i
        if self.cells[self.jt(nj)] == WALL:
            return 1
        if self.cells[self.jt(j) + DXS[k] + DYS[k] * self.n] != WALL:
            if self.phase == PHASE_A or (self.phase == PHASE_B and self.owner[nj] == 2):
                return 2
            return 0
        return 3 if self.phase == PHASE_B and nj == self.s else 0

    cdef inline int nbj(self, int k) noexcept nogil:
        """The neighbour junction of the turtle in direction k, -1 off the lattice."""
        cdef int m = self.m, i = self.pos % m + DXS[k], jj = self.pos // m + DYS[k]
        if i < 0 or i >= m or jj < 0 or jj >= m:
            return -1
        return jj * m + i

    cdef void reach(self) noexcept nogil:
        """jdist: lattice distance from S through uncarved junctions (S's uncarved neighbours
        at 1, -1 unreachable or carved); recomputed after a carve (runtime ``_reach``)."""
        cdef int m = self.m, c, k, i, jj, nc, head = 0, tail = 0
        if self.reach_at == self.carves:
            return
        self.reach_at = self.carves
        for c in range(m * m):
            self.jdist[c] = -1
        self.jqueue[0] = self.s
        tail = 1
        while head < tail:
            c = self.jqueue[head]
            head += 1
            i = c % m
            jj = c // m
            for k in range(4):
                if 0 <= i + DXS[k] < m and 0 <= jj + DYS[k] < m:
                    nc = c + DXS[k] + DYS[k] * m
                    if self.jdist[nc] < 0 and nc != self.s \
                            and self.cells[self.jt(nc)] == WALL:
                        self.jdist[nc] = (self.jdist[c] if c != self.s else 0) + 1
                        self.jqueue[tail] = nc
                        tail += 1

    cdef int features_a(self) noexcept nogil:
        cdef int k, st, nj, nb = 0, w = 1
        if self.tg.ring:
            self.reach()
        for k in range(4):
            st = self.status(k)
            if st == 1 and self.tg.ring and self.jdist[self.nbj(k)] < 0:
                st = 3
            nb += st * w
            w *= 4
        return nb

    cdef int features_b(self, int* to_s) noexcept nogil:
        cdef int k, nj, d, near = -1, nb = 0, w = 1
        self.reach()
        for k in range(4):
            nj = self.nbj(k)
            if nj >= 0 and self.jdist[nj] >= 0 and (near < 0 or self.jdist[nj] < near):
                near = self.jdist[nj]
        to_s[0] = near + 1 if near >= 0 else -1
        for k in range(4):
            nj = self.nbj(k)
            if nj >= 0:
                d = self.jdist[nj]
                if d >= 0:
                    nb += (1 if d == near else 2) * w
                elif nj == self.s and self.cells[self.jt(self.pos) + DXS[k] + DYS[k] * self.n] \
                        == WALL:
                    nb += 3 * w
                    to_s[0] = 1
            w *= 4
        return nb

    cdef int observe(self) noexcept nogil:
        cdef int nb, feat, gb, le, bl, need, to_s
        if self.phase == DONE:
            return 0
        if self.phase == PHASE_A:
            nb = self.features_a()
            gb = gap_bucket(self.tg.path - self.depth[self.pos])
            le = 1 if self.last_edge >= 0 and self.cells[self.last_edge] == FLOOR else 0
            feat = (gb * 2 + (1 if self.hazards < self.tg.hazards else 0)) * 2 + le
        elif self.phase == PHASE_B:
            nb = self.features_b(&to_s)
            if to_s < 0:
                feat = A_FEAT
            else:
                feat = A_FEAT + e_bucket(self.blen + to_s - self.depth_g) * 4 \
                    + slack_bucket(6 * self.m + 2 * self.tg.path - self.steps - to_s)
        else:
            nb = self.status(0) + 4 * self.status(1) + 16 * self.status(2) + 64 * self.status(3)
            bl = self.blen if self.blen < 3 else 3
            need = 1 if self.floor_tiles < self.tg.floor * self.n * self.n else 0
            feat = A_FEAT + B_FEAT + (bl * 2 + (1 if self.treasures < self.tg.treasure else 0)) \
                * 2 + need
        return nb * N_FEAT + feat

    cdef void start(self, int n, Targets tg, Rng* rng) noexcept nogil:
        cdef int c, j
        self.n = n
        self.m = (n - 1) // 2
        self.tg = tg
        for c in range(n * n):
            self.cells[c] = WALL
        for j in range(self.m * self.m):
            self.depth[j] = 0
            self.owner[j] = 0
        self.s = rng_below(rng, self.m * self.m)
        self.pos = self.s
        self.g = -1
        self.cells[self.jt(self.s)] = FLOOR
        self.owner[self.s] = 1
        self.floor_tiles = 1
        self.phase = PHASE_A
        self.steps = 0
        self.c_steps = 0
        self.last_edge = -1
        self.hazards = 0
        self.treasures = 0
        self.blen = 0
        self.depth_g = 0
        self.paid = 0.0
        self.carves = 0
        self.reach_at = -1

    cdef int reset(self, Rng* rng) noexcept nogil:
        cdef int n = self.size_min + rng_below(rng, self.size_max - self.size_min + 1)
        cdef int m = (n - 1) // 2
        cdef double d = rng_uniform(rng)
        cdef Targets tg = make_targets(m, d)
        if rng_uniform(rng) >= 0.5:
            tg.path = 1 + rng_below(rng, 2 * m)
        self.start(n, tg, rng)
        return self.observe()

    cdef void new_root(self, Rng* rng) noexcept nogil:
        cdef int m = self.m, j, i, jj, k, ni, nj, count = 0
        self.blen = 0
        if self.floor_tiles >= self.tg.floor * self.n * self.n:
            self.phase = DONE
            return
        for j in range(m * m):
            if self.cells[self.jt(j)] == WALL:
                continue
            i = j % m
            jj = j // m
            for k in range(4):
                ni = i + DXS[k]
                nj = jj + DYS[k]
                if 0 <= ni < m and 0 <= nj < m and self.cells[self.jt(nj * m + ni)] == WALL:
                    self.roots[count] = j
                    count += 1
                    break
        if count == 0:
            self.phase = DONE
            return
        self.pos = self.roots[rng_below(rng, count)]

    cdef double enter_c(self, Rng* rng) noexcept nogil:
        """Phase C; the hazard term is final now and paid (runtime ``_enter_c``)."""
        cdef Metrics met
        cdef double reward
        measure(self.cells, self.n, self.jt(self.s), self.jt(self.g), &self.work, &met)
        reward = hazard_term(&met, &self.tg) - hazard_credit(self.hazards, self.tg.hazards)
        self.paid += reward
        self.phase = PHASE_C
        self.steps = 0
        self.last_edge = -1
        self.new_root(rng)
        return reward

    cdef double move(self, int k, Rng* rng) noexcept nogil:
        cdef int st = self.status(k), nj, edge, arm
        cdef double reward
        if st == 0:
            return BUMP_REWARD - STEP_REWARD
        nj = self.pos + DXS[k] + DYS[k] * self.m
        edge = self.jt(self.pos) + DXS[k] + DYS[k] * self.n
        if st == 2:
            self.pos = nj
            self.last_edge = -1
            if self.phase == PHASE_B:
                self.blen = self.depth[nj]
            return 0.0
        if st == 3:
            self.cells[edge] = FLOOR
            self.floor_tiles += 1
            arm = self.depth[self.pos] + 1
            reward = RING_REWARD if self.tg.ring else 0.0
            if arm < self.depth_g:
                reward += path_score(arm, self.tg.path) - path_score(self.depth_g, self.tg.path)
            self.pos = nj
            self.paid += reward
            return reward + self.enter_c(rng)
        self.cells[edge] = FLOOR
        self.cells[self.jt(nj)] = FLOOR
        self.floor_tiles += 2
        self.carves += 1
        self.last_edge = edge
        if self.phase == PHASE_A:
            self.depth[nj] = self.depth[self.pos] + 1
            self.owner[nj] = 1
        elif self.phase == PHASE_B:
            self.depth[nj] = self.depth[self.pos] + 1
            self.blen = self.depth[nj]
            self.owner[nj] = 2
        else:
            self.owner[nj] = 3
            self.blen += 1
        self.pos = nj
        return 0.0

    cdef double place_goal(self, int j, Rng* rng) noexcept nogil:
        cdef double reward
        self.g = j
        self.depth_g = self.depth[j]
        reward = path_score(self.depth[j], self.tg.path)
        self.paid += reward
        if self.tg.ring:
            self.phase = PHASE_B
            self.steps = 0
            self.owner[j] = 2
            self.depth[j] = 0
            self.blen = 0
            self.last_edge = -1
        else:
            reward += self.enter_c(rng)
        return reward

    cdef double act(self, int a, Rng* rng) noexcept nogil:
        cdef int e, c
        cdef double reward
        if a < 4:
            return self.move(a, rng)
        if a == 4:
            if self.phase == PHASE_A:
                if self.pos == self.s or self.cells[self.jt(self.pos)] != FLOOR:
                    return BUMP_REWARD - STEP_REWARD
                return self.place_goal(self.pos, rng)
            if self.phase == PHASE_B or self.blen == 0:
                return BUMP_REWARD - STEP_REWARD
            self.new_root(rng)
            return 0.0
        if a == 5:
            e = self.last_edge
            if self.phase != PHASE_A or e < 0 or self.cells[e] != FLOOR:
                return BUMP_REWARD - STEP_REWARD
            self.cells[e] = HAZARD
            self.hazards += 1
            reward = hazard_credit(self.hazards, self.tg.hazards) \
                - hazard_credit(self.hazards - 1, self.tg.hazards)
            self.paid += reward
            return reward
        c = self.jt(self.pos)
        if self.cells[c] != FLOOR or self.pos == self.s or self.pos == self.g \
                or self.treasures >= self.tg.treasure or (self.phase == PHASE_C and self.blen == 0):
            return BUMP_REWARD - STEP_REWARD
        self.cells[c] = TREASURE
        self.treasures += 1
        if self.phase == PHASE_C:
            self.new_root(rng)
        return 0.0

    cdef double repair_goal(self, Rng* rng) noexcept nogil:
        cdef int j, k, best = self.s, bd = -1
        for j in range(self.m * self.m):
            if self.owner[j] == 1 and j != self.s and self.cells[self.jt(j)] == FLOOR \
                    and self.depth[j] > bd:
                best = j
                bd = self.depth[j]
        if best == self.s:
            self.pos = self.s
            for k in range(4):
                if self.status(k) == 1:
                    self.move(k, rng)
                    break
            best = self.pos
        self.pos = best
        return self.place_goal(best, rng)

    cdef int step(self, int state, int action, Rng* rng, double* reward,
                  bint* done) noexcept nogil:
        cdef double r = STEP_REWARD + self.act(action, rng)
        self.steps += 1
        if self.phase == PHASE_A and self.steps >= 4 * self.tg.path + 8:
            r += self.repair_goal(rng)
        elif self.phase == PHASE_B and self.steps >= 6 * self.m + 2 * self.tg.path:
            r += self.enter_c(rng)
        elif self.phase == PHASE_C:
            self.c_steps += 1
            if self.c_steps >= 6 * self.m * self.m:
                self.phase = DONE
        if self.phase == DONE:
            measure(self.cells, self.n, self.jt(self.s), self.jt(self.g), &self.work, &self.last)
            r += score(&self.last, &self.tg) - self.paid
            reward[0] = r
            done[0] = True
            return 0
        reward[0] = r
        done[0] = False
        return self.observe()

    # ------------------------------------------------------------------ Python-side helpers
    def tiles(self):
        """The current tiles as uint8 ``(n, n)`` (0 wall, 1 floor, 2 hazard, 3 treasure)."""
        out = np.zeros((self.n, self.n), dtype=np.uint8)
        cdef int c
        for c in range(self.n * self.n):
            out[c // self.n, c % self.n] = self.cells[c]
        return out

    def start_tiles(self):
        """(S tile, G tile) as flat ``y * n + x`` indices (G -1 before it is placed)."""
        return self.jt(self.s), (self.jt(self.g) if self.g >= 0 else -1)

    def targets(self):
        """(path L, ring, hazards, treasure, floor share) of the current episode."""
        return (self.tg.path, bool(self.tg.ring), self.tg.hazards, self.tg.treasure,
                self.tg.floor)

    def metrics(self):
        """The metrics tuple of runtime.level_env.measure for the current tiles (G placed)."""
        if self.g < 0:
            raise ValueError("no goal placed yet")
        cdef Metrics met
        measure(self.cells, self.n, self.jt(self.s), self.jt(self.g), &self.work, &met)
        return (met.path_len, met.routes, met.hazards, met.forced, met.hazard_free,
                met.treasure, met.off_route, met.floor_share, met.unreachable, met.regions)


def measure_tiles(tiles, int s, int g):
    """``runtime.level_env.measure`` in C for a uint8 ``(n, n)`` tile array (tests, speed)."""
    arr = np.ascontiguousarray(tiles, dtype=np.uint8)
    cdef int n = arr.shape[0]
    if arr.ndim != 2 or arr.shape[1] != n or not 7 <= n <= MAXN:
        raise ValueError(f"tiles must be a square uint8 array of side 7..{MAXN}")
    cdef const unsigned char[::1] flat = arr.reshape(-1)
    env = LevelEnv(size_min=7, size_max=MAXN)
    return _measure_with(env, flat, n, s, g)


cdef tuple _measure_with(LevelEnv env, const unsigned char[::1] flat, int n, int s, int g):
    cdef Metrics met
    measure(&flat[0], n, s, g, &env.work, &met)
    return (met.path_len, met.routes, met.hazards, met.forced, met.hazard_free,
            met.treasure, met.off_route, met.floor_share, met.unreachable, met.regions)


def action_masks():
    """``state_mask`` of every state, uint8 ``(N_STATES,)`` (the parity test)."""
    out = np.zeros(N_STATES, dtype=np.uint8)
    cdef int s
    for s in range(N_STATES):
        out[s] = state_mask(s)
    return out


cdef void _masked_q_loop(LevelEnv env, double* Q, int64_t episodes, double alpha,
                         double gamma, double* epsilon_io, double epsilon_decay,
                         double epsilon_min, int64_t max_steps, Rng* rng, double* returns,
                         int64_t* lengths, int64_t* updates_out) noexcept nogil:
    """``fastcore._core`` Q-learning restricted to the allowed actions of each state: the same
    draws (one uniform, then ``rng_below(allowed)`` when exploring), the greedy action and the
    target's max over the allowed actions only (twin: ``reference_level.train_level_agent``)."""
    cdef double epsilon = epsilon_io[0], r, target, G
    cdef int64_t ep, t, updates = 0
    cdef int s, s2, a, mask
    cdef bint done
    cdef double* row
    cdef double* nrow
    for ep in range(episodes):
        s = env.reset(rng)
        G = 0.0
        t = 0
        while t < max_steps:
            row = Q + <Py_ssize_t>s * N_ACTIONS
            mask = state_mask(s)
            if rng_uniform(rng) < epsilon:
                a = masked_pick(mask, rng_below(rng, popcount7(mask)))
            else:
                a = masked_argmax(row, mask)
            done = False
            r = 0.0
            s2 = env.step(s, a, rng, &r, &done)
            if done:
                target = r
            else:
                nrow = Q + <Py_ssize_t>s2 * N_ACTIONS
                target = r + gamma * nrow[masked_argmax(nrow, state_mask(s2))]
            row[a] = row[a] + alpha * (target - row[a])
            updates += 1
            G = G + r
            t += 1
            s = s2
            if done:
                break
        if returns != NULL:
            returns[ep] = G
            lengths[ep] = t
        epsilon = epsilon * epsilon_decay
        if epsilon < epsilon_min:
            epsilon = epsilon_min
    epsilon_io[0] = epsilon
    updates_out[0] = updates


def train_level_agent(episodes, *, alpha=0.1, gamma=0.98, epsilon=0.2, epsilon_decay=1.0,
                      epsilon_min=0.0, max_steps=20000, seed=0, q=None, algorithm="q",
                      **env_kwargs):
    """Q-learning of the level editor in C over the allowed actions of each state
    (``state_mask``); returns ``(q, stats)`` like ``fastcore._core.train_q`` (``q`` updated in
    place; only ``algorithm="q"``)."""
    env = LevelEnv(**env_kwargs)
    if algorithm != "q":
        raise ValueError(f"algorithm must be 'q' for the level editor, got {algorithm!r}")
    if q is None:
        q = np.zeros((env.n_states, env.n_actions), dtype=np.float64)
    _core.check_q_table("q", q, (env.n_states, env.n_actions))
    (episodes, alpha, gamma, epsilon, epsilon_decay, epsilon_min, max_steps,
     seed) = _core.check_train_args(episodes, alpha, gamma, epsilon, epsilon_decay,
                                    epsilon_min, max_steps, seed)
    returns, lengths = np.zeros(episodes, np.float64), np.zeros(episodes, np.int64)
    cdef EpisodeLog log = episode_log(returns, lengths)
    cdef double[:, ::1] qv = q
    cdef Rng rng = seeded_rng(<uint64_t>seed)
    cdef double eps = epsilon, a_ = alpha, g_ = gamma, dec = epsilon_decay, emin = epsilon_min
    cdef int64_t updates = 0, n_ep = episodes, n_max = max_steps
    cdef LevelEnv e = env
    with nogil:
        _masked_q_loop(e, &qv[0, 0], n_ep, a_, g_, &eps, dec, emin, n_max, &rng, log.returns,
                       log.lengths, &updates)
    return q, {"returns": returns, "lengths": lengths, "updates": int(updates), "epsilon": eps}
