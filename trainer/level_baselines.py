"""Baseline designers for the level editor: a hand-written heuristic and random edits.

Both act through the same editor (``runtime.level_env.Editor``), the same actions and the same
budgets as the learned policy; only the choice of action differs. The heuristic sees more than
the learned policy's observation (the exact depth, the exact arm length, the neighbours'
statuses, the exact targets) and follows the plan a designer would write down:

* phase A: walk into uncarved junctions, preferring to keep the heading (long straight runs
  waste less room) and otherwise turning at random; spread the wanted hazards evenly along the
  arm (one every ``L / (H + 1)`` junctions, never in the first two); place ``G`` as soon as the
  depth reaches the target; backtrack when boxed in.
* phase B: close the ring as soon as ``S`` is next door; otherwise step into the uncarved
  junction that brings the turtle closest to ``S`` (ties at random), unless closing now would
  make a shortcut (arm length + distance < depth of G), in which case step away from ``S``;
  backtrack along the arm when boxed in.
* phase C: grow each branch straight ahead (random turns when blocked), put treasure at its
  tip once it is two junctions long while treasure is still wanted, and end it at four.

``random`` picks one of the 7 actions uniformly; ``random_valid`` picks uniformly among the
actions the editor would accept (a less wasteful random designer).
"""
from __future__ import annotations

from runtime import level_env as rules


def _dist_to_s(ed, j: int) -> int:
    m = ed.m
    return abs(ed.s % m - j % m) + abs(ed.s // m - j // m)


class Heuristic:
    """The hand-written designer (see the module docstring); ``act(editor, draws)``."""

    def __init__(self):
        self.heading = 0

    def _forward(self, ed, options: list[int], draws) -> int:
        if self.heading in options and draws.uniform() < 0.7:
            return self.heading
        self.heading = options[draws.below(len(options))]
        return self.heading

    def act(self, ed, draws) -> int:
        st = [ed.status(k) for k in range(4)]
        new = [k for k in range(4) if st[k] == 1]
        back = [k for k in range(4) if st[k] == 2]
        path, ring, h_want, t_want, f_want = ed.tg
        if ed.phase == rules.PHASE_A:
            depth = ed.depth[ed.pos]
            if depth >= path and ed.pos != ed.s:
                return 4
            if h_want and ed.hazards < h_want and depth >= 2 and ed.last_edge >= 0 \
                    and ed.tiles[ed.last_edge] == rules.FLOOR \
                    and depth % max(1, path // (h_want + 1)) == 0:
                return 5
            if new:
                return self._forward(ed, new, draws)
            return back[draws.below(len(back))] if back else 4
        if ed.phase == rules.PHASE_B:
            if 3 in st:
                return st.index(3)
            if new:
                m = ed.m
                dists = [_dist_to_s(ed, ed.pos + rules.DX[k] + rules.DY[k] * m) for k in new]
                if ed.blen + 1 + min(dists) < ed.depth_g:
                    far = max(dists)
                    pick = [k for k, d in zip(new, dists) if d == far]
                else:
                    near = min(dists)
                    pick = [k for k, d in zip(new, dists) if d == near]
                return pick[draws.below(len(pick))]
            return back[draws.below(len(back))] if back else 4
        if ed.blen >= 2 and ed.treasures < t_want:
            return 6
        if ed.blen >= 4 or not new:
            return 6 if ed.blen >= 1 and ed.treasures < t_want else 4
        return self._forward(ed, new, draws)


def heuristic_policy():
    h = Heuristic()
    return lambda ed, draws: h.act(ed, draws)


def random_policy():
    return lambda ed, draws: draws.below(rules.N_ACTIONS)


def random_valid_policy():
    def act(ed, draws):
        st = [ed.status(k) for k in range(4)]
        ok = [k for k in range(4) if st[k]]
        fresh = ed.phase == rules.PHASE_C and ed.blen == 0      # an empty branch
        if ed.phase == rules.PHASE_A:
            if ed.pos != ed.s and ed.tiles[ed.jt(ed.pos)] == rules.FLOOR:
                ok.append(4)
        elif ed.phase == rules.PHASE_C and not fresh:
            ok.append(4)
        if ed.phase == rules.PHASE_A and ed.last_edge >= 0 \
                and ed.tiles[ed.last_edge] == rules.FLOOR:
            ok.append(5)
        if ed.tiles[ed.jt(ed.pos)] == rules.FLOOR and ed.pos not in (ed.s, ed.g) \
                and ed.treasures < ed.tg[3] and not fresh:
            ok.append(6)
        return ok[draws.below(len(ok))] if ok else 4
    return act
