"""Dialogue: the next system reply of a restaurant-booking assistant (numpy + onnxruntime only).

    generate("dialogue", history=["I want cheap italian food in the north"], seed=0)
    -> 'How about Da Mario? It serves italian food in the north, cheap price range.'
    generate("dialogue", history=[])      # the system opens
    -> 'Hi, welcome to the restaurant booking service. What kind of restaurant would you like?'

Pipeline for one reply (this module is also the *training* featurisation: ``trainer.dialogue_sim``
imports :class:`Tracker`, :func:`resolve_action`, :func:`mask_from_obs`, so the Q-network sees
exactly the same observation vector in training and in serving):

1. ``history`` (user turn first, alternating user/system, odd length; empty = the system opens)
   is replayed turn by turn. User turns go through :func:`parse_user`, a keyword/regex
   understanding step (lexicon shipped as JSON) that yields acts ``(act, slot, value, conf)``;
   system turns go through :func:`parse_system` (the shipped templates turned into regexes,
   with a keyword fallback for hand-written system turns) to recover the system act.
2. :class:`Tracker` keeps the belief: per informable slot the value, confidence, dontcare and
   confirmed flags; requested/informed info; the current offer, rejected offers, booking;
   the last user and system acts; the turn count. :meth:`Tracker.features` turns it into the
   float32 observation (``OBS_DIM``), with the number of catalogue restaurants matching the
   belief (numpy lookup) as a bucketed one-hot.
3. The exported Q-network (``obs [None, OBS_DIM] -> q [None, N_ACTIONS]``) scores the
   ``ACTIONS``; invalid acts are masked (:func:`mask_from_obs`), the best one is resolved
   against the catalogue (:func:`resolve_action`: which restaurant to offer/book, what to
   inform) and rendered with a template variant chosen by ``rng`` (so the seed picks the
   wording and, among equally matching restaurants, which one is offered).

An empty history gets a greeting (a fixed template act: the simulator's users always speak
first, so the policy is never asked to open).

Caps: ``history`` at most ``MAX_TURNS`` (64) turns of at most ``MAX_CHARS`` (1,000) characters
each; the history must have odd length (it ends with a user turn) or be empty.

Slots: cuisine, area, price (constraints that select restaurants), people, time (booking
details); requestable: phone, address. Confidences: canonical keywords 0.95, synonyms 0.85,
context-only readings (a bare number after "how many people?", "I don't mind") 0.8.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from runtime import options, registry
from runtime.errors import ModelError

# ----------------------------------------------------------------------------- the domain
CONSTRAINTS = ("cuisine", "area", "price")
BOOKING = ("people", "time")
INFORMABLE = CONSTRAINTS + BOOKING
REQUESTABLE = ("phone", "address")
ACTIONS = tuple([f"request_{s}" for s in INFORMABLE] + [f"confirm_{s}" for s in INFORMABLE]
                + ["offer", "book", "inform", "reqmore", "bye"])
N_ACTIONS = len(ACTIONS)
A_REQUEST = {s: ACTIONS.index(f"request_{s}") for s in INFORMABLE}
A_CONFIRM = {s: ACTIONS.index(f"confirm_{s}") for s in INFORMABLE}
A_OFFER, A_BOOK, A_INFORM, A_REQMORE, A_BYE = (ACTIONS.index(a) for a in
                                               ("offer", "book", "inform", "reqmore", "bye"))
A_NONE = N_ACTIONS            # "no system act yet / greeting / not understood"
USER_ACTS = ("inform", "request", "affirm", "negate", "done")
DONTCARE = "dontcare"
COUNT_BUCKETS = (0, 1, 2, 4, 10)   # one-hot of #matches: 0, 1, 2-3, 4-9, >= 10
MAX_TURN = 30

# observation layout (documented so that tests and the trainer can address features)
SLOT_FEATURES = ("filled", "dontcare", "conf", "confirmed", "asked")
_F_SLOT = 0
_F_REQ = _F_SLOT + len(INFORMABLE) * len(SLOT_FEATURES)        # requested, informed per slot
_F_STATE = _F_REQ + 2 * len(REQUESTABLE)                      # offered, booked, done, rejections
_F_COUNT = _F_STATE + 4
_F_USER = _F_COUNT + len(COUNT_BUCKETS)
_F_SYS = _F_USER + len(USER_ACTS)
_F_NOMATCH = _F_SYS + N_ACTIONS + 1
_F_TURN = _F_NOMATCH + 1
OBS_DIM = _F_TURN + 1

MAX_TURNS = 64
MAX_CHARS = 1000
OPTIONS = {"history": []}


def feature_index(slot: str, feature: str) -> int:
    """Index of a per-slot feature in the observation (e.g. ("people", "filled"))."""
    return _F_SLOT + INFORMABLE.index(slot) * len(SLOT_FEATURES) + SLOT_FEATURES.index(feature)


# ----------------------------------------------------------------------------- catalogue
class Catalogue:
    """The restaurants as numpy columns (value indices) for fast matching."""

    def __init__(self, data: dict):
        self.ontology = {s: list(data["ontology"][s]) for s in CONSTRAINTS}
        self.index = {s: {v: i for i, v in enumerate(vals)} for s, vals in self.ontology.items()}
        self.restaurants = list(data["restaurants"])
        self.names = [r["name"] for r in self.restaurants]
        self.cols = {s: np.array([self.index[s][r[s]] for r in self.restaurants], np.int16)
                     for s in CONSTRAINTS}
        self.by_name = {n.lower(): i for i, n in enumerate(self.names)}
        self._all = np.arange(len(self.restaurants))
        self._all.setflags(write=False)
        self._memo: dict = {}

    def __len__(self) -> int:
        return len(self.restaurants)

    def matches(self, belief: dict) -> np.ndarray:
        """Indices of restaurants consistent with ``belief`` (slot -> value/dontcare/None).

        Memoised per constraint triple (a read-only array): every reply needs it, and there
        are only a few hundred triples."""
        key = tuple(belief.get(s) for s in CONSTRAINTS)
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) >= 4096:      # unknown values could make keys unbounded
                self._memo.clear()
            hit = self._memo[key] = self._match(belief)
        return hit

    def _match(self, belief: dict) -> np.ndarray:
        ok = None
        for s in CONSTRAINTS:
            v = belief.get(s)
            if v is None or v == DONTCARE:
                continue
            idx = self.index[s].get(v, -1)
            m = self.cols[s] == idx
            ok = m if ok is None else ok & m
        if ok is None:
            return self._all
        found = np.flatnonzero(ok)
        found.setflags(write=False)
        return found

    def satisfies(self, r: int, constraints: dict) -> bool:
        rest = self.restaurants[r]
        return all(v in (None, DONTCARE) or rest[s] == v for s, v in constraints.items()
                   if s in CONSTRAINTS)


# ----------------------------------------------------------------------------- acts
class SystemAct:
    """One system dialogue act with its arguments (what the templates render)."""

    __slots__ = ("action", "slot", "value", "restaurant", "people", "time", "slots",
                 "constraints", "ref")

    def __init__(self, action: int, slot=None, value=None, restaurant=None, people=None,
                 time=None, slots=(), constraints=None, ref=None):
        self.action, self.slot, self.value, self.restaurant = action, slot, value, restaurant
        self.people, self.time, self.slots = people, time, tuple(slots)
        self.constraints, self.ref = constraints, ref

    @property
    def name(self) -> str:
        return ACTIONS[self.action] if self.action < N_ACTIONS else "none"

    @property
    def nomatch(self) -> bool:
        return self.action == A_OFFER and self.restaurant is None

    def __repr__(self) -> str:
        args = {k: getattr(self, k) for k in self.__slots__[1:]
                if getattr(self, k) not in (None, ())}
        return f"SystemAct({self.name}, {args})"


# ----------------------------------------------------------------------------- state tracker
class Tracker:
    """Rule-based belief state tracker shared by the simulator env and the runtime.

    Feed it alternately :meth:`user` (a list of ``(act, slot, value, conf)``) and :meth:`system`
    (a :class:`SystemAct`); read :meth:`features` and :meth:`mask`.
    """

    def __init__(self, catalogue: Catalogue):
        self.cat = catalogue
        self.value = {s: None for s in INFORMABLE}
        self.conf = {s: 0.0 for s in INFORMABLE}
        self.confirmed = {s: False for s in INFORMABLE}
        self.asked = {s: 0 for s in INFORMABLE}
        self.requested = {r: False for r in REQUESTABLE}
        self.informed = {r: False for r in REQUESTABLE}
        self.offered = None            # index of the restaurant on the table
        self.rejected: set[int] = set()
        self.booked = False
        self.done = False
        self.rejections = 0
        self.turn = 0                   # system turns so far
        self.last_user: set[str] = set()
        self.last_sys = SystemAct(A_NONE)
        self._matches = None

    # -- belief helpers ----------------------------------------------------------------------
    def constraints(self) -> dict:
        return {s: self.value[s] for s in CONSTRAINTS}

    def matches(self) -> np.ndarray:
        if self._matches is None:
            self._matches = self.cat.matches(self.constraints())
        return self._matches

    def _set(self, slot: str, value, conf: float) -> None:
        if value == self.value[slot]:
            self.conf[slot] = min(1.0, 1.0 - (1.0 - self.conf[slot]) * (1.0 - conf))
        else:
            self.value[slot], self.conf[slot], self.confirmed[slot] = value, conf, False
            if slot in CONSTRAINTS:
                self._matches = None

    def _clear(self, slot: str) -> None:
        self.value[slot], self.conf[slot], self.confirmed[slot] = None, 0.0, False
        if slot in CONSTRAINTS:
            self._matches = None

    def _drop_offer(self, reject: bool) -> None:
        if self.offered is not None and reject:
            self.rejected.add(self.offered)
        self.offered, self.booked = None, False
        self.informed = {r: False for r in REQUESTABLE}

    # -- updates -------------------------------------------------------------------------------
    def system(self, act: SystemAct) -> None:
        self.turn += 1
        self.last_sys = act
        a = act.action
        if a < N_ACTIONS and ACTIONS[a].startswith("request_"):
            self.asked[act.slot] += 1
        elif a == A_OFFER and act.restaurant is not None:
            if act.restaurant != self.offered:
                self.offered, self.booked = act.restaurant, False
                self.informed = {r: False for r in REQUESTABLE}
        elif a == A_BOOK and act.restaurant is not None and act.restaurant != self.offered:
            self.offered, self.booked = act.restaurant, False
            self.informed = {r: False for r in REQUESTABLE}
        elif a == A_INFORM and act.restaurant is not None and act.restaurant == self.offered:
            for r in act.slots:
                self.informed[r] = True

    def user(self, acts) -> None:
        last = self.last_sys
        kinds = {a[0] for a in acts}
        informed_slots = set()
        for act, slot, value, conf in acts:
            if act == "inform" and slot in INFORMABLE:
                self._set(slot, value, float(conf))
                informed_slots.add(slot)
            elif act == "request" and slot in REQUESTABLE:
                self.requested[slot] = True
                self.informed[slot] = False
        if last.action < N_ACTIONS and ACTIONS[last.action].startswith("confirm_"):
            s = last.slot
            if "negate" in kinds and s not in informed_slots:
                self._clear(s)
            elif "affirm" in kinds and s not in informed_slots and self.value[s] == last.value:
                self.conf[s], self.confirmed[s] = 1.0, True
        elif last.action == A_OFFER and last.restaurant is not None:
            if "negate" in kinds and self.offered == last.restaurant:
                self.rejections += 1
                self._drop_offer(reject=True)
        elif last.action == A_BOOK and last.restaurant is not None \
                and self.offered == last.restaurant:
            if "negate" in kinds:      # wrong details: the offer stays unless a constraint changed
                self.rejections += 1
                self.booked = False
            else:
                self.booked = True
        # a belief that no longer fits the offered restaurant retracts the offer
        if self.offered is not None and informed_slots & set(CONSTRAINTS) \
                and not self.cat.satisfies(self.offered, self.constraints()):
            self._drop_offer(reject=True)
        self.done = kinds == {"done"} or (self.done and not kinds)
        self.last_user = kinds & set(USER_ACTS)

    # -- observation ---------------------------------------------------------------------------
    def features(self) -> np.ndarray:
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
        for r in REQUESTABLE:
            f[i], f[i + 1] = self.requested[r], self.informed[r]
            i += 2
        f[_F_STATE] = self.offered is not None
        f[_F_STATE + 1] = self.booked
        f[_F_STATE + 2] = self.done
        f[_F_STATE + 3] = min(self.rejections, 3) / 3.0
        n = len(self.matches())
        f[_F_COUNT + sum(n >= b for b in COUNT_BUCKETS) - 1] = 1.0
        for a in self.last_user:
            f[_F_USER + USER_ACTS.index(a)] = 1.0
        f[_F_SYS + self.last_sys.action] = 1.0
        f[_F_NOMATCH] = self.last_sys.nomatch
        f[_F_TURN] = min(self.turn, MAX_TURN) / MAX_TURN
        return np.array(f, np.float32)

    def mask(self) -> np.ndarray:
        return mask_from_obs(self.features()[None])[0]


def mask_from_obs(obs: np.ndarray) -> np.ndarray:
    """Valid actions from observations [B, OBS_DIM] -> bool [B, N_ACTIONS].

    request_* / reqmore / bye: always; offer: every constraint (cuisine, area, price) holds a
    value or dontcare and no restaurant is on the table (re-offering it would be a no-op);
    confirm_s: s holds a value (not dontcare) that the user has not confirmed yet;
    book: a restaurant is offered, people and time are known and it is not booked yet;
    inform: a restaurant is offered and some of its info (phone, address) is still untold."""
    obs = np.asarray(obs, np.float32).reshape(-1, OBS_DIM)
    if len(obs) == 1:       # every reply: plain Python on one row is 4x faster than numpy
        return np.array([_mask_row(obs[0].tolist())])
    on = obs > 0.5
    # per-slot flags as [B, slot] views: basic slicing, since the runtime calls this on every
    # reply and column lists (fancy indexing) made it 3x slower
    slots = on[:, _F_SLOT:_F_REQ].reshape(-1, len(INFORMABLE), len(SLOT_FEATURES))
    filled, dontcare, confirmed = (slots[:, :, SLOT_FEATURES.index(f)]
                                   for f in ("filled", "dontcare", "confirmed"))
    offered, booked = on[:, _F_STATE], on[:, _F_STATE + 1]
    m = np.ones((obs.shape[0], N_ACTIONS), bool)
    m[:, _M_CONFIRM] = filled & ~(dontcare | confirmed)
    m[:, A_OFFER] = ~offered & filled[:, :len(CONSTRAINTS)].all(axis=1)
    m[:, A_BOOK] = offered & ~booked & filled[:, len(CONSTRAINTS):].all(axis=1)
    m[:, A_INFORM] = offered & (obs[:, _F_REQ + 1:_F_STATE:2] < 0.5).any(axis=1)  # untold info
    return m


def _mask_row(f: list) -> list[bool]:
    """mask_from_obs for one observation (a list of floats); the same rules."""
    on = [x > 0.5 for x in f]
    width = len(SLOT_FEATURES)
    filled = [on[_F_SLOT + k * width] for k in range(len(INFORMABLE))]
    m = [True] * N_ACTIONS
    for k, s in enumerate(INFORMABLE):
        base = _F_SLOT + k * width
        m[A_CONFIRM[s]] = filled[k] and not (on[base + 1] or on[base + 3])
    offered, booked = on[_F_STATE], on[_F_STATE + 1]
    m[A_OFFER] = not offered and all(filled[:len(CONSTRAINTS)])
    m[A_BOOK] = offered and not booked and all(filled[len(CONSTRAINTS):])
    m[A_INFORM] = offered and any(x < 0.5 for x in f[_F_REQ + 1:_F_STATE:2])
    return m


assert [SLOT_FEATURES.index(x) for x in ("filled", "dontcare", "confirmed")] == [0, 1, 3]
_M_CONFIRM = slice(A_CONFIRM[INFORMABLE[0]], A_CONFIRM[INFORMABLE[-1]] + 1)
assert list(range(N_ACTIONS))[_M_CONFIRM] == [A_CONFIRM[s] for s in INFORMABLE]


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
        found = t.matches()
        fresh = [int(r) for r in found if int(r) not in t.rejected]
        pool = fresh or [int(r) for r in found]
        if not pool:
            return SystemAct(A_OFFER, constraints={s: v for s, v in t.constraints().items()
                                                   if v not in (None, DONTCARE)})
        if t.offered is not None and t.offered in pool:
            return SystemAct(A_OFFER, restaurant=t.offered)
        return SystemAct(A_OFFER, restaurant=pool[int(rng.integers(len(pool)))])
    if action == A_BOOK:
        if t.offered is None or t.value["people"] is None or t.value["time"] is None:
            return SystemAct(A_NONE)
        ref = "".join("ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[int(k)] for k in rng.integers(0, 32, 6))
        return SystemAct(A_BOOK, restaurant=t.offered, people=t.value["people"],
                         time=t.value["time"], ref=ref)
    if action == A_INFORM:
        if t.offered is None:
            return SystemAct(A_NONE)
        untold = [r for r in REQUESTABLE if not t.informed[r]]
        slots = [r for r in untold if t.requested[r]] or untold
        if not slots:
            return SystemAct(A_NONE)
        return SystemAct(A_INFORM, restaurant=t.offered, slots=slots)
    if action == A_REQMORE:       # before an offer it asks for more preferences
        return SystemAct(action, value="open" if t.offered is None else None)
    if action == A_BYE:
        return SystemAct(action)
    return SystemAct(A_NONE)


# ----------------------------------------------------------------------------- user NLU
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_NUM = r"(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")"


_DOT_TIME = re.compile(r"(\d)\.(\d\d)\b")
_CLAUSE_BREAK = re.compile(r"[.,;!?]")
_OTHER_CHARS = re.compile(r"[^a-z0-9:'|\s]")
_SPACES = re.compile(r"\s+")


def _normalise(text: str) -> str:
    text = text.lower().replace("’", "'")
    text = _DOT_TIME.sub(r"\1:\2", text)              # 7.30 -> 7:30
    text = _CLAUSE_BREAK.sub(" | ", text)              # clause breaks stop negation
    text = _OTHER_CHARS.sub(" ", text)
    return " " + _SPACES.sub(" ", text).strip() + " "


def _num(token: str) -> int:
    return int(token) if token.isdigit() else _NUMBER_WORDS[token]


def _hhmm(hour: int, minute: int, ampm: str | None, assume_pm: bool = True) -> str | None:
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    elif ampm is None and assume_pm and 1 <= hour <= 11:
        hour += 12
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    return f"{hour:02d}:{minute:02d}"


_TIME_PATTERNS = (
    re.compile(r"\b(\d{1,2})[:](\d{2}) ?(am|pm)?\b"),
    re.compile(r"\b(\d{1,2}) ?(am|pm)\b"),
    re.compile(r"\bhalf past " + _NUM + r"\b"),
    re.compile(r"\b(?:at|around|about|by) " + _NUM
               + r"(?: o'clock| oclock)?\b(?! people| of us| guests| persons)"),
    re.compile(r"\b(noon|midday)\b"),
)
_PEOPLE_PATTERNS = (
    re.compile(r"\b" + _NUM + r" (?:people|persons|person|guests|adults|of us|diners|pax)\b"),
    re.compile(r"\b(?:table|party|group|booking|reservation) (?:for|of) " + _NUM + r"\b"),
    re.compile(r"\bfor " + _NUM + r"\b(?! ?(?:pm|am|o'clock|:))"),
    re.compile(r"\bjust (me)\b"),
)
_BARE_NUMBER = re.compile(r"\b" + _NUM + r"\b")


def _compile_lexicon(lexicon: dict) -> dict:
    """Regexes for the lexicon (cached on the dict's id by the caller)."""
    values = {}
    for slot in CONSTRAINTS:
        entries = []
        for canonical, synonyms in lexicon["values"][slot].items():
            for phrase, conf in [(canonical, 0.95)] + [(s, 0.85) for s in synonyms]:
                phrase = _normalise(phrase).strip()
                entries.append((phrase, re.compile(r"(?<![a-z])" + re.escape(phrase)
                                                   + r"(?![a-z])"), canonical, conf))
        values[slot] = entries
    def words(key, suffix=""):
        return re.compile(r"\b(?:" + "|".join(lexicon[key]) + r")" + suffix + r"\b")
    fine = r"(?: is| would be)?(?: fine| ok| okay| good)?"     # "any area is fine" is no "yes"
    return {
        "values": values,
        "dontcare_slot": {s: words(f"dontcare_{s}", fine) for s in CONSTRAINTS},
        "dontcare": words("dontcare", fine),
        "request": {r: words(f"request_{r}") for r in REQUESTABLE},
        "affirm": words("affirm"),
        "negate": words("negate"),
        "done": words("done"),
        "negated_value": re.compile(
            r"\b(?:not|don't want|dont want|other than|instead of)\s+(?:\w+\s+){0,2}$"),
    }


_LEX_CACHE: dict[int, tuple[dict, dict]] = {}


def _lex(lexicon: dict) -> dict:
    hit = _LEX_CACHE.get(id(lexicon))
    if hit is None or hit[0] is not lexicon:
        hit = (lexicon, _compile_lexicon(lexicon))
        _LEX_CACHE[id(lexicon)] = hit
    return hit[1]


def parse_user(text: str, lexicon: dict, last_sys: SystemAct | None = None) -> list[tuple]:
    """Keyword/regex understanding of one user turn -> [(act, slot, value, conf), ...].

    ``last_sys`` gives context: a bare number answers "how many people?" / "what time?", and
    "I don't mind" answers the slot the system just asked for."""
    lx = _lex(lexicon)
    t = _normalise(text)
    asked = last_sys.slot if last_sys is not None and last_sys.action < N_ACTIONS \
        and ACTIONS[last_sys.action].startswith("request_") else None
    acts: list[tuple] = []
    slots_done = set()
    # -- time first (its numbers must not be read as people) -----------------------------------
    rest = t
    for pat in _TIME_PATTERNS:
        m = pat.search(rest)
        if not m:
            continue
        g = m.groups()
        if g[0] in ("noon", "midday"):
            value = "12:00"
        elif pat is _TIME_PATTERNS[2]:
            value = _hhmm(_num(g[0]), 30, None)
        elif pat is _TIME_PATTERNS[0]:
            value = _hhmm(int(g[0]), int(g[1]), g[2])
        elif pat is _TIME_PATTERNS[1]:
            value = _hhmm(int(g[0]), 0, g[1])
        else:
            value = _hhmm(_num(g[0]), 0, None)
        if value:
            acts.append(("inform", "time", value, 0.95))
            slots_done.add("time")
            rest = rest[:m.start()] + " " + rest[m.end():]
            break
    for pat in _PEOPLE_PATTERNS:
        m = pat.search(rest)
        if m:
            n = 1 if m.group(1) == "me" else _num(m.group(1))
            if 1 <= n <= 99:
                acts.append(("inform", "people", str(n), 0.95))
                slots_done.add("people")
                rest = rest[:m.start()] + " " + rest[m.end():]
                break
    if asked in BOOKING and asked not in slots_done:
        m = _BARE_NUMBER.search(rest)
        if m:
            n = _num(m.group(1))
            if asked == "people" and 1 <= n <= 99:
                acts.append(("inform", "people", str(n), 0.8))
                slots_done.add("people")
            elif asked == "time":
                value = _hhmm(n, 0, None)
                if value:
                    acts.append(("inform", "time", value, 0.8))
                    slots_done.add("time")
    # -- constraints: the last non-negated mention of each slot wins ----------------------------
    for slot in CONSTRAINTS:
        best = None
        for phrase, pat, canonical, conf in lx["values"][slot]:
            if phrase not in rest:      # most of the ~80 phrases are absent: skip their regex
                continue
            for m in pat.finditer(rest):
                if lx["negated_value"].search(rest[:m.start()]):
                    continue
                if best is None or m.start() > best[0] or (m.start() == best[0] and conf > best[2]):
                    best = (m.start(), canonical, conf)
        if best is not None:
            acts.append(("inform", slot, best[1], best[2]))
            slots_done.add(slot)
        elif lx["dontcare_slot"][slot].search(rest):
            acts.append(("inform", slot, DONTCARE, 0.95))
            slots_done.add(slot)
            rest = lx["dontcare_slot"][slot].sub(" ", rest)
    if asked in CONSTRAINTS and asked not in slots_done and lx["dontcare"].search(rest):
        acts.append(("inform", asked, DONTCARE, 0.8))
    rest = lx["dontcare"].sub(" ", rest)
    # -- requests, yes/no, done ------------------------------------------------------------------
    for r in REQUESTABLE:
        if lx["request"][r].search(rest):
            acts.append(("request", r, None, 1.0))
    content = bool(acts)
    done = bool(lx["done"].search(rest))
    if lx["negate"].search(rest) and not (done and not content):
        acts.append(("negate", None, None, 1.0))
    elif lx["affirm"].search(rest) and not (done and not content):
        acts.append(("affirm", None, None, 1.0))
    if done and not content:
        acts.append(("done", None, None, 1.0))
    return acts


# ----------------------------------------------------------------------------- system NLG / NLU
def _phrase_constraints(c: dict) -> str:
    parts = []
    if c.get("price"):
        parts.append(c["price"])
    if c.get("cuisine"):
        parts.append(c["cuisine"])
    text = " ".join(parts + ["restaurant"])
    if c.get("area"):
        text += f" in the {c['area']}"
    return text


def _fields(act: SystemAct, cat: Catalogue) -> dict:
    out = {}
    if act.restaurant is not None:
        r = cat.restaurants[act.restaurant]
        out.update(name=r["name"], cuisine=r["cuisine"], area=r["area"], price=r["price"],
                   phone=r["phone"], address=r["address"])
    if act.value is not None:
        out["value"] = act.value
    if act.people is not None:
        out.update(people=act.people, time=act.time, ref=act.ref or "")
    if act.constraints is not None:
        out["constraints"] = _phrase_constraints(act.constraints)
    return out


def template_key(act: SystemAct) -> str:
    if act.action == A_NONE:
        return "greet"
    if act.nomatch:
        return "nomatch"
    if act.action == A_INFORM:
        return "inform_" + "_".join(act.slots)
    if act.action == A_REQMORE and act.value == "open":
        return "reqmore_open"
    return ACTIONS[act.action]


def render(act: SystemAct, cat: Catalogue, templates: dict, rng: np.random.Generator) -> str:
    variants = templates[template_key(act)]
    text = variants[int(rng.integers(len(variants)))]
    return text.format(**_fields(act, cat))


_SYS_CACHE: dict[int, tuple] = {}


def _system_patterns(templates: dict) -> list:
    hit = _SYS_CACHE.get(id(templates))
    if hit is not None and hit[0] is templates:
        return hit[1]
    pats = []
    for key, variants in templates.items():
        for v in variants:
            rx = re.escape(v.lower())
            rx = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>.+?)", rx)
            literal = len(re.sub(r"\{\w+\}", "", v))
            pats.append((-literal, key, re.compile(r"^\s*" + rx + r"\s*$")))
    pats = [(key, rx) for _, key, rx in sorted(pats, key=lambda p: p[0])]  # most literal first
    _SYS_CACHE[id(templates)] = (templates, pats)
    return pats


