"""The level editor: a PCGRL-style turtle that edits a corridor lattice (pure Python).

This module is the rule book of the ``level`` kind. The same rules run in C in
``fastcore/level_env.pyx`` (training, >= 1 M edit steps/s); this pure-Python version is both
the runtime's generator and the bit-exact twin the parity tests compare the C code with
(``fastcore.reference_level``). Only the standard library: no numpy, no onnxruntime.

Grid and lattice
----------------
A level is ``n x n`` tiles: ``#`` wall, ``.`` floor, ``S`` start, ``G`` goal, ``^`` hazard and
``$`` treasure (both walkable). Corridors are one tile wide and run on a lattice of
``m x m`` junctions, ``m = (n - 1) // 2``, junction ``J = j * m + i`` at tile
``(x, y) = (2 i + 1, 2 j + 1)``; the tile between two neighbouring junctions is their edge.
(For even ``n`` the last column and row are wall too.) Every level starts as solid wall.

Episode (the designer targets are fixed at the start; see ``targets``)
---------------------------------------------------------------------
The turtle starts on ``S`` (a random junction). Actions, in three phases:

* 0..3 move right / down / left / up. Into an uncarved junction: carve the edge and the
  junction (the edit). Along an open edge: walk (phase A anywhere on the main arm, phase B
  only on the return arm, never in phase C). Into a carved junction through a closed edge:
  refused, except in phase B into ``S``, which closes the ring (a second disjoint route).
* 4 ``mark``: phase A places ``G`` on the turtle's junction (its depth in the carved tree is
  the path length); refused in phase B (the return arm ends by closing the ring or when its
  budget runs out); phase C ends the branch, refused on an empty branch (a fresh root: ending
  it would only re-draw the root, without an edit).
* 5 ``hazard``: puts ``^`` on the edge tile just carved (phase A only: hazards go on the main
  arm, and the return arm, when it closes, is the hazard-free route around them).
* 6 ``treasure``: puts ``$`` on the turtle's junction (not on S or G), refused once the
  treasure target is placed (treasure is capped at its target); in phase C it also ends the
  branch, refused on an empty branch like ``mark``.

Action masks (``state_mask``): the actions the editor refuses in every situation that gives a
state (moves into a refused neighbour in phases A and C, ``hazard`` without a fresh edge or
outside phase A, ``mark`` in phase B, ``mark`` and ``treasure`` on an empty branch or
``treasure`` once the target is placed in phase C) are left out of the choice: the Q-learning
in C (``fastcore.level_env.train_level_agent``: exploration, greedy action and the target's
max), its twin and the runtime's sampling all choose among the allowed actions only. In phase
C every allowed action edits (a carve, or the end of a branch of at least one carve), so phase
C ends after at most ``2 m^2`` allowed actions, well within its budget. The refusals a state
cannot tell (``mark`` on ``S``; ``treasure`` on ``S``, ``G``, a junction that has some, or past
the target, in phases A and B) stay bumps, and walking back and forth along an arm is allowed:
the phase budgets below are the step caps that end any such loop, each with a defined
fallback (phase A: the repair; phase B: phase C starts without the ring; phase C: done).

Phase A carves the main arm from ``S`` and places ``G``. Phase B (when the targets ask for two
routes) carves a return arm from ``G`` that may touch no carved junction but ``S``. Phase C
grows dead-end branches: each from a root junction drawn uniformly (from the environment's
random stream) among the carved junctions that still have an uncarved neighbour, until the
floor share reaches its target. A refused action is a bump (a wasted step). Budgets: phase A
``4 L + 8`` steps (then ``G`` goes on the deepest junction of the arm: the documented
repair), phase B ``6 m + 2 L`` steps, phase C ``6 m^2`` steps. Every edit carves next to
carved floor and nothing is ever filled back, so every level is one region, ``G`` is
reachable from ``S`` and no floor is unreachable: solvable by construction.

Observation (the tabular state): ``state = nb * N_FEAT + feature`` with ``nb`` the four
neighbours (base 4, digit k for direction k) and ``feature`` by phase. Both phases A and B
read a BFS from ``S`` through the uncarved junctions (``_reach``: how far an uncarved neighbour
is from ``S``'s uncarved neighbours, or that it is cut off from them):
A: neighbours 0 refused, 1 uncarved, 2 open edge, 3 uncarved but cut off from ``S`` (when two
routes are wanted: no return arm could start there); feature (28) gap = L - depth bucketed
(<= -2, -1, 0, 1, 2..3, 4..7, >= 8) x hazards still wanted x the last edge can take a hazard.
B: neighbours 0 refused, walk back or cut off, 1 uncarved on a shortest way to ``S``,
2 uncarved on a longer way, 3 ``S`` (closes the ring); feature (28) the excess ``e`` = arm
length + moves to ``S`` on the shortest way - depth of ``G`` (no way, <= -3, -2, -1, 0, 1..2,
>= 3: below 0 closing on the shortest way would make a shortcut) x the slack = steps left in
the phase B budget - moves to ``S`` (< 0, 0..3, 4..10, > 10).
C: neighbours 0 anything but 1 uncarved; feature (16) branch length (0, 1, 2, >= 3) x
treasure still wanted x floor share below target.

Reward: ``STEP_REWARD`` per action (``BUMP_REWARD`` for a refused one); the path score when
``G`` is placed, ``RING_REWARD`` when the ring closes (plus the change of the path score when
the return arm is the shorter one), ``hazard_credit`` as hazards are placed, the hazard term
less that credit when phase C starts (``_enter_c``: phase C cannot change it), and at the end
the rest of the target score (``score(measure(...))`` minus what was already paid), so that an
episode's return is the target score plus the step costs.
"""
from __future__ import annotations

