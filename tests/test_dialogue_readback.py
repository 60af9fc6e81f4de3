"""Dialogue kind: the booking read-back ("A table for 5 at 19:00 at Curry Garden, shall I book
it?"): the act and its mask, its templates both ways, what a "yes" or a correction does to the
belief, the simulated user's answers and the rules' read-back options."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.dialogue_domain import (
    A_BOOK, A_CHANGE, A_CONFIRM, A_OFFER, A_READBACK, ACTIONS, Catalogue, SystemAct,
)
from runtime.dialogue_replies import SystemReader, render
from runtime.dialogue_tracker import STATE_VERSION, Tracker, mask_from_obs, resolve_action
from runtime.dialogue_understanding import Understanding
from trainer.dialogue_goals import Goal
from trainer.dialogue_lexicon import LEXICON, SYSTEM_TEMPLATES, make_catalogue
from trainer.dialogue_phrasing import TRAIN, user_text
from trainer.dialogue_sim import rule_policy, tuned_rule
from trainer.dialogue_user import UserSimulator

CAT = Catalogue(make_catalogue(0, 80))
NLU = Understanding(LEXICON, CAT)
READER = SystemReader(CAT, SYSTEM_TEMPLATES, NLU)


def _ready(people="4", time="19:00"):
    t = Tracker(CAT)
    t.user([("inform", "cuisine", "italian", 0.95), ("inform", "area", "north", 0.95),
            ("inform", "price", "cheap", 0.95)])
    t.system(SystemAct(A_OFFER, restaurant=int(t.fresh()[0])))
    t.user([("inform", "people", people, 0.95), ("inform", "time", time, 0.95)], (0, 8))
    return t


def _read_back(t):
    act = resolve_action(t, A_READBACK, np.random.default_rng(0))
    t.system(act)
    return act


def test_read_back_is_an_act_valid_before_booking_until_both_details_are_confirmed():
    assert "readback" in ACTIONS
    t = _ready()
    assert t.mask()[A_READBACK] and mask_from_obs(t.features()[None])[0, A_READBACK]
    act = _read_back(t)
    assert (act.action, act.restaurant, act.people, act.time) == (A_READBACK, t.offered, "4",
                                                                  "19:00")
    t.user(NLU.parse("Yes.", act))
    assert t.confirmed["people"] and t.confirmed["time"]
    assert not t.mask()[A_READBACK] and t.mask()[A_BOOK]
    assert not mask_from_obs(t.features()[None])[0, A_READBACK]
    assert rule_policy(t) == A_BOOK


@pytest.mark.parametrize("seed", range(4))
def test_read_back_text_renders_and_reads_back(seed):
    t = _ready()
    act = resolve_action(t, A_READBACK, np.random.default_rng(0))
    text = render(act, CAT, SYSTEM_TEMPLATES, np.random.default_rng(seed))
    assert CAT.names[t.offered] in text and "4" in text and "19:00" in text
    back = READER.read(text)
    assert (back.action, back.restaurant, back.people, back.time, back.value) == (
        A_READBACK, t.offered, "4", "19:00", None)
    t.system(SystemAct(A_BOOK, restaurant=t.offered, people="4", time="19:00", ref="R"))
    t.user([("inform", "people", "5", 0.95)])
    change = resolve_action(t, A_READBACK, np.random.default_rng(0))
    text = render(change, CAT, SYSTEM_TEMPLATES, np.random.default_rng(seed))
    assert READER.read(text).value == "change" and "5" in text


def test_a_correction_to_a_read_back_changes_that_detail_only():
    t = _ready()
    act = _read_back(t)
    t.user(NLU.parse("No, 5 people.", act))
    assert t.value["people"] == "5" and t.corrected["people"] and t.corrections == 1
    assert not t.confirmed["time"] and t.mask()[A_READBACK]
    t = _ready()
    act = _read_back(t)
    t.user(NLU.parse("Yes, but 5 people.", act))         # "yes" and a correction at once
    assert t.value["people"] == "5" and not t.confirmed["people"] and t.confirmed["time"]
    assert t.corrections == 1


def test_confirming_is_masked_once_the_booking_stands_unless_the_user_disputes_it():
    t = _ready()
    t.system(SystemAct(A_BOOK, restaurant=t.offered, people="4", time="19:00", ref="R"))
    t.user([("affirm", None, None, 1.0)])
    m = t.mask()
    assert not any(m[A_CONFIRM[s]] for s in A_CONFIRM)
    t.user([("negate", None, None, 1.0)])
    assert t.mask()[A_CONFIRM["people"]] and t.mask()[A_CONFIRM["time"]]


def test_an_old_state_is_refused_with_its_version():
    state = _ready().to_state()
    assert state["version"] == STATE_VERSION == 5
    with pytest.raises(ValueError, match="version 4"):
        Tracker.from_state(CAT, {**state, "version": 4})


def _user(kind="book", people="4", time="19:00"):
    t = _ready(people, time)
    goal = Goal(kind=kind, constraints=dict(t.constraints()),
                people=people if kind == "book" else None,
                time=time if kind == "book" else None)
    u = UserSimulator(goal, CAT, np.random.default_rng(0))
    u.accepted = t.offered
    return u, t


def test_the_simulated_user_says_yes_corrects_or_needs_no_booking():
    u, t = _user()
    act = SystemAct(A_READBACK, restaurant=t.offered, people="4", time="19:00")
    assert u.respond(act) == [("affirm", None, None)] and u.repeats == 0 and u.needless == 0
    wrong = SystemAct(A_READBACK, restaurant=t.offered, people="5", time="19:00")
    acts = u.respond(wrong)
    assert acts[1:] == [("inform", "people", "4")] and acts[0][0] in ("negate", "affirm")
    assert u.mistakes == 0 and u.repeats == 1
    text = user_text(acts, u.intent, np.random.default_rng(0), TRAIN, CAT)
    heard = NLU.parse(text, wrong)
    assert ("inform", "people", "4") in [a[:3] for a in heard]
    u, t = _user(kind="info")
    assert u.respond(act)[0] == ("nobook", None, None)


def test_the_rules_read_back_as_tuned():
    t = _ready()
    assert rule_policy(t) == A_BOOK                       # the plain rule never reads back
    assert tuned_rule({"readback": 1.01})(t) == A_READBACK
    assert tuned_rule({"readback": 0.9})(t) == A_BOOK     # both details read at 0.95
    t.typos, t.words = 3, 10
    assert tuned_rule({"readback_sloppy": 0.2})(t) == A_READBACK
    t.system(SystemAct(A_BOOK, restaurant=t.offered, people="4", time="19:00", ref="R"))
    t.user([("negate", None, None, 1.0), ("inform", "time", "20:00", 0.95)])
    assert tuned_rule({"readback": 1.01})(t) == A_READBACK
    act = _read_back(t)
    assert act.value == "change"
    t.user(NLU.parse("Yes.", act))
    assert tuned_rule({"readback": 1.01})(t) == A_CHANGE