def _act_from_key(key: str, g: dict, cat: Catalogue, lexicon: dict) -> SystemAct | None:
    r = cat.by_name.get(g["name"].strip()) if "name" in g else None
    if "name" in g and r is None:
        return None
    if key == "greet":
        return SystemAct(A_NONE)
    if key == "nomatch":
        c = {}
        for a, slot, value, _ in parse_user(g.get("constraints", ""), lexicon):
            if a == "inform" and slot in CONSTRAINTS:
                c[slot] = value
        return SystemAct(A_OFFER, constraints=c)
    if key.startswith("inform_"):
        return SystemAct(A_INFORM, restaurant=r, slots=key[7:].split("_"))
    if key == "reqmore_open":
        return SystemAct(A_REQMORE, value="open")
    action = ACTIONS.index(key)
    if key.startswith("confirm_"):
        slot = key[8:]
        value = g.get("value", "").strip()
        if slot in CONSTRAINTS:
            value = next((v for a, s, v, _ in parse_user(value, lexicon) if s == slot), None)
        elif slot == "people" and not value.isdigit():
            value = None
        elif slot == "time" and not re.fullmatch(r"\d{2}:\d{2}", value):
            value = None
        return None if value is None else SystemAct(action, slot=slot, value=value)
    if key.startswith("request_"):
        return SystemAct(action, slot=key[8:])
    if key == "offer":
        return SystemAct(A_OFFER, restaurant=r)
    if key == "book":
        people = g.get("people", "").strip()
        return SystemAct(A_BOOK, restaurant=r, people=people, time=g.get("time", "").strip(),
                         ref=g.get("ref", "").strip())
    return SystemAct(action)