from runtime.level_lattice import (  # noqa: F401  (re-exported: geometry, state, masks)
    A_FEAT,
    ACTIONS,
    ALL_ACTIONS,
    B_FEAT,
    C_FEAT,
    DONE,
    DX,
    DY,
    N_ACTIONS,
    N_FEAT,
    N_NB,
    N_STATES,
    PHASE_A,
    PHASE_B,
    PHASE_C,
    e_bucket,
    gap_bucket,
    geometry,
    select_bit,
    slack_bucket,
    state_mask,
    state_masks,
)
from runtime.level_metrics import (  # noqa: F401  (re-exported: the rule book's metrics)
    FLOOR,
    HAZARD,
    METRIC_NAMES,
    TREASURE,
    WALL,
    measure,
    parse_rows,
    separating_tiles,
)
from runtime.level_targets import (  # noqa: F401  (re-exported: targets and score)
    hazard_credit,
    hazard_term,
    lattice,
    path_score,
    score,
    targets,
)

STEP_REWARD = -0.01
BUMP_REWARD = -0.05
RING_REWARD = 1.0
ENCODING = "lattice-turtle-v3"
TILE_CHARS = "#.^$"


class Editor:
    """One level being edited; ``rng`` needs ``below(k)`` (uniform int in [0, k))."""

    rewards = True      # False: rewards are not needed (generation), skip their extra metrics

    def start(self, n: int, tg: tuple, rng) -> int:
        m = self.m = lattice(n)
        self.n, self.tg, self.rng = n, tg, rng
        self.jtile, self.nbrs, self.links, self.nbmask, self.shift = geometry(n)
        self.carved = bytearray(m * m)
        self.freeb = (1 << (m * m)) - 1        # uncarved junctions as bits
        self.carvedb = 0                       # carved junctions as bits
        self.reach_key, self.reach = None, None
        self.tiles = bytearray(n * n)
        self.depth = [0] * (m * m)         # tree depth from S (phase A) / from G (phase B)
        self.owner = bytearray(m * m)      # 1 main arm, 2 return arm, 3 branch
        self.s = self.pos = rng.below(m * m)
        self.g = -1
        self.tiles[self.jt(self.s)] = FLOOR
        self._carved(self.s)
        self.owner[self.s] = 1
        self.floor_tiles = 1
        self.phase, self.steps, self.c_steps = PHASE_A, 0, 0
        self.last_edge = -1
        self.hazards = self.treasures = self.blen = 0
        self.paid = 0.0
        return self.observe()

    def jt(self, j: int) -> int:
        return self.jtile[j]

    def _carved(self, j: int) -> None:
        self.carved[j] = 1
        self.freeb &= ~(1 << j)
        self.carvedb |= 1 << j

    def _roots(self) -> int:
        """Branch roots as bits: carved junctions with an uncarved neighbour."""
        free, m = self.freeb, self.m
        not_last, not_first = self.shift
        return self.carvedb & (((free & not_last) << 1) | ((free & not_first) >> 1)
                               | (free << m) | (free >> m))

    def status(self, k: int) -> int:
        m, j = self.m, self.pos
        i, jj = j % m + DX[k], j // m + DY[k]
        if i < 0 or i >= m or jj < 0 or jj >= m:
            return 0
        nj = jj * m + i
        if self.tiles[self.jtile[nj]] == WALL:
            return 1
        if self.tiles[self.jtile[j] + DX[k] + DY[k] * self.n] != WALL:
            if self.phase == PHASE_A or (self.phase == PHASE_B and self.owner[nj] == 2):
                return 2
            return 0
        return 3 if self.phase == PHASE_B and nj == self.s else 0

    def _reach(self) -> list:
        """Per direction, the lattice distance from ``S`` through uncarved junctions of the
        uncarved neighbour there (``S``'s uncarved neighbours are at 1): -1 unreachable,
        ``None`` no uncarved neighbour. A bit-parallel BFS that stops once every neighbour is
        placed; cached until the turtle moves or carves."""
        key = (self.pos, self.freeb)
        if key == self.reach_key:
            return self.reach
        free, m, links = self.freeb, self.m, self.links[self.pos]
        out, want = [None] * 4, 0
        for k, link in enumerate(links):
            if link is not None and free >> link[0] & 1:
                out[k] = -1
                want |= 1 << link[0]
        not_last, not_first = self.shift
        cur = self.nbmask[self.s] & free
        rem = free ^ cur                        # uncarved junctions not reached yet
        d = 1
        while cur and want:
            hit = cur & want
            if hit:
                want ^= hit
                for k, link in enumerate(links):
                    if link is not None and hit >> link[0] & 1:
                        out[k] = d
            cur = (((cur & not_last) << 1) | ((cur & not_first) >> 1) | (cur << m)
                   | (cur >> m)) & rem
            rem ^= cur
            d += 1
        self.reach_key, self.reach = key, out
        return out

    def _neighbours(self) -> int:
        """Phase C neighbours as one base-4 number: 1 uncarved, 0 anything else."""
        nb, carved = 0, self.carved
        for link in self.links[self.pos]:
            if link is not None and not carved[link[0]]:
                nb += link[2]
        return nb

    def _features_a(self) -> int:
        """Phase A neighbours: 0 refused, 1 uncarved, 2 open edge (walk), 3 uncarved but cut
        off from ``S``'s uncarved neighbours (no return arm could start there; only when two
        routes are wanted)."""
        nb, carved, tiles = 0, self.carved, self.tiles
        reach = self._reach() if self.tg[1] else (0, 0, 0, 0)
        for k, link in enumerate(self.links[self.pos]):
            if link is None:
                continue
            nj, edge, w = link
            if not carved[nj]:
                nb += 3 * w if reach[k] < 0 else w
            elif tiles[edge] != WALL:
                nb += 2 * w
        return nb

    def _features_b(self) -> tuple:
        """Phase B neighbours (0 refused, walk back or cut off from ``S``; 1 uncarved on a
        shortest way to ``S``; 2 uncarved, a longer way; 3 ``S``: closes the ring) and the
        number of moves to ``S`` (None: no way)."""
        reach = self._reach()
        live = [d for d in reach if d is not None and d >= 0]
        near = min(live) if live else -1
        nb, to_s = 0, (near + 1 if live else None)
        for k, link in enumerate(self.links[self.pos]):
            if link is None:
                continue
            d = reach[k]
            if d is not None:
                if d >= 0:
                    nb += link[2] if d == near else 2 * link[2]
            elif link[0] == self.s and self.tiles[link[1]] == WALL:
                nb += 3 * link[2]
                to_s = 1
        return nb, to_s

    def observe(self) -> int:
        if self.phase == DONE:
            return 0
        path, ring, h_want, t_want, f_want = self.tg
        if self.phase == PHASE_A:
            nb = self._features_a()
            gb = gap_bucket(path - self.depth[self.pos])
            le = 1 if self.last_edge >= 0 and self.tiles[self.last_edge] == FLOOR else 0
            feat = (gb * 2 + (1 if self.hazards < h_want else 0)) * 2 + le
        elif self.phase == PHASE_B:
            nb, to_s = self._features_b()
            if to_s is None:
                feat = A_FEAT
            else:
                left = 6 * self.m + 2 * path - self.steps
                feat = A_FEAT + e_bucket(self.blen + to_s - self.depth_g) * 4 \
                    + slack_bucket(left - to_s)
        else:
            nb = self._neighbours()
            bl = self.blen if self.blen < 3 else 3
            need = 1 if self.floor_tiles < f_want * self.n * self.n else 0
            feat = A_FEAT + B_FEAT + (bl * 2 + (1 if self.treasures < t_want else 0)) * 2 + need
        return nb * N_FEAT + feat

    # -------------------------------------------------------------- actions
    def _move(self, k: int) -> float:
        link = self.links[self.pos][k]
        if link is None:
            return BUMP_REWARD - STEP_REWARD
        nj, edge, _ = link
        if not self.carved[nj]:
            st = 1
        elif self.tiles[edge] != WALL:
            st = 2 if self.phase == PHASE_A or (self.phase == PHASE_B and self.owner[nj] == 2) \
                else 0
        else:
            st = 3 if self.phase == PHASE_B and nj == self.s else 0
        if st == 0:
            return BUMP_REWARD - STEP_REWARD
        if st == 2:
            self.pos = nj
            self.last_edge = -1
            if self.phase == PHASE_B:
                self.blen = self.depth[nj]
            return 0.0
        if st == 3:                                   # the ring closes at S
            self.tiles[edge] = FLOOR
            self.floor_tiles += 1
            # the shortest path is now the shorter arm: pay its path score change now
            arm = self.depth[self.pos] + 1
            reward = RING_REWARD if self.tg[1] else 0.0
            if arm < self.depth_g:
                reward += path_score(arm, self.tg[0]) - path_score(self.depth_g, self.tg[0])
            self.pos = nj
            self.paid += reward
            return reward + self._enter_c()
        self.tiles[edge] = FLOOR
        self.tiles[self.jtile[nj]] = FLOOR
        self._carved(nj)
        self.floor_tiles += 2
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

    def _place_goal(self, j: int) -> float:
        self.g = j
        self.depth_g = self.depth[j]
        reward = path_score(self.depth[j], self.tg[0])
        self.paid += reward
        if self.tg[1]:
            self.phase, self.steps = PHASE_B, 0
            self.owner[j] = 2
            self.depth[j] = 0
            self.blen = 0
            self.last_edge = -1
        else:
            reward += self._enter_c()
        return reward

    def _enter_c(self) -> float:
        """Phase C: hazards, routes and the path are final, so the hazard term is paid now, less
        the credit already paid as the hazards were placed (not ``self.rewards``: skipped,
        generation ignores rewards)."""
        reward = hazard_term(self.metrics(), self.tg) - hazard_credit(self.hazards, self.tg[2]) \
            if self.rewards else 0.0
        self.paid += reward
        self.phase, self.steps = PHASE_C, 0
        self.last_edge = -1
        self._new_root()
        return reward

    def _new_root(self) -> None:
        self.blen = 0
        if self.floor_tiles >= self.tg[4] * self.n * self.n:
            self.phase = DONE
            return
        # carved junctions with an uncarved neighbour, in index order (as the C scan)
        roots = self._roots()
        if not roots:
            self.phase = DONE
            return
        self.pos = select_bit(roots, self.rng.below(roots.bit_count()))

    def _act(self, a: int) -> float:
        if a < 4:
            return self._move(a)
        ph = self.phase
        if a == 4:
            if ph == PHASE_A:
                if self.pos == self.s or self.tiles[self.jt(self.pos)] != FLOOR:
                    return BUMP_REWARD - STEP_REWARD
                return self._place_goal(self.pos)
            if ph == PHASE_B or self.blen == 0:
                return BUMP_REWARD - STEP_REWARD
            self._new_root()
            return 0.0
        if a == 5:
            e = self.last_edge
            if ph != PHASE_A or e < 0 or self.tiles[e] != FLOOR:
                return BUMP_REWARD - STEP_REWARD
            self.tiles[e] = HAZARD
            self.hazards += 1
            reward = hazard_credit(self.hazards, self.tg[2]) \
                - hazard_credit(self.hazards - 1, self.tg[2])
            self.paid += reward
            return reward
        c = self.jt(self.pos)
        if self.tiles[c] != FLOOR or self.pos == self.s or self.pos == self.g \
                or self.treasures >= self.tg[3] or (ph == PHASE_C and self.blen == 0):
            return BUMP_REWARD - STEP_REWARD
        self.tiles[c] = TREASURE
        self.treasures += 1
        if ph == PHASE_C:
            self._new_root()
        return 0.0

    def _repair_goal(self) -> float:
        """Phase A ran out of steps: G on the deepest junction of the main arm."""
        best, bd = self.s, -1
        for j in range(self.m * self.m):
            if self.owner[j] == 1 and j != self.s and self.tiles[self.jt(j)] == FLOOR \
                    and self.depth[j] > bd:
                best, bd = j, self.depth[j]
        if best == self.s:                          # nothing carved: carve one step first
            self.pos = self.s
            for k in range(4):
                if self.status(k) == 1:
                    self._move(k)
                    break
            best = self.pos
        self.pos = best
        return self._place_goal(best)

    def step(self, a: int) -> tuple:
        """-> (state, reward, done)."""
        reward = STEP_REWARD + self._act(a)
        self.steps += 1
        if self.phase == PHASE_A and self.steps >= 4 * self.tg[0] + 8:
            reward += self._repair_goal()
        elif self.phase == PHASE_B and self.steps >= 6 * self.m + 2 * self.tg[0]:
            reward += self._enter_c()
        elif self.phase == PHASE_C:
            self.c_steps += 1
            if self.c_steps >= 6 * self.m * self.m:
                self.phase = DONE
        if self.phase == DONE:
            self.final = self.metrics()
            reward += score(self.final, self.tg) - self.paid
            return 0, reward, True
        return self.observe(), reward, False

    # -------------------------------------------------------------- results
    def metrics(self) -> tuple:
        return measure(self.tiles, self.n, self.jt(self.s), self.jt(self.g))

    def rows(self) -> list[str]:
        n = self.n
        chars = [TILE_CHARS[t] for t in self.tiles]
        chars[self.jt(self.s)] = "S"
        if self.g >= 0:
            chars[self.jt(self.g)] = "G"
        text = "".join(chars)
        return [text[y * n:(y + 1) * n] for y in range(n)]

