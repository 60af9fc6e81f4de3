"""Agenda-based simulated user (TC-Bot/PyDial style) over the goals of
:mod:`trainer.dialogue_goals`. It answers system acts with TRUE user acts
``(act, slot, value)``; :mod:`trainer.dialogue_phrasing` turns them into text.

Success is judged against the goal: a booking goal needs the final booking (after any change or
fallback) at a restaurant that fits the constraints and exclusions and that the user did not
turn down, for the right people and time, and every requested info given; an info goal needs
the info of a fitting (or the named) restaurant and no booking. ``repeats`` counts the turns in
which the user had to repeat, correct or rephrase because of the system (a request for a slot
already given, a wrong confirmation, offer, booking or "no match", a "sorry?"); a dialogue is
*clean* when it succeeds with no repeat.

Patience (see docs/kinds/dialogue.md): the user hangs up after ``patience`` system turns, after
more than ``tolerance`` system mistakes (a wrong booking counts twice: it must be cancelled and
made again; a confirmation that catches a misreading is a correction, no mistake), or after
more than ``confirm_tolerance`` confirmations of values it said and the system had heard right
("yes, as I said").
"""
from __future__ import annotations

import numpy as np

from runtime.dialogue_domain import (
    A_BOOK, A_BYE, A_CHANGE, A_INFORM, A_NOMATCH, A_NONE, A_OFFER, A_READBACK, A_REJECT,
    A_REQMORE, ACTIONS,
    BOOKING, CONSTRAINTS, DONTCARE, Catalogue, SystemAct,
)
from trainer.dialogue_goals import Goal


