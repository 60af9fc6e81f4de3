"""Dialogue state: the belief tracker, its observation vector, the action mask and the
resolution of a policy action into a concrete system act.

The simulator (``trainer.dialogue_sim``) uses this very code, so the Q-network sees the same
observation in training and in serving.
"""
from __future__ import annotations

import numpy as np

from runtime.dialogue_domain import (
    A_BOOK, A_BYE, A_CHANGE, A_CONFIRM, A_INFORM, A_NOMATCH, A_NONE, A_OFFER, A_READBACK,
    A_REJECT, A_REQMORE, A_REQUEST, ACTIONS, BOOKING, CONSTRAINTS, DONTCARE, INFORMABLE, N_ACTIONS,
    REQUESTABLE,
    USER_ACTS, Catalogue, SystemAct, booking_ref,
)

COUNT_BUCKETS = (0, 1, 2, 4, 10)   # one-hot of #matches: 0, 1, 2-3, 4-9, >= 10
MAX_TURN = 30
STATE_VERSION = 5

# observation layout (documented so that tests and the trainer can address features)
SLOT_FEATURES = ("filled", "dontcare", "conf", "confirmed", "asked")
STATE_FEATURES = ("offered", "has_booking", "booking_current", "booking_invalid", "done",
                  "no_booking", "rejections", "named", "fresh")
_F_SLOT = 0
_F_UNKNOWN = _F_SLOT + len(INFORMABLE) * len(SLOT_FEATURES)   # constraint value not served
_F_REQ = _F_UNKNOWN + len(CONSTRAINTS)                        # requested, informed per slot
_F_STATE = _F_REQ + 2 * len(REQUESTABLE)
_F_COUNT = _F_STATE + len(STATE_FEATURES)
_F_USER = _F_COUNT + len(COUNT_BUCKETS)
_F_SYS = _F_USER + len(USER_ACTS)
_F_TURN = _F_SYS + N_ACTIONS + 1
_F_TYPOS = _F_TURN + 1            # share of the user's words the spelling had to correct
# cues that the last turns were misunderstood (see Tracker.cue_list)
CUE_FEATURES = ("corrections", "people_corrected", "time_corrected", "repeated", "reasked",
                "words")
_F_CUES = _F_TYPOS + 1
OBS_DIM = _F_CUES + len(CUE_FEATURES)
_NEGATE = USER_ACTS.index("negate")


def feature_index(slot: str, feature: str) -> int:
    """Index of a per-slot feature (e.g. ("people", "filled")) or, with ``slot=None``, of a
    state feature (e.g. (None, "booking_invalid"))."""
    if slot is None:
        return _F_STATE + STATE_FEATURES.index(feature)
    return _F_SLOT + INFORMABLE.index(slot) * len(SLOT_FEATURES) + SLOT_FEATURES.index(feature)


