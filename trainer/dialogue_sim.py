"""Restaurant-booking dialogue simulator (numpy only; no TensorFlow).

* Goals (:mod:`trainer.dialogue_goals`): book, info only, alternatives, change a booking,
  impossible requests with a fallback, negation, change of mind; don't-care slots; all slots at
  once or one at a time.
* User (:mod:`trainer.dialogue_user`): agenda-based, answers system acts with true acts; success
  is judged against the goal; ``repeats`` counts the turns it had to repeat or correct.
* Words (:mod:`trainer.dialogue_phrasing`): true acts -> text (``train`` or ``heldout`` phrasing
  bank) -> typo channel at ``noise`` -> the runtime's understanding
  (``runtime.dialogue_understanding.Understanding``) -> the runtime's tracker. The policy sees
  exactly what it will see in serving, errors included.
* Env (:class:`DialogueEnv`, Gymnasium API): observation ``Tracker.features()``, actions
  ``runtime.dialogue_domain.ACTIONS`` masked by ``mask_from_obs``. Reward -1 per system turn,
  +20 when the system says bye to a satisfied user (judged against the goal), -20 on any other
  end (bye too early, the user hangs up, the 30-turn cap).

Baselines: :func:`rule_policy` (hand-written, trusts what it heard), :func:`rule_confirm_policy`
(also confirms any value understood with confidence below 0.8: a corrected typo, a reading
from context only), :func:`rule_confirm_all_policy` (confirms every value), :func:`tuned_rule`
(thresholds tuned on training users), random over valid actions.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from runtime.dialogue_domain import (
    A_BOOK, A_BYE, A_CHANGE, A_CONFIRM, A_INFORM, A_NOMATCH, A_OFFER, A_READBACK, A_REJECT,
    A_REQMORE, A_REQUEST, BOOKING, CONSTRAINTS, DONTCARE, N_ACTIONS, REQUESTABLE, Catalogue,
)
from runtime.dialogue_tracker import OBS_DIM, Tracker, mask_from_obs, resolve_action
from runtime.dialogue_understanding import Understanding
from trainer.dialogue_goals import GOAL_TYPES, sample_goal
from trainer.dialogue_lexicon import LEXICON
from trainer.dialogue_phrasing import BANKS, noisy, user_text
from trainer.dialogue_user import UserSimulator


@dataclass
class SimConfig:
    noise: float | tuple = 0.0           # typo channel rate; (lo, hi) = drawn per dialogue
    bank: str = "train"                  # phrasing bank: "train" or "heldout"
    patience: tuple = (12, 20)           # system turns before the user hangs up (inclusive)
    tolerance: tuple = (1, 3)            # system mistakes tolerated (inclusive range)
    confirm_tolerance: tuple = (2, 5)    # needless confirmations tolerated (inclusive range)
    p_dontcare: float = 0.2
    p_extra: float = 0.25                # answering a request, also volunteer one more slot
    goal_kind: str | None = None         # only this goal type (None: the GOAL_MIX)
    max_turns: int = 30
    reward_success: float = 20.0
    reward_failure: float = -20.0
    turn_cost: float = 1.0


_NLU_CACHE: dict = {}


def understanding_for(cat: Catalogue) -> Understanding:
    """One compiled understanding per catalogue object (the simulator makes many envs)."""
    hit = _NLU_CACHE.get(id(cat))
    if hit is None or hit[0] is not cat:
        hit = _NLU_CACHE[id(cat)] = (cat, Understanding(LEXICON, cat))
    return hit[1]


class DialogueEnv:
    """Gymnasium-style env: the system (agent) talks to a simulated user through text."""

    obs_dim = OBS_DIM
    n_actions = N_ACTIONS

    def __init__(self, catalogue, cfg: SimConfig | None = None, seed: int | None = None):
        self.cat = catalogue if isinstance(catalogue, Catalogue) else Catalogue(catalogue)
        self.cfg = cfg or SimConfig()
        self.nlu = understanding_for(self.cat)
        self.bank = BANKS[self.cfg.bank]
        self.rng = np.random.default_rng(seed)
        self.user = self.tracker = self.goal = None

    def _noise(self) -> float:
        e = self.cfg.noise
        if isinstance(e, (tuple, list)):
            return float(self.rng.uniform(e[0], e[1]))
        return float(e)

    def _say(self, acts, last_sys=None) -> tuple[str, list]:
        text = noisy(user_text(acts, self.user.intent, self.rng, self.bank, self.cat),
                     self.noise, self.rng)
        self.typos = self.nlu.typos(text)
        return text, self.nlu.parse(text, last_sys)

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        options = options or {}
        self.noise = float(options.get("noise", self._noise()))
        self.goal = options.get("goal") or sample_goal(self.cat, self.rng, self.cfg.p_dontcare,
                                                       self.cfg.goal_kind)
        self.user = UserSimulator(self.goal, self.cat, self.rng, patience=self.cfg.patience,
                                  tolerance=self.cfg.tolerance,
                                  confirm_tolerance=self.cfg.confirm_tolerance,
                                  p_extra=self.cfg.p_extra)
        self.tracker = Tracker(self.cat)
        true = self.user.opening()
        text, heard = self._say(true)
        self.tracker.user(heard, self.typos)
        self.last = {"user_true": true, "user_text": text, "user_heard": heard}
        return self.tracker.features(), {"goal": self.goal, "noise": self.noise, **self.last}

    def action_mask(self) -> np.ndarray:
        return self.tracker.mask()

    def step(self, action: int):
        act = resolve_action(self.tracker, int(action), self.rng)
        self.tracker.system(act)
        true = self.user.respond(act)
        reward = -self.cfg.turn_cost
        terminated = truncated = False
        text, heard = "", []
        if self.user.ended:                                    # the system said bye
            terminated = True
        else:
            text, heard = self._say(true, act)
            self.tracker.user(heard, self.typos)
            if self.user.hung_up:
                terminated = True
            elif self.tracker.turn >= self.cfg.max_turns:
                truncated = True
        success = self.user.success
        if terminated or truncated:
            reward += self.cfg.reward_success if success else self.cfg.reward_failure
        self.last = {"system": act, "user_true": true, "user_text": text, "user_heard": heard}
        info = {"success": success, "clean": success and self.user.repeats == 0,
                "turns": self.tracker.turn, "goal_kind": self.goal.kind, **self.last}
        return self.tracker.features(), float(reward), terminated, truncated, info


# ----------------------------------------------------------------------------- baselines
def _wants(t: Tracker) -> bool:
    return any(t.requested[r] and not t.informed[r] for r in REQUESTABLE)


def rule_policy(t: Tracker, threshold: float | None = None,
                booking_threshold: float | None = None, sloppy: float | None = None,
                recheck: bool = False, readback: float | None = None,
                readback_sloppy: float | None = None) -> int:
    """Hand-written policy: bye when the user is done; info when asked; ask each missing
    constraint; "no match" when nothing fits; offer; ask people and time (unless the user wants
    no booking); refuse a booking the restaurant cannot take; book or change the booking; after
    a "no" to a booking it made, confirm its details; before "no match", confirm a doubtful
    constraint (below ``threshold``). Confirmation (none by default): before the offer, every constraint value understood with a
    confidence below ``threshold``; before the booking, every people/time value below
    ``booking_threshold`` (default ``threshold``), or any at all once more than ``sloppy`` of
    the user's words needed correcting (a careless typist's digits are suspect too), and with
    ``recheck`` a party size or time the user gave as a correction or change of a booking (it
    can be mistyped again, and a second wrong booking costs more). Read-back (none by default):
    before booking or changing, read the whole booking back when a booking detail not yet
    confirmed has a confidence below ``readback`` (1.01: always), or when more than
    ``readback_sloppy`` of the user's words needed correcting."""
    if t.done:
        return A_BYE
    if _wants(t) and t.offered is not None:
        return A_INFORM
    low = _unsure(t, threshold, threshold if booking_threshold is None else booking_threshold,
                  sloppy, recheck)
    if t.offered is None:
        if not t.fresh():               # nothing matches: unless a doubtful value is to blame
            return next((A_CONFIRM[s] for s in low if s in CONSTRAINTS), A_NOMATCH)
        for s in CONSTRAINTS:
            if t.value[s] is None and not (t.named or len(t.matches()) == 1):
                return A_REQUEST[s]
        for s in low:
            if s in CONSTRAINTS:
                return A_CONFIRM[s]
        return A_OFFER
    if t.no_booking:
        return A_REQMORE
    for s in BOOKING:
        if t.value[s] is None:
            return A_REQUEST[s]
    if _disputed(t):                    # "no, that's wrong" to a booking: which part?
        return A_CONFIRM[min((t.conf[s], s) for s in BOOKING if not t.confirmed[s])[1]]
    if not t.booking_current():
        for s in low:
            return A_CONFIRM[s]
        if t.booking_problem() is not None:
            return A_REJECT
        if _read_back(t, readback, readback_sloppy):
            return A_READBACK
        return A_CHANGE if t.booking is not None else A_BOOK
    return A_REQMORE