def parse_system(text: str, cat: Catalogue, templates: dict, lexicon: dict) -> SystemAct:
    """Recover the system act of a system turn (templates first, then keywords)."""
    low = re.sub(r"\s+", " ", text.lower()).strip()
    for key, pat in _system_patterns(templates):
        m = pat.match(low)
        if m:
            act = _act_from_key(key, m.groupdict(), cat, lexicon)
            if act is not None:
                return act
    # fallback for hand-written system turns
    r = next((i for n, i in cat.by_name.items() if n in low), None)
    if r is not None:
        if "book" in low or "reserv" in low:
            return SystemAct(A_BOOK, restaurant=r, ref="")
        slots = [s for s, w in (("phone", "phone"), ("address", "address")) if w in low]
        if slots:
            return SystemAct(A_INFORM, restaurant=r, slots=slots)
        return SystemAct(A_OFFER, restaurant=r)
    if re.search(r"\b(sorry|no)\b.*\b(no|not|can't|cannot|couldn't)\b.*\b(restaurant|place|match)",
                 low):
        return SystemAct(A_OFFER, constraints={})
    if "how many" in low:
        return SystemAct(A_REQUEST["people"], slot="people")
    if "what time" in low or "when" in low:
        return SystemAct(A_REQUEST["time"], slot="time")
    if re.search(r"\b(food|cuisine)\b", low):
        return SystemAct(A_REQUEST["cuisine"], slot="cuisine")
    if re.search(r"\b(area|part of town|where)\b", low):
        return SystemAct(A_REQUEST["area"], slot="area")
    if "price" in low or "budget" in low:
        return SystemAct(A_REQUEST["price"], slot="price")
    if "anything else" in low:
        return SystemAct(A_REQMORE)
    if re.search(r"\b(bye|goodbye)\b", low):
        return SystemAct(A_BYE)
    return SystemAct(A_NONE)