class Tracker:
    """Rule-based belief state tracker shared by the simulator env and the runtime.

    Feed it alternately :meth:`user` (a list of ``(act, slot, value, conf)`` from
    ``parse_user``) and :meth:`system` (a :class:`SystemAct`); read :meth:`features`."""

    def __init__(self, catalogue: Catalogue):
        self.cat = catalogue
        self.value = {s: None for s in INFORMABLE}
        self.conf = {s: 0.0 for s in INFORMABLE}
        self.confirmed = {s: False for s in INFORMABLE}
        self.asked = {s: 0 for s in INFORMABLE}
        self.excluded = {s: set() for s in CONSTRAINTS}
        self.requested = {r: False for r in REQUESTABLE}
        self.informed = {r: False for r in REQUESTABLE}
        self.offered = None            # index of the restaurant on the table
        self.named = False             # ... because the user named it
        self.rejected: set[int] = set()
        self.booking = None            # {"restaurant", "people", "time", "ref"}
        self.done = False
        self.no_booking = False
        self.rejections = 0
        self.turn = 0                  # system turns so far
        self.last_informed = None      # the constraint slot the user changed last
        self.words = self.typos = 0    # the user's words so far, and those corrected
        self.corrections = 0           # times the user said the system got something wrong
        self.corrected = {s: False for s in BOOKING}   # value set by a correction or change
        self.repeated = self.reasked = False            # the last user turn said nothing new
        self.last_user: set[str] = set()
        self.last_sys = SystemAct(A_NONE)

    # -- belief helpers ----------------------------------------------------------------------
    def constraints(self) -> dict:
        return {s: self.value[s] for s in CONSTRAINTS}

    def matches(self) -> np.ndarray:
        return self.cat.matches(self.constraints(), self.excluded)

    def fresh(self) -> list[int]:
        return [int(r) for r in self.matches() if int(r) not in self.rejected]

    def booking_current(self) -> bool:
        b = self.booking
        return b is not None and b["restaurant"] == self.offered \
            and b["people"] == self.value["people"] and b["time"] == self.value["time"]

    def booking_problem(self):
        if self.offered is None or self.value["people"] is None or self.value["time"] is None:
            return None
        return self.cat.booking_problem(self.offered, self.value["people"], self.value["time"])

    def _set(self, slot: str, value, conf: float) -> None:
        if value == self.value[slot]:
            self.conf[slot] = min(1.0, 1.0 - (1.0 - self.conf[slot]) * (1.0 - conf))
        else:
            if slot in BOOKING:      # changed after the system booked or read it back
                self.corrected[slot] = self.value[slot] is not None and (
                    self.booking is not None
                    or self.last_sys.action in (A_CONFIRM[slot], A_READBACK))
            self.value[slot], self.conf[slot], self.confirmed[slot] = value, conf, False
        if slot in CONSTRAINTS:
            self.excluded[slot].discard(value)
            self.last_informed = slot

    def _clear(self, slot: str) -> None:
        self.value[slot], self.conf[slot], self.confirmed[slot] = None, 0.0, False

    def _offer(self, r) -> None:
        if r != self.offered:
            self.offered = r
            self.informed = {q: False for q in REQUESTABLE}

    def _drop_offer(self, reject: bool) -> None:
        if self.offered is not None and reject:
            self.rejected.add(self.offered)
            self.rejections += 1
        self._offer(None)
        self.named = False

    # -- updates -------------------------------------------------------------------------------
    def system(self, act: SystemAct) -> None:
        self.turn += 1
        self.last_sys = act
        a = act.action
        if a < N_ACTIONS and ACTIONS[a].startswith("request_"):
            self.asked[act.slot] += 1
        elif a == A_OFFER and act.restaurant is not None:
            self._offer(act.restaurant)
            self.named = False
        elif a in (A_BOOK, A_CHANGE) and act.restaurant is not None:
            self._offer(act.restaurant)
            self.booking = {"restaurant": act.restaurant, "people": act.people,
                            "time": act.time, "ref": act.ref}
        elif a == A_INFORM and act.restaurant is not None and act.restaurant == self.offered:
            for r in act.slots:
                self.informed[r] = True

    def user(self, acts, typos: tuple = (0, 0)) -> None:
        """``acts`` from ``Understanding.parse``; ``typos`` = (corrected words, words) of the
        turn (``Understanding.typos``): how carefully this user types."""
        self.typos += int(typos[0])
        self.words += int(typos[1])
        kinds = {a[0] for a in acts}
        informed, new = set(), False
        self._count_correction(kinds, acts)
        self.reasked = any(a == "request" and self.informed.get(s) for a, s, *_ in acts)
        for act, slot, value, conf in acts:
            if act == "inform" and slot in INFORMABLE:
                new |= value != self.value[slot]
                self._set(slot, value, float(conf))
                informed.add(slot)
            elif act == "exclude" and slot in CONSTRAINTS:
                self.excluded[slot].add(value)
                if self.value[slot] in (None, value):
                    self._set(slot, DONTCARE, float(conf))
                    self.excluded[slot].add(value)
                informed.add(slot)
            elif act == "request" and slot in REQUESTABLE:
                self.requested[slot], self.informed[slot] = True, False
            elif act == "name" and value is not None:
                if value != self.offered:
                    self._offer(int(value))
                self.named = True
                self.rejected.discard(int(value))
            elif act == "reject_name" and value is not None:
                self.rejected.add(int(value))
                if self.offered == value:
                    self._drop_offer(reject=True)
            elif act == "nobook":
                self.no_booking = True
            elif act == "reqalts" and self.offered is not None:
                self._drop_offer(reject=True)
        self.repeated = bool(informed) and not new and not (
            self.last_sys.slot in informed and self.last_sys.action < N_ACTIONS
            and ACTIONS[self.last_sys.action].startswith(("request_", "confirm_")))
        self._answer(kinds, informed)
        if self.offered is not None and informed & set(CONSTRAINTS) and not self.named \
                and not self.cat.satisfies(self.offered, self.constraints(), self.excluded):
            self._drop_offer(reject=True)     # a belief that no longer fits retracts the offer
        content = kinds & {"inform", "exclude", "request", "reqalts", "name"}
        self.done = ("done" in kinds and not content) or (self.done and not kinds)
        self.last_user = {("inform" if k == "exclude" else k) for k in kinds} & set(USER_ACTS)

    def _count_correction(self, kinds: set, acts) -> None:
        """A "no" (or a different booking detail) right after the system booked, changed a
        booking, read the booking back or read a value back: the system had misunderstood
        something."""
        a = self.last_sys.action
        if a in (A_BOOK, A_CHANGE, A_READBACK):
            changed = any(act == "inform" and s in BOOKING and v != self.value[s]
                          for act, s, v, _ in acts)
            self.corrections += "negate" in kinds or changed
        elif a < N_ACTIONS and ACTIONS[a].startswith("confirm_"):
            self.corrections += "negate" in kinds

    def _answer(self, kinds: set, informed: set) -> None:
        """A yes/no to the system's last act (a confirmation, a read-back or an offer). A "yes"
        to a read-back confirms the booking details read back that the user did not correct
        in the same turn ("yes, but at 8pm" confirms the party size only)."""
        last = self.last_sys
        if last.action == A_READBACK and last.restaurant == self.offered:
            if "affirm" in kinds and "negate" not in kinds:
                for s in BOOKING:
                    if s not in informed and self.value[s] == getattr(last, s):
                        self.conf[s], self.confirmed[s] = 1.0, True
        elif last.action < N_ACTIONS and ACTIONS[last.action].startswith("confirm_"):
            s = last.slot
            if "negate" in kinds and s not in informed:
                self._clear(s)
            elif "affirm" in kinds and s not in informed and self.value[s] == last.value:
                self.conf[s], self.confirmed[s] = 1.0, True
        elif last.action == A_OFFER and last.restaurant is not None:
            if "negate" in kinds and self.offered == last.restaurant and not informed \
                    and "request" not in kinds:
                self._drop_offer(reject=True)

    # -- observation ---------------------------------------------------------------------------
    def features(self) -> np.ndarray:
        return np.array(self.feature_list(), np.float32)

    def feature_list(self) -> list:
        """The observation as a plain list (:func:`mask_row` reads it without numpy)."""
        f = [0.0] * OBS_DIM      # a list, converted once: numpy item assignment is slower
        i = _F_SLOT
        for s in INFORMABLE:
            v = self.value[s]
            f[i] = v is not None
            f[i + 1] = v == DONTCARE
            f[i + 2] = self.conf[s]
            f[i + 3] = self.confirmed[s]
            f[i + 4] = min(self.asked[s], 3) / 3.0
            i += len(SLOT_FEATURES)
        for k, s in enumerate(CONSTRAINTS):
            v = self.value[s]
            f[_F_UNKNOWN + k] = v is not None and not self.cat.known(s, v)
        i = _F_REQ
        for r in REQUESTABLE:
            f[i], f[i + 1] = self.requested[r], self.informed[r]
            i += 2
        fresh = self.fresh()
        state = (self.offered is not None, self.booking is not None, self.booking_current(),
                 self.booking_problem() is not None, self.done, self.no_booking,
                 min(self.rejections, 3) / 3.0, self.named, bool(fresh))
        f[_F_STATE:_F_STATE + len(state)] = state
        n = len(self.matches())
        f[_F_COUNT + sum(n >= b for b in COUNT_BUCKETS) - 1] = 1.0
        for a in self.last_user:
            f[_F_USER + USER_ACTS.index(a)] = 1.0
        f[_F_SYS + self.last_sys.action] = 1.0
        f[_F_TURN] = min(self.turn, MAX_TURN) / MAX_TURN
        f[_F_TYPOS] = self.typo_share()
        f[_F_CUES:] = self.cue_list()
        return f

    def cue_list(self) -> list:
        """Observable signs that the system misunderstood: corrections so far (/3, clipped);
        per booking detail, its value came from a correction or change and is not confirmed;
        the last user turn only repeated values already held, or asked again for info already
        told; how many words the typo share rests on (/40, clipped)."""
        return [min(self.corrections, 3) / 3.0,
                self.corrected["people"] and not self.confirmed["people"],
                self.corrected["time"] and not self.confirmed["time"],
                self.repeated, self.reasked, min(self.words, 40) / 40.0]

    def typo_share(self) -> float:
        """Corrected words per word the user typed (0 before any word), clipped to 1."""
        return min(1.0, self.typos / self.words) if self.words else 0.0

    def mask(self) -> np.ndarray:
        return np.array(mask_row(self.feature_list()), bool)

    # -- state for apps (JSON) -----------------------------------------------------------------
    def to_state(self) -> dict:
        return {"version": STATE_VERSION,
                "value": dict(self.value), "conf": dict(self.conf),
                "confirmed": dict(self.confirmed), "asked": dict(self.asked),
                "excluded": {s: sorted(v) for s, v in self.excluded.items()},
                "requested": dict(self.requested), "informed": dict(self.informed),
                "offered": self.offered, "named": self.named, "rejected": sorted(self.rejected),
                "booking": dict(self.booking) if self.booking else None, "done": self.done,
                "no_booking": self.no_booking, "rejections": self.rejections,
                "turn": self.turn, "last_informed": self.last_informed,
                "words": self.words, "typos": self.typos,
                "corrections": self.corrections, "corrected": dict(self.corrected),
                "repeated": self.repeated, "reasked": self.reasked,
                "last_user": sorted(self.last_user), "last_sys": self.last_sys.to_json()}

    @classmethod
    def from_state(cls, cat: Catalogue, state: dict) -> "Tracker":
        """Rebuild a tracker from :meth:`to_state` (ValueError naming ``state`` if damaged)."""
        t = cls(cat)
        try:
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"version {state.get('version')!r} != {STATE_VERSION}")
            for name in ("value", "conf", "confirmed", "asked", "requested", "informed"):
                d = getattr(t, name)
                src = state[name]
                for k in d:
                    d[k] = type(d[k])(src[k]) if name != "value" else (
                        None if src[k] is None else str(src[k]))
            t.excluded = {s: {str(v) for v in state["excluded"][s]} for s in CONSTRAINTS}
            t.rejected = {_restaurant(cat, r) for r in state["rejected"]}
            t.offered = None if state["offered"] is None else _restaurant(cat, state["offered"])
            b = state["booking"]
            t.booking = None if b is None else {
                "restaurant": _restaurant(cat, b["restaurant"]), "people": str(b["people"]),
                "time": str(b["time"]), "ref": str(b["ref"])}
            t.named, t.done = bool(state["named"]), bool(state["done"])
            t.no_booking, t.rejections = bool(state["no_booking"]), int(state["rejections"])
            t.turn, t.last_informed = int(state["turn"]), state["last_informed"]
            t.words, t.typos = int(state["words"]), int(state["typos"])
            t.corrections = int(state["corrections"])
            t.corrected = {s: bool(state["corrected"][s]) for s in BOOKING}
            t.repeated, t.reasked = bool(state["repeated"]), bool(state["reasked"])
            t.last_user = {str(a) for a in state["last_user"]} & set(USER_ACTS)
            t.last_sys = SystemAct.from_json(dict(state["last_sys"]))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise ValueError(f"state is not a dialogue state returned by a previous reply "
                             f"(pass reply.state back unchanged): {e}") from None
        return t


