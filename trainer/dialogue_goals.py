"""User goals of the dialogue simulator: what real users bring to a restaurant assistant.

Goal types (``GOAL_MIX`` gives the proportions; judged realistic from the hand-written test
conversations: most users want a table, a fifth only want info):

* ``book``: constraints (some "dontcare"), a party size and a time, maybe info requests;
* ``info``: phone/address/postcode of a restaurant named by the user or found by constraints,
  no booking;
* ``alternatives``: turns down 1-2 suitable offers (by "no", "anything else?" or by name)
  before accepting one (books it, or only asks for info);
* ``change``: books, then changes the party size or the time;
* ``impossible``: asks for something the catalogue cannot serve (a cuisine or area it does not
  have, a combination no restaurant has, a party too large or a time outside the hours), then
  falls back when the system says so;
* ``negation``: "anything but italian" / "nothing too expensive";
* ``mind``: says one value, then changes its mind ("actually, make it chinese").

Every goal also has a ``style``: all constraints in the first turn, or one slot at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from runtime.dialogue_domain import CONSTRAINTS, DONTCARE, REQUESTABLE, Catalogue
from trainer.dialogue_lexicon import HOURS, LEXICON, ONTOLOGY

GOAL_MIX = {"book": 0.30, "info": 0.20, "alternatives": 0.12, "change": 0.10,
            "impossible": 0.12, "negation": 0.08, "mind": 0.08}
GOAL_TYPES = tuple(GOAL_MIX)
PEOPLE = [str(n) for n in range(1, 9)]
TIMES = ["12:00", "12:30", "13:00", "13:30", "14:00", "17:30", "18:00", "18:30", "19:00",
         "19:30", "20:00", "20:30", "21:00"]
BAD_TIMES = ["10:00", "11:00", "16:00", "22:00", "23:00"]


@dataclass
class Goal:
    kind: str
    constraints: dict                  # slot -> value or DONTCARE: what the user settles for
    people: str | None                 # None: no booking wanted
    time: str | None
    requests: tuple = ()
    excluded: dict = field(default_factory=dict)   # slot -> value the user does not want
    name: int | None = None            # info about a restaurant the user names
    rejects: int = 0                   # suitable offers turned down before accepting one
    reject_style: str = "negate"       # "negate", "reqalts" or "name"
    change: tuple | None = None        # (slot, new value) asked after the booking is made
    initial: dict = field(default_factory=dict)    # slot -> value said first (impossible/mind)
    style: str = "all"                 # "all" at once or "one" slot at a time
    target: int = -1                   # the restaurant the goal was drawn from

    @property
    def book(self) -> bool:
        return self.people is not None


def _pick(rng, xs):
    return xs[int(rng.integers(len(xs)))]


def _base(cat: Catalogue, rng, p_dontcare: float) -> tuple[int, dict]:
    r = int(rng.integers(len(cat)))
    rest = cat.restaurants[r]
    c = {s: rest[s] for s in CONSTRAINTS}
    for s in [s for s in CONSTRAINTS if rng.random() < p_dontcare][:2]:
        c[s] = DONTCARE
    return r, c


def _booking(cat: Catalogue, r: int, rng) -> tuple[str, str]:
    limit = int(cat.restaurants[r]["max_people"])
    return str(int(rng.integers(1, min(8, limit) + 1))), _pick(rng, TIMES)


def sample_goal(cat: Catalogue, rng: np.random.Generator, p_dontcare: float = 0.2,
                kind: str | None = None) -> Goal:
    kind = kind or str(rng.choice(GOAL_TYPES, p=list(GOAL_MIX.values())))
    r, c = _base(cat, rng, p_dontcare)
    people, time = _booking(cat, r, rng)
    requests = tuple(q for q in REQUESTABLE if rng.random() < 0.3)
    g = Goal(kind, c, people, time, requests, target=r,
             style="all" if rng.random() < 0.5 else "one")
    if kind == "info":
        g.people = g.time = None
        g.requests = requests or (_pick(rng, REQUESTABLE),)
        if rng.random() < 0.5:
            g.name = r
    elif kind == "alternatives":
        n_match = sum(cat.booking_problem(int(m), people, time) is None   # one must be left
                      for m in cat.matches(c))                             # that can take them
        g.rejects = int(min(rng.integers(1, 3), n_match - 1))
        g.reject_style = _pick(rng, ["negate", "reqalts", "name"])
        if g.rejects <= 0:
            g.kind = "book"
        if rng.random() < 0.3:
            g.people = g.time = None
            g.requests = requests or (_pick(rng, REQUESTABLE),)
    elif kind == "change":
        slot = _pick(rng, ["people", "time"])
        if slot == "people":
            limit = int(cat.restaurants[r]["max_people"])
            new = _pick(rng, [p for p in PEOPLE if p != people and int(p) <= limit])
        else:
            new = _pick(rng, [t for t in TIMES if t != time])
        g.change = (slot, new)
    elif kind == "impossible":
        _impossible(g, cat, rng)
    elif kind == "negation":
        _negation(g, cat, rng)
    elif kind == "mind":
        slot = _pick(rng, [s for s in CONSTRAINTS if c[s] != DONTCARE] or ["cuisine"])
        if c[slot] == DONTCARE:
            c[slot] = cat.restaurants[r][slot]
        g.initial = {slot: _pick(rng, [v for v in ONTOLOGY[slot] if v != c[slot]])}
    return g


def _impossible(g: Goal, cat: Catalogue, rng) -> None:
    u = rng.random()
    if u < 0.45:                                     # a value the catalogue does not have
        slot = "cuisine" if rng.random() < 0.8 else "area"
        g.initial = {slot: _pick(rng, LEXICON["unknown"][slot])}
        if g.constraints[slot] == DONTCARE:
            g.constraints[slot] = cat.restaurants[g.target][slot]
    elif u < 0.65:                                   # a combination no restaurant has
        for _ in range(30):
            price = _pick(rng, ONTOLOGY["price"])
            c = {**g.constraints, "price": price}
            c = {s: (cat.restaurants[g.target][s] if v == DONTCARE else v) for s, v in c.items()}
            if not len(cat.matches(c)):
                g.constraints = {s: cat.restaurants[g.target][s] for s in CONSTRAINTS}
                g.initial = {"price": price}
                return
        g.kind = "book"
    else:                                            # a booking the restaurant cannot take
        if g.people is None:
            g.people, g.time = _booking(cat, g.target, rng)
        if rng.random() < 0.5:
            g.initial = {"people": str(int(rng.integers(11, 21)))}
        else:
            g.initial = {"time": _pick(rng, BAD_TIMES)}


def _negation(g: Goal, cat: Catalogue, rng) -> None:
    rest = cat.restaurants[g.target]
    if rng.random() < 0.7:
        g.constraints["cuisine"] = DONTCARE
        g.excluded = {"cuisine": _pick(rng, [v for v in ONTOLOGY["cuisine"]
                                             if v != rest["cuisine"]])}
    elif rest["price"] != "expensive":
        g.constraints["price"] = DONTCARE
        g.excluded = {"price": "expensive"}
    else:
        g.kind = "book"


def hours_ok(time: str) -> bool:
    h = int(time[:2]) * 60 + int(time[3:])
    return any(int(a[:2]) * 60 + int(a[3:]) <= h <= int(b[:2]) * 60 + int(b[3:])
               for a, b in HOURS)
