"""Dialogue domain: slots, the system act set, the restaurant catalogue and system acts.

Shared by the runtime (``runtime.dialogue``) and the trainer's simulator, so that training and
serving use one definition of the acts and of what a restaurant can serve.
"""
from __future__ import annotations

import numpy as np

CONSTRAINTS = ("cuisine", "area", "price")
BOOKING = ("people", "time")
INFORMABLE = CONSTRAINTS + BOOKING
REQUESTABLE = ("phone", "address", "postcode")
DONTCARE = "dontcare"

# The system's act set (what the Q-network scores). "offer" proposes a matching restaurant (a
# fresh one when the user asked for an alternative), "nomatch" says that nothing matches and
# suggests values that do, "book" makes a booking, "change" changes an existing booking to the
# details the user gave since, "reject_booking" refuses a booking the restaurant cannot take and
# says why, "inform" gives the requested phone/address/postcode of the restaurant on the table,
# "readback" reads the whole booking (restaurant, people, time) back before making or changing
# it ("A table for 5 at 19:00 at Curry Garden, shall I book it?"): one turn that checks both
# details at once, as booking systems do.
ACTIONS = tuple([f"request_{s}" for s in INFORMABLE] + [f"confirm_{s}" for s in INFORMABLE]
                + ["offer", "nomatch", "book", "change", "readback", "reject_booking", "inform",
                   "reqmore", "bye"])
N_ACTIONS = len(ACTIONS)
A_REQUEST = {s: ACTIONS.index(f"request_{s}") for s in INFORMABLE}
A_CONFIRM = {s: ACTIONS.index(f"confirm_{s}") for s in INFORMABLE}
(A_OFFER, A_NOMATCH, A_BOOK, A_CHANGE, A_READBACK, A_REJECT, A_INFORM, A_REQMORE, A_BYE) = (
    ACTIONS.index(a) for a in ("offer", "nomatch", "book", "change", "readback",
                               "reject_booking", "inform", "reqmore", "bye"))
A_NONE = N_ACTIONS            # "no system act yet / greeting / not understood"

# user act kinds the tracker distinguishes (the observation's "last user act" flags)
USER_ACTS = ("inform", "request", "affirm", "negate", "done", "reqalts", "nobook")

_REF_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def booking_ref(rng: np.random.Generator) -> str:
    return "".join(_REF_ALPHABET[k] for k in rng.integers(0, len(_REF_ALPHABET), 6).tolist())


def minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class Catalogue:
    """The restaurants as numpy columns (value indices) for fast matching, plus what each can
    serve: ``max_people`` per restaurant and the booking ``hours`` (time windows, inclusive)."""

    def __init__(self, data: dict):
        self.ontology = {s: list(data["ontology"][s]) for s in CONSTRAINTS}
        self.index = {s: {v: i for i, v in enumerate(vals)} for s, vals in self.ontology.items()}
        self.restaurants = list(data["restaurants"])
        self.names = [r["name"] for r in self.restaurants]
        self.hours = [tuple(h) for h in data.get("hours", [["00:00", "23:59"]])]
        self.slot_minutes = int(data.get("slot_minutes", 15))   # bookings on the quarter hour
        self.max_party = max([int(r.get("max_people", 99)) for r in data["restaurants"]] or [99])
        self._windows = [(minutes(a), minutes(b)) for a, b in self.hours]
        self.cols = {s: np.array([self.index[s][r[s]] for r in self.restaurants], np.int16)
                     for s in CONSTRAINTS}
        self.by_name = {n.lower(): i for i, n in enumerate(self.names)}
        self._all = np.arange(len(self.restaurants))
        self._all.setflags(write=False)
        self._memo: dict = {}

    def __len__(self) -> int:
        return len(self.restaurants)

    def known(self, slot: str, value) -> bool:
        return value == DONTCARE or value in self.index.get(slot, ())

    def matches(self, belief: dict, excluded: dict | None = None) -> np.ndarray:
        """Indices of restaurants consistent with ``belief`` (slot -> value/dontcare/None) and
        none of the ``excluded`` values (slot -> tuple of values). A value that is not in the
        ontology (an "unknown" value such as "ethiopian") matches nothing. Memoised (read-only
        arrays): every reply needs it."""
        key = (tuple(belief.get(s) for s in CONSTRAINTS),
               tuple(tuple(sorted((excluded or {}).get(s, ()))) for s in CONSTRAINTS))
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) >= 4096:      # unknown values could make keys unbounded
                self._memo.clear()
            hit = self._memo[key] = self._match(belief, excluded or {})
        return hit

    def _match(self, belief: dict, excluded: dict) -> np.ndarray:
        ok = None
        for s in CONSTRAINTS:
            v = belief.get(s)
            conds = []
            if v is not None and v != DONTCARE:
                conds.append(self.cols[s] == self.index[s].get(v, -1))
            for x in excluded.get(s, ()):
                if x in self.index[s]:
                    conds.append(self.cols[s] != self.index[s][x])
            for m in conds:
                ok = m if ok is None else ok & m
        if ok is None:
            return self._all
        found = np.flatnonzero(ok)
        found.setflags(write=False)
        return found

    def satisfies(self, r: int, constraints: dict, excluded: dict | None = None) -> bool:
        rest = self.restaurants[r]
        if any(rest[s] in vals for s, vals in (excluded or {}).items() if s in CONSTRAINTS):
            return False
        return all(v in (None, DONTCARE) or rest[s] == v for s, v in constraints.items()
                   if s in CONSTRAINTS)

    def booking_problem(self, r: int, people, time) -> str | None:
        """Why restaurant ``r`` cannot take this booking: "people", "time" or None (it can)."""
        try:
            n = int(people)
        except (TypeError, ValueError):
            return "people"
        if not 1 <= n <= int(self.restaurants[r].get("max_people", 99)):
            return "people"
        try:
            t = minutes(str(time))
        except ValueError:
            return "time"
        if not any(a <= t <= b for a, b in self._windows):
            return "time"
        return None

    def plausible(self, slot: str, value) -> bool:
        """Could a user mean this? A time on the booking grid (every ``slot_minutes``: "18:39"
        is no slot anyone books), a party of at most twice the largest table ("44" is a slip).
        Times outside the hours and parties too large for a table stay plausible: people do ask
        for them, and the booking is refused with the reason."""
        try:
            if slot == "time":
                return minutes(str(value)) % self.slot_minutes == 0
            if slot == "people":
                return 1 <= int(value) <= 2 * self.max_party
        except ValueError:
            return False
        return True

    def hours_text(self) -> str:
        return " and ".join(f"{a} to {b}" for a, b in self.hours)

    def suggestions(self, slot: str, belief: dict, excluded: dict | None = None,
                    limit: int = 3) -> list[str]:
        """Values of ``slot`` that would match given the other constraints (most restaurants
        first): what a "no match" reply suggests instead."""
        counts = []
        for v in self.ontology[slot]:
            if v in (excluded or {}).get(slot, ()):
                continue
            n = len(self.matches({**belief, slot: v}, excluded))
            if n:
                counts.append((-n, self.ontology[slot].index(v), v))
        return [v for _, _, v in sorted(counts)[:limit]]


class SystemAct:
    """One system dialogue act with its arguments (what the templates render).

    ``slot``/``value``: the requested or confirmed slot and value, or for "reject_booking" the
    reason ("people"/"time") and the limit; ``slots``: the info given ("inform") or the
    suggested values ("nomatch"); ``constraints``: what did not match ("nomatch")."""

    __slots__ = ("action", "slot", "value", "restaurant", "people", "time", "slots",
                 "constraints", "ref")

    def __init__(self, action: int, slot=None, value=None, restaurant=None, people=None,
                 time=None, slots=(), constraints=None, ref=None):
        self.action, self.slot, self.value, self.restaurant = action, slot, value, restaurant
        self.people, self.time, self.slots = people, time, tuple(slots)
        self.constraints, self.ref = constraints, ref

    @property
    def name(self) -> str:
        return ACTIONS[self.action] if 0 <= self.action < N_ACTIONS else "none"

    def to_json(self) -> dict:
        out = {"action": self.name}
        for k in self.__slots__[1:]:
            v = getattr(self, k)
            if v not in (None, ()):
                out[k] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_json(cls, d: dict) -> "SystemAct":
        name = d.get("action", "none")
        action = ACTIONS.index(name) if name in ACTIONS else A_NONE
        kw = {k: d[k] for k in cls.__slots__[1:] if k in d}
        if "slots" in kw:
            kw["slots"] = tuple(kw["slots"])
        return cls(action, **kw)

    def __repr__(self) -> str:
        args = {k: getattr(self, k) for k in self.__slots__[1:]
                if getattr(self, k) not in (None, ())}
        return f"SystemAct({self.name}, {args})"