def _restaurant(cat: Catalogue, r) -> int:
    r = int(r)
    if not 0 <= r < len(cat):
        raise ValueError(f"restaurant {r} out of range")
    return r


def mask_from_obs(obs: np.ndarray) -> np.ndarray:
    """Valid actions from observations [B, OBS_DIM] -> bool [B, N_ACTIONS].

    request_s: s holds no value yet and was asked fewer than 3 times (a value heard, right or
    wrong, is checked with confirm_s; a "no" clears it); bye: always; reqmore: no restaurant on
    the table but some match (it asks for more preferences; with none, say so), or something
    done for the one on the table (the booking is current, info was told, or the user wants
    no booking): "anything else?" is no answer to "book it";
    confirm_s: s holds a value (not dontcare) that the user
    has not confirmed, and, while the booking is current, only after the user said "no" (to
    it) or to check the other detail after confirming one (nothing else is in doubt then);
    offer: no restaurant on the table, some not-rejected restaurant matches
    and every constraint is filled (or exactly one restaurant matches); nomatch: no restaurant
    on the table and no not-rejected restaurant matches; book: a restaurant is offered, people
    and time are known, it can take them and there is no booking yet; change: there is a
    booking, the details or the restaurant changed since and the restaurant can take them;
    readback: book or change is valid and not both booking details are confirmed;
    reject_booking: the offered restaurant cannot take the known people/time; inform: a
    restaurant is offered and some info the user asked for is still untold. Once the user said goodbye
    (and nothing else), only bye."""
    obs = np.asarray(obs, np.float32).reshape(-1, OBS_DIM)
    on = obs > 0.5
    slots = on[:, _F_SLOT:_F_UNKNOWN].reshape(-1, len(INFORMABLE), len(SLOT_FEATURES))
    filled, dontcare, confirmed = slots[:, :, 0], slots[:, :, 1], slots[:, :, 3]
    st = {name: on[:, _F_STATE + k] for k, name in enumerate(STATE_FEATURES)}
    offered, fresh = st["offered"], st["fresh"]
    details = filled[:, len(CONSTRAINTS):].all(axis=1)
    one = on[:, _F_COUNT + 1]
    m = np.ones((obs.shape[0], N_ACTIONS), bool)
    checking = ~st["booking_current"] | on[:, _F_USER + _NEGATE] \
        | on[:, _F_SYS + A_CONFIRM["people"]] | on[:, _F_SYS + A_CONFIRM["time"]]
    asked = obs[:, _F_SLOT + 4:_F_UNKNOWN:len(SLOT_FEATURES)]
    for k, s in enumerate(INFORMABLE):
        m[:, A_CONFIRM[s]] = filled[:, k] & ~(dontcare[:, k] | confirmed[:, k]) & checking
        m[:, A_REQUEST[s]] = ~filled[:, k] & (asked[:, k] < 0.9)    # at most 3 times
    m[:, A_OFFER] = ~offered & fresh & (filled[:, :len(CONSTRAINTS)].all(axis=1) | one)
    m[:, A_NOMATCH] = ~offered & ~fresh
    ready = offered & details & ~st["booking_current"]
    m[:, A_BOOK] = ready & ~st["has_booking"] & ~st["booking_invalid"]
    m[:, A_CHANGE] = ready & st["has_booking"] & ~st["booking_invalid"]
    m[:, A_READBACK] = ready & ~st["booking_invalid"] \
        & ~confirmed[:, len(CONSTRAINTS):].all(axis=1)
    m[:, A_REJECT] = ready & st["booking_invalid"]
    req = obs[:, _F_REQ:_F_STATE].reshape(-1, len(REQUESTABLE), 2) > 0.5
    m[:, A_INFORM] = offered & (req[:, :, 0] & ~req[:, :, 1]).any(axis=1)
    m[:, A_REQMORE] = (~offered & fresh) | st["booking_current"] | st["no_booking"] \
        | req[:, :, 1].any(axis=1)
    m[st["done"]] = False                  # the user said goodbye: say goodbye
    m[st["done"], A_BYE] = True
    return m