def _read_back(t: Tracker, below, sloppy) -> bool:
    """Read the booking back: a detail not yet confirmed is below ``below``, or the user is a
    sloppier typist than ``sloppy``."""
    open_ = [s for s in BOOKING if not t.confirmed[s]]
    if not open_:
        return False
    return (below is not None and min(t.conf[s] for s in open_) < below) or (
        sloppy is not None and t.typo_share() > sloppy)


def _disputed(t: Tracker) -> bool:
    """The user said "no" to the booking just made (or confirmed one of its details since) and
    a detail of it is not confirmed yet."""
    if not t.booking_current() or all(t.confirmed[s] for s in BOOKING):
        return False
    a = t.last_sys.action
    return ("negate" in t.last_user and a in (A_BOOK, A_CHANGE)) or (
        "affirm" in t.last_user and a in (A_CONFIRM["people"], A_CONFIRM["time"]))


def _unsure(t: Tracker, threshold, booking_threshold, sloppy, recheck=False) -> list:
    """The slots :func:`rule_policy` confirms: a value (not dontcare, not yet confirmed) below
    its threshold; booking details of a sloppy typist whatever their confidence; with
    ``recheck``, booking details that came from a correction or change."""
    careless = sloppy is not None and t.typo_share() > sloppy
    out = []
    for s in CONSTRAINTS + BOOKING:
        limit = threshold if s in CONSTRAINTS else booking_threshold
        if t.value[s] in (None, DONTCARE) or t.confirmed[s]:
            continue
        if (limit is not None and t.conf[s] < limit) or (careless and s in BOOKING) \
                or (recheck and s in BOOKING and t.corrected[s]):
            out.append(s)
    return out