# ----------------------------------------------------------------------------- policy + generate
def replay(history, cat: Catalogue, templates: dict, lexicon: dict) -> Tracker:
    """The tracker after reading ``history`` (user turn first, alternating)."""
    tracker = Tracker(cat)
    for i, turn in enumerate(history):
        if i % 2 == 0:
            tracker.user(parse_user(turn, lexicon, tracker.last_sys))
        else:
            tracker.system(parse_system(turn, cat, templates, lexicon))
    return tracker


def choose_action(q: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Masked argmax over Q-values [B, N_ACTIONS]."""
    return np.argmax(np.where(mask_from_obs(obs), q, -np.inf), axis=1)


_RESOURCES: dict = {}


def load_resources(models_dir):
    """(catalogue, templates, lexicon) from the shipped JSON side files (verified, cached).

    Cached on the manifest entry object, which the registry keeps while the manifest is
    unchanged: one manifest check per reply instead of one per side file."""
    entry = registry.entry("dialogue", models_dir)
    hit = _RESOURCES.get(models_dir)
    if hit is None or hit[0] is not entry:
        data = registry.load_json("dialogue", "catalogue", models_dir)
        hit = (entry, (Catalogue(data), registry.load_json("dialogue", "templates", models_dir),
                       registry.load_json("dialogue", "lexicon", models_dir)))
        _RESOURCES[models_dir] = hit
    return hit[1]


def generate(*, rng: np.random.Generator, models_dir: Path, precision: str = "fp32",
             history=()):
    history = options.check_str_list("history", history, max_items=MAX_TURNS, max_len=MAX_CHARS)
    if len(history) % 2 == 0 and history:
        raise ValueError(f"history must alternate user/system turns starting with the user and "
                         f"end with a user turn (odd length) or be empty; got {len(history)} turns")
    cat, templates, lexicon = load_resources(models_dir)
    if not history:
        return render(SystemAct(A_NONE), cat, templates, rng)
    tracker = replay(history, cat, templates, lexicon)
    sess = registry.session("dialogue", "q", models_dir, precision)
    obs = tracker.features()[None]
    (q,) = registry.run(sess, {sess.get_inputs()[0].name: obs})
    if q.shape != (1, N_ACTIONS):
        raise ModelError(f"the dialogue Q-network returned shape {q.shape}, expected "
                         f"(1, {N_ACTIONS}): re-export dialogue")
    action = int(choose_action(q, obs)[0])
    return render(resolve_action(tracker, action, rng), cat, templates, rng)