def mask_row(f: list) -> list[bool]:
    """:func:`mask_from_obs` for one observation as a list, in plain Python (a reply needs one
    row; numpy's per-call overhead is most of the batched version's cost there)."""
    on = [x > 0.5 for x in f]
    m = [True] * N_ACTIONS
    if on[_F_STATE + STATE_FEATURES.index("done")]:
        return [a == A_BYE for a in range(N_ACTIONS)]
    st = dict(zip(STATE_FEATURES, on[_F_STATE:_F_STATE + len(STATE_FEATURES)]))
    checking = not st["booking_current"] or on[_F_USER + _NEGATE] \
        or on[_F_SYS + A_CONFIRM["people"]] or on[_F_SYS + A_CONFIRM["time"]]
    filled, confirmed = [], []
    for k, s in enumerate(INFORMABLE):
        base = _F_SLOT + k * len(SLOT_FEATURES)
        filled.append(on[base])
        confirmed.append(on[base + 3])
        m[A_CONFIRM[s]] = on[base] and not (on[base + 1] or on[base + 3]) and checking
        m[A_REQUEST[s]] = not on[base] and f[base + 4] < 0.9
    offered, fresh = st["offered"], st["fresh"]
    m[A_OFFER] = not offered and fresh and (all(filled[:len(CONSTRAINTS)]) or on[_F_COUNT + 1])
    m[A_NOMATCH] = not offered and not fresh
    ready = offered and all(filled[len(CONSTRAINTS):]) and not st["booking_current"]
    m[A_BOOK] = ready and not st["has_booking"] and not st["booking_invalid"]
    m[A_CHANGE] = ready and st["has_booking"] and not st["booking_invalid"]
    m[A_READBACK] = ready and not st["booking_invalid"] and not all(confirmed[len(CONSTRAINTS):])
    m[A_REJECT] = ready and st["booking_invalid"]
    m[A_INFORM] = offered and any(on[i] and not on[i + 1] for i in range(_F_REQ, _F_STATE, 2))
    m[A_REQMORE] = (not offered and fresh) or st["booking_current"] or st["no_booking"] or any(
        on[i + 1] for i in range(_F_REQ, _F_STATE, 2))
    return m