def rule_confirm_policy(t: Tracker, threshold: float = 0.8) -> int:
    """:func:`rule_policy` plus explicit confirmation of low-confidence values."""
    return rule_policy(t, threshold)


def rule_confirm_all_policy(t: Tracker) -> int:
    """:func:`rule_policy` that confirms every value before using it (the cautious extreme)."""
    return rule_policy(t, 1.01)


def tuned_rule(params: dict):
    """:func:`rule_policy` with ``threshold``, ``booking_threshold``, ``sloppy``, ``recheck``,
    ``readback`` and ``readback_sloppy`` (tuned on training users by
    :func:`trainer.dialogue_eval.tune_rule`)."""
    def rule(t: Tracker) -> int:
        return rule_policy(t, **params)
    return rule


def tracker_policy(fn):
    """Adapt a per-tracker rule into a batched ``policy(obs, envs) -> actions``."""
    def policy(obs, envs):
        return np.array([fn(e.tracker) for e in envs], np.int64)
    return policy


def random_policy(seed: int = 0):
    rng = np.random.default_rng(seed)

    def policy(obs, envs):
        mask = mask_from_obs(obs)
        keys = np.where(mask, rng.random(mask.shape), -1.0)
        return np.argmax(keys, axis=1)
    return policy


def q_policy(q_fn):
    """Greedy masked policy from a batched Q function ``obs [B, OBS_DIM] -> q [B, N_ACTIONS]``."""
    def policy(obs, envs):
        q = np.asarray(q_fn(np.asarray(obs, np.float32)))
        return np.argmax(np.where(mask_from_obs(obs), q, -np.inf), axis=1)
    return policy


def _summary(rows: list) -> dict:
    return {"success_rate": float(np.mean([r[0] for r in rows])),
            "clean_rate": float(np.mean([r[1] for r in rows])),
            "mean_turns": float(np.mean([r[2] for r in rows])),
            "mean_return": float(np.mean([r[3] for r in rows])), "dialogues": len(rows)}


def run_dialogues(policy, catalogue, *, n: int = 1000, noise: float = 0.0, seed: int = 0,
                  bank: str = "train", batch: int = 100, cfg: SimConfig | None = None,
                  outcomes: bool = False) -> dict:
    """Simulate ``n`` dialogues (episode i uses seed ``seed * 1_000_003 + i``, so every policy
    meets the same users) -> success, clean (success with no repeat), mean turns and return,
    overall and per goal type (``by_goal``); with ``outcomes``, also ``success`` and ``turns``
    per episode (arrays in episode order, for paired comparisons)."""
    base = cfg or SimConfig()
    noise = tuple(noise) if isinstance(noise, (tuple, list)) else float(noise)
    cfg = SimConfig(**{**base.__dict__, "noise": noise, "bank": bank})
    cat = catalogue if isinstance(catalogue, Catalogue) else Catalogue(catalogue)
    rows, kinds, order = [], [], []
    for start in range(0, n, batch):
        envs = [DialogueEnv(cat, cfg) for _ in range(min(batch, n - start))]
        obs = np.stack([e.reset(seed=seed * 1_000_003 + start + i)[0] for i, e in enumerate(envs)])
        ret = np.zeros(len(envs))
        active = list(range(len(envs)))
        while active:
            acts = policy(obs[active], [envs[i] for i in active])
            still = []
            for i, a in zip(active, acts):
                o, r, term, trunc, info = envs[i].step(int(a))
                obs[i] = o
                ret[i] += r
                if term or trunc:
                    rows.append((info["success"], info["clean"], info["turns"], ret[i]))
                    kinds.append(info["goal_kind"])
                    order.append(start + i)
                else:
                    still.append(i)
            active = still
    out = _summary(rows)
    by = defaultdict(list)
    for k, row in zip(kinds, rows):
        by[k].append(row)
    out["by_goal"] = {k: _summary(by[k]) for k in GOAL_TYPES if by[k]}
    if outcomes:
        rank = np.argsort(order)
        out["success"] = np.array([rows[k][0] for k in rank], bool)
        out["turns"] = np.array([rows[k][2] for k in rank], float)
    return out

