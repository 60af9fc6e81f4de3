"""Dialogue state: the belief tracker, its observation vector (layout in
:mod:`runtime.dialogue_layout`) and its JSON state for apps. The action mask and the resolution
of a policy action into a system act are in :mod:`runtime.dialogue_actions` (re-exported here).

The simulator (``trainer.dialogue_sim``) uses this very code, so the Q-network sees the same
observation in training and in serving.
"""
from __future__ import annotations

import numpy as np

from runtime.dialogue_actions import mask_from_obs, mask_row, resolve_action
from runtime.dialogue_domain import (
    A_BOOK, A_CHANGE, A_CONFIRM, A_INFORM, A_NONE, A_OFFER, A_READBACK, ACTIONS, BOOKING,
    CONSTRAINTS, DONTCARE, INFORMABLE, N_ACTIONS, REQUESTABLE, USER_ACTS, Catalogue, SystemAct,
)
from runtime.dialogue_layout import (
    _F_COUNT, _F_CUES, _F_REQ, _F_SLOT, _F_STATE, _F_SYS, _F_TURN, _F_TYPOS, _F_UNKNOWN,
    _F_USER, COUNT_BUCKETS, CUE_FEATURES, MAX_TURN, OBS_DIM, SLOT_FEATURES, feature_index,
)

STATE_VERSION = 5
__all__ = ["Tracker", "STATE_VERSION", "OBS_DIM", "CUE_FEATURES", "feature_index",
           "mask_from_obs", "mask_row", "resolve_action"]


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