def resolve_action(tracker: Tracker, action: int, rng: np.random.Generator) -> SystemAct:
    """Turn a policy action into a concrete act against the belief and the catalogue.

    An action that is not valid in this state becomes ``SystemAct(A_NONE)`` (a wasted turn)."""
    t = tracker
    name = ACTIONS[action] if 0 <= action < N_ACTIONS else "none"
    if name.startswith("request_"):
        return SystemAct(action, slot=name[8:])
    if name.startswith("confirm_"):
        s = name[8:]
        if t.value[s] is None or t.value[s] == DONTCARE:
            return SystemAct(A_NONE)
        return SystemAct(action, slot=s, value=t.value[s])
    if action == A_OFFER:
        pool = t.fresh()
        if not pool:
            return _nomatch(t)
        if t.value["people"] is not None or t.value["time"] is not None:   # can take them
            able = [r for r in pool if t.cat.booking_problem(
                r, t.value["people"] or "1", t.value["time"] or t.cat.hours[0][0]) is None]
            pool = able or pool
        return SystemAct(A_OFFER, restaurant=pool[int(rng.integers(len(pool)))])
    if action == A_NOMATCH:
        return _nomatch(t)
    if action in (A_BOOK, A_CHANGE, A_REJECT, A_READBACK):
        return _booking_act(t, action, rng)
    if action == A_INFORM:
        if t.offered is None:
            return SystemAct(A_NONE)
        untold = [r for r in REQUESTABLE if not t.informed[r]]
        slots = [r for r in untold if t.requested[r]] or untold
        return SystemAct(A_INFORM, restaurant=t.offered, slots=slots) if slots \
            else SystemAct(A_NONE)
    if action == A_REQMORE:       # before an offer it asks for more preferences
        return SystemAct(action, value="open" if t.offered is None else None)
    if action == A_BYE:
        return SystemAct(action)
    return SystemAct(A_NONE)


