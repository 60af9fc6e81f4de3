"""Dialogue actions: which system acts are valid in a belief (the mask, batched for training
and one row for a reply) and the resolution of a policy action into a concrete system act
against the belief and the catalogue."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from runtime.dialogue_domain import (
    A_BOOK, A_BYE, A_CHANGE, A_CONFIRM, A_INFORM, A_NOMATCH, A_NONE, A_OFFER, A_READBACK,
    A_REJECT, A_REQMORE, A_REQUEST, ACTIONS, CONSTRAINTS, DONTCARE, INFORMABLE, N_ACTIONS,
    REQUESTABLE, SystemAct, booking_ref,
)
from runtime.dialogue_layout import (
    _F_COUNT, _F_REQ, _F_SLOT, _F_STATE, _F_SYS, _F_UNKNOWN, _F_USER, _NEGATE, OBS_DIM,
    SLOT_FEATURES, STATE_FEATURES,
)

if TYPE_CHECKING:                      # the tracker imports this module
    from runtime.dialogue_tracker import Tracker


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