class UserSimulator:
    def __init__(self, goal: Goal, cat: Catalogue, rng: np.random.Generator, *,
                 patience=(12, 20), tolerance=(1, 3), confirm_tolerance=(2, 5),
                 p_extra: float = 0.25, p_yes_but: float = 0.3):
        self.goal, self.cat, self.rng, self.p_extra = goal, cat, rng, p_extra
        self.p_yes_but = p_yes_but             # "yes, but at 8pm" to a wrong read-back
        self.patience = int(rng.integers(patience[0], patience[1] + 1))
        self.tolerance = int(rng.integers(tolerance[0], tolerance[1] + 1))
        self.confirm_tolerance = int(rng.integers(confirm_tolerance[0], confirm_tolerance[1] + 1))
        self.needless = 0                      # confirmations of what it said and was heard
        self.pending = dict(goal.initial)      # slot -> value said first (until fallback)
        self.cur = {s: goal.constraints[s] for s in CONSTRAINTS}
        self.cur.update(people=goal.people, time=goal.time)
        self.cur.update(self.pending)
        self.said: set[str] = set()
        self.accepted = None
        self.booking = None                    # (restaurant, people, time) as the system booked
        self.turned_down: set[int] = set()
        self.rejects_left = goal.rejects
        self.change = goal.change
        self.received: dict[str, int] = {}
        self.nobook_said = False
        self.bare_book = False
        self.unwanted_booking = False
        self.mistakes = self.repeats = self.turns = 0
        self.ended = False
        self.intent = "open"                   # what the last acts do (for the phrasing)

    # -- judging -------------------------------------------------------------------------------
    def fits(self, r: int) -> bool:
        return self.cat.satisfies(r, {s: self.cur[s] for s in CONSTRAINTS},
                                  {s: (v,) for s, v in self.goal.excluded.items()})

    def _wanted_restaurant(self):
        g = self.goal
        if g.book:
            return self.booking[0] if self.booking else None
        return g.name if g.name is not None else self.accepted

    def pending_requests(self) -> list:
        r = self._wanted_restaurant()
        return [q for q in self.goal.requests if r is None or self.received.get(q) != r]

    @property
    def satisfied(self) -> bool:
        g, b = self.goal, self.booking
        if self.unwanted_booking or self.pending or self.change:
            return False
        if g.book:
            if b is None or not self.fits(b[0]) or b[0] in self.turned_down \
                    or (b[1], b[2]) != (self.cur["people"], self.cur["time"]):
                return False
        elif self._wanted_restaurant() is None or (g.name is None and not self.fits(
                self._wanted_restaurant())):
            return False
        return not self.pending_requests()

    @property
    def success(self) -> bool:
        return self.ended and self.satisfied

    @property
    def hung_up(self) -> bool:
        return self.mistakes > self.tolerance or self.turns >= self.patience \
            or self.needless > self.confirm_tolerance

    # -- acts ----------------------------------------------------------------------------------
    def _inform(self, slots) -> list:
        out = []
        for s in slots:
            if self.cur[s] is None:          # a booking detail of a goal with no booking
                out.append(("nobook", None, None))
                continue
            self.said.add(s)
            if s in self.goal.excluded and self.cur[s] == DONTCARE:
                out.append(("exclude", s, self.goal.excluded[s]))
            else:
                out.append(("inform", s, self.cur[s]))
        return out

    def _unsaid(self, slots) -> list:
        return [s for s in slots if s not in self.said]

    def opening(self) -> list:
        g = self.goal
        self.intent = "open"
        if g.name is not None:
            return [("name", None, g.name)] + [("request", q, None) for q in g.requests]
        order = [s for s in CONSTRAINTS if self.cur[s] != DONTCARE or s in g.excluded]
        order = order or ["cuisine"]
        if g.style == "one":
            first = [s for s in order if s in self.pending or s in g.excluded] or order
            acts = self._inform(first[:1])
        else:
            slots = order + [s for s in CONSTRAINTS if s not in order and self.rng.random() < 0.4]
            acts = self._inform(slots)
            if g.book and self.rng.random() < 0.35:    # both details, or one ("for a couple")
                u = self.rng.random()
                acts += self._inform(BOOKING if u < 0.5 else ("people",) if u < 0.85
                                     else ("time",))
        if not g.book and self.rng.random() < 0.5:
            acts += [("request", q, None) for q in g.requests]
        return acts

    def _next(self) -> list:
        """What the user wants next (its agenda) when nothing in particular is asked."""
        g = self.goal
        mind = [s for s in self.pending if s in CONSTRAINTS and g.kind == "mind"]
        if mind and self.turns >= 2:
            return self._fallback(mind[0], "mind")
        if self.accepted is None and g.name is None:
            unsaid = self._unsaid([s for s in CONSTRAINTS if self.cur[s] != DONTCARE
                                   or s in g.excluded])
            self.intent = "more"
            return self._inform(unsaid[:1] if g.style == "one" else unsaid) if unsaid \
                else self._inform([s for s in CONSTRAINTS if s in self.said] or ["cuisine"])
        if g.book and (self.booking is None or self.booking[0] != self.accepted):
            unsaid = self._unsaid(BOOKING)
            self.intent = "book"
            if unsaid and not self.bare_book and self.rng.random() < 0.35:
                self.bare_book = True       # "book it" without the details: must be asked
                return [("affirm", None, None)]
            return self._inform(unsaid) if unsaid else [("affirm", None, None)]
        pending = self.pending_requests()
        if pending:
            self.intent = "request"
            named = g.name is not None and self.accepted != g.name
            return [("name", None, g.name)] * named + [("request", q, None) for q in pending]
        if self.change and self.booking is not None:
            slot, value = self.change
            self.cur[slot], self.change, self.intent = value, None, "change"
            return [("inform", slot, value)]
        stale = [s for k, s in ((1, "people"), (2, "time"))
                 if g.book and self.booking and self.booking[k] != self.cur[s]]
        if stale:                       # a change the system missed: ask again
            self.repeats += 1
            self.intent = "change"
            return self._inform(stale[:1])
        if not g.book and not self.nobook_said:
            self.nobook_said, self.intent = True, "nobook"
            return [("nobook", None, None), ("done", None, None)]
        self.intent = "done"
        return [("done", None, None)]

    def _fallback(self, slot: str, intent: str, value=None) -> list:
        """Give up a value the catalogue cannot serve (or change one's mind)."""
        self.pending.pop(slot, None)
        self.cur[slot] = value if value is not None else (
            self.goal.constraints[slot] if slot in CONSTRAINTS else getattr(self.goal, slot))
        self.intent = intent
        if slot in CONSTRAINTS and self.accepted is not None and not self.fits(self.accepted):
            self.accepted = None
        return [("inform", slot, self.cur[slot])]

    def _mistake(self, acts: list) -> list:
        self.mistakes += 1
        self.repeats += 1
        self.intent = "correct"
        return acts

    # -- answers -------------------------------------------------------------------------------
    def respond(self, act: SystemAct) -> list:
        """The user's answer to a system act (check ``ended`` and ``hung_up`` after it)."""
        self.turns += 1
        a = act.action
        if a == A_BYE:
            self.ended = True
            return []
        name = ACTIONS[a] if a < len(ACTIONS) else "none"
        if name.startswith("request_"):
            return self._on_request(act.slot)
        if name.startswith("confirm_"):
            if act.value == self.cur[act.slot]:
                self.needless += act.slot in self.said      # "yes, as I said": patience wears
                self.intent = "affirm"
                return [("affirm", None, None)]
            self.repeats += 1         # a misreading caught: a correction, not a mistake
            self.intent = "correct"
            return [("negate", None, None)] + self._inform([act.slot])
        if a == A_REQMORE and act.value != "open":
            return self._on_reqmore()
        handlers = {A_OFFER: self._on_offer, A_NOMATCH: self._on_nomatch,
                    A_BOOK: self._on_book, A_CHANGE: self._on_book, A_REJECT: self._on_reject,
                    A_READBACK: self._on_readback,
                    A_INFORM: self._on_inform}
        if a in handlers:
            return handlers[a](act)
        if a == A_NONE:                       # "sorry, could you rephrase?"
            self.repeats += 1
        return self._next()

    def _on_request(self, slot: str) -> list:
        g = self.goal
        if slot in BOOKING and not g.book:
            self.nobook_said, self.intent = True, "nobook"
            return [("nobook", None, None)] + [("request", q, None)
                                               for q in self.pending_requests()]
        if slot in self.said:
            self.repeats += 1
        self.intent = "answer"
        out = self._inform([slot])
        extra = [s for s in CONSTRAINTS + (BOOKING if g.book else ())
                 if s not in self.said and (self.cur[s] != DONTCARE or s in g.excluded)]
        if extra and self.rng.random() < self.p_extra:
            out += self._inform(extra[:1])
        return out

    def _turned_down_again(self, r: int) -> list:
        """The system offers or books a restaurant the user turned down: say so again."""
        style = self.goal.reject_style
        return self._mistake([("reject_name", None, r)] if style == "name" else
                             [("negate", None, None), ("reqalts", None, None)])

    def _on_offer(self, act: SystemAct) -> list:
        r, g = act.restaurant, self.goal
        if r in self.turned_down:
            return self._turned_down_again(r)
        if g.name is not None:
            if r == g.name:
                self.accepted = r
            return self._next()
        return self._judge_offer(r) or self._next()

    def _judge_offer(self, r: int) -> list | None:
        """A restaurant put to the user: its objection, or None when it accepts it."""
        g = self.goal
        wrong = [s for s in CONSTRAINTS if not self.cat.satisfies(r, {s: self.cur[s]})]
        excl = [s for s, v in g.excluded.items() if self.cat.restaurants[r][s] == v]
        if wrong or excl:
            acts = [("negate", None, None)] + self._inform(wrong + excl)
            if set(wrong + excl) & self.said:
                return self._mistake(acts)
            self.intent = "correct"
            return acts
        if self.rejects_left > 0:
            self.rejects_left -= 1
            self.turned_down.add(r)
            self.intent = "reject"
            return [{"negate": ("negate", None, None), "reqalts": ("reqalts", None, None),
                     "name": ("reject_name", None, r)}[g.reject_style]]
        self.accepted = r
        return None

    def _on_readback(self, act: SystemAct) -> list:
        """"A table for 5 at 19:00 at Curry Garden, shall I book it?" A user with no booking
        in mind says it needs none; one that did not want this restaurant says so (as to an
        offer); otherwise "yes" when both details are right, else a correction naming the wrong
        one(s) ("No, 4 people"), or now and then "yes" and the correction in one turn. A
        read-back that catches a misreading is a correction, not a mistake, and no needless
        confirmation either: it is the question any booking system asks once."""
        r, g = act.restaurant, self.goal
        if not g.book:
            self.nobook_said, self.intent = True, "nobook"
            return [("nobook", None, None)] + [("request", q, None)
                                               for q in self.pending_requests()]
        if r in self.turned_down:
            return self._turned_down_again(r)
        if r != self.accepted:
            objection = self._judge_offer(r)
            if objection is not None:
                return objection
        wrong = [s for s in BOOKING if getattr(act, s) != self.cur[s]]
        if not wrong:
            self.intent = "affirm"
            return [("affirm", None, None)]
        self.repeats += 1
        if self.rng.random() < self.p_yes_but:
            self.intent = "yes_but"
            return [("affirm", None, None)] + self._inform(wrong)
        self.intent = "correct"
        return [("negate", None, None)] + self._inform(wrong)

    def _on_nomatch(self, act: SystemAct) -> list:
        c = {s: self.cur[s] for s in CONSTRAINTS}
        excl = {s: (v,) for s, v in self.goal.excluded.items()}
        left = [int(r) for r in self.cat.matches(c, excl) if int(r) not in self.turned_down
                and not (self.goal.book and self.cat.booking_problem(
                    int(r), self.cur["people"], self.cur["time"]) is not None)]
        if not left:
            slots = [s for s in self.pending if s in CONSTRAINTS]
            if slots:
                return self._fallback(slots[0], "fallback")
        shown = act.constraints or {}
        wrong = [s for s, v in shown.items() if self.cur.get(s) != v]
        return self._mistake(([("negate", None, None)] if wrong else [])
                             + self._inform(wrong or [s for s in CONSTRAINTS if s in self.said]
                                            or ["cuisine"]))

    def _on_book(self, act: SystemAct) -> list:
        r, g = act.restaurant, self.goal
        if not g.book:
            self.unwanted_booking = True
            return self._mistake([("negate", None, None), ("nobook", None, None)])
        if r in self.turned_down:
            return self._turned_down_again(r)
        wrong = [s for s in CONSTRAINTS if not self.cat.satisfies(r, {s: self.cur[s]})]
        wrong += [s for s in BOOKING if getattr(act, s) != self.cur[s]]
        if wrong:                     # a wrong booking must be cancelled and made again:
            self.mistakes += 1        # it costs the user's tolerance twice
            return self._mistake([("negate", None, None)] + self._inform(wrong))
        self.booking, self.accepted = (r, act.people, act.time), r
        return self._next()

    def _on_reject(self, act: SystemAct) -> list:
        slot = act.slot
        if slot in self.pending and self.cat.booking_problem(
                act.restaurant, self.cur["people"], self.cur["time"]) == slot:
            value = None
            if slot == "people":
                value = str(min(int(act.value or 8), 8))
                self.goal.people = value
            return self._fallback(slot, "fallback", value)
        if self.cat.booking_problem(act.restaurant, self.cur["people"], self.cur["time"]) \
                is not None:                 # right, this one cannot: another restaurant
            self.intent = "reject"
            return [("reqalts", None, None)]
        return self._mistake([("negate", None, None)] + self._inform([slot]))

    def _on_reqmore(self) -> list:
        """"Anything else?" while the booking the user wants at the restaurant it accepted is
        not made: it asks for the booking again ("yes, book it"), without the details nobody
        asked for; a repeat if it had already asked."""
        g = self.goal
        if g.book and self.accepted is not None and not self.pending and (
                self.booking is None or self.booking[0] != self.accepted):
            if self.intent == "book":
                self.repeats += 1
            self.intent = "book"
            return [("affirm", None, None)]
        return self._next()

    def _on_inform(self, act: SystemAct) -> list:
        r = act.restaurant
        if self.goal.name is not None and r != self.goal.name:
            self.repeats += 1           # info about another restaurant than the one named
        if r is not None and (r == self.accepted or r == self.goal.name
                              or (self.booking and r == self.booking[0])):
            for q in act.slots:
                self.received[q] = r
            if self.goal.name is not None or not self.goal.book:
                self.accepted = r
        return self._next()