def _nomatch(t: Tracker) -> SystemAct:
    """"No such restaurant" (or "no other one"), with values that would match instead."""
    c = {s: v for s, v in t.constraints().items() if v not in (None, DONTCARE)}
    unknown = [s for s in c if not t.cat.known(s, c[s])]
    slot = (unknown or ([t.last_informed] if t.last_informed in c else []) or list(c)
            or ["cuisine"])[0]
    others = {s: v for s, v in t.constraints().items() if s != slot}
    excluded = {**t.excluded, slot: t.excluded[slot] | {c.get(slot)}} if slot in t.excluded \
        else t.excluded
    suggest = t.cat.suggestions(slot, others, excluded)
    other = bool(len(t.matches()))        # every match was rejected: "no other one"
    return SystemAct(A_NOMATCH, slot=slot, value="other" if other else None, slots=suggest,
                     constraints=c)


def _booking_act(t: Tracker, action: int, rng) -> SystemAct:
    if t.offered is None or t.value["people"] is None or t.value["time"] is None:
        return SystemAct(A_NONE)
    problem = t.booking_problem()
    if action == A_REJECT or problem is not None:
        if problem is None:
            return SystemAct(A_NONE)
        r = t.cat.restaurants[t.offered]
        limit = str(r.get("max_people", 99)) if problem == "people" else t.cat.hours_text()
        return SystemAct(A_REJECT, slot=problem, value=limit, restaurant=t.offered,
                         people=t.value["people"], time=t.value["time"])
    if action == A_CHANGE and t.booking is None:
        action = A_BOOK
    if action == A_READBACK:      # "change" when a booking exists: the template says so
        return SystemAct(A_READBACK, restaurant=t.offered, people=t.value["people"],
                         time=t.value["time"], value="change" if t.booking else None)
    return SystemAct(action, restaurant=t.offered, people=t.value["people"],
                     time=t.value["time"], ref=booking_ref(rng))
