"""Dialogue kind: the realistic simulated users (patience, costly wrong bookings, the typo
channel), the confidence the understanding shows for what it is unsure of, and the rule
policies the DQN is compared with."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.dialogue_domain import (
    A_BOOK, A_CONFIRM, A_NOMATCH, A_OFFER, BOOKING, CONSTRAINTS, Catalogue, SystemAct,
)
from runtime.dialogue_tracker import _F_TYPOS, OBS_DIM, Tracker
from runtime.dialogue_understanding import Understanding
from trainer.dialogue_goals import sample_goal
from trainer.dialogue_lexicon import LEXICON, make_catalogue
from trainer.dialogue_phrasing import digit_typo, noisy
from trainer.dialogue_sim import (
    DialogueEnv, SimConfig, rule_confirm_all_policy, rule_policy, run_dialogues,
    tracker_policy, tuned_rule,
)
from trainer.dialogue_user import UserSimulator

CAT = Catalogue(make_catalogue(0, 80))
NLU = Understanding(LEXICON, CAT)


def _acts(text, last=None):
    return NLU.parse(text, last)


# ----------------------------------------------------------------------------- understanding
@pytest.mark.parametrize("text", ["noot pricey", "nnot pricey", "nothing oo pricey",
                                  "nothing tpo pricey", "buut not pricey"])
def test_doubled_and_dropped_letters_keep_the_negation(text):
    acts = _acts(text)
    assert ("exclude", "price", "expensive") in [a[:3] for a in acts], acts
    assert not any(a[0] == "inform" and a[1] in ("price", "time") for a in acts), acts


def test_a_typo_before_food_is_no_cuisine_and_a_fuzzy_one_is_doubtful():
    assert not [a for a in _acts("I qant food") if a[0] == "inform"]
    assert ("inform", "cuisine", "italian", 0.5) in _acts("an ipzaz restaurant")
    assert ("inform", "cuisine", "japanese", 0.5) in _acts("ushi food please")
    assert ("inform", "cuisine", "ethiopian", 0.9) in _acts("ethiopian food")
    blorp = [a for a in _acts("blorp food") if a[0] == "inform"]
    assert blorp == [("inform", "cuisine", "blorp", 0.6)]


def test_a_reading_through_a_corrected_word_is_less_certain():
    assert ("inform", "people", "4", 0.95) in _acts("four people")
    assert ("inform", "people", "4", 0.7) in _acts("fuor people")
    assert ("inform", "people", "6", 0.7) in _acts("a table ffor 6")
    assert NLU.typos("a table ffor 6 in the nroth") == (2, 4)
    assert NLU.typos("") == (0, 0)


def test_after_no_match_i_dont_mind_answers_the_slot_named():
    last = SystemAct(A_NOMATCH, slot="cuisine")
    assert ("inform", "cuisine", "dontcare") in [a[:3] for a in _acts("I don't mind", last)]


# ----------------------------------------------------------------------------- typo channel
def test_the_typo_channel_mistypes_digits_and_some_words_twice():
    rng = np.random.default_rng(0)
    outs = {digit_typo("19:30", rng) for _ in range(200)}
    assert outs and all(len(o) == 5 and o != "19:30" for o in outs)
    assert {"29:30", "18:30", "10:30", "19:20", "19:40", "19:31", "19:39"} >= outs
    rng = np.random.default_rng(1)
    texts = [noisy("a table for 4 at 19:30 in the centre please", 0.3, rng) for _ in range(400)]
    assert any("19:30" not in t and ":" in t for t in texts)
    assert noisy("a table for 4 at 19:30", 0.0, rng) == "a table for 4 at 19:30"


# ----------------------------------------------------------------------------- tracker
def test_the_belief_shows_how_carefully_the_user_types():
    t = Tracker(CAT)
    assert t.features()[_F_TYPOS] == 0.0 and t.features().shape == (OBS_DIM,)
    t.user(_acts("cheap itallian"), NLU.typos("cheap itallian"))
    assert t.typo_share() == pytest.approx(0.5) and t.features()[_F_TYPOS] == pytest.approx(0.5)
    back = Tracker.from_state(CAT, t.to_state())
    assert back.typo_share() == t.typo_share()
    assert np.array_equal(back.features(), t.features())


# ----------------------------------------------------------------------------- user
def _user(kind="book", seed=0, **kw):
    rng = np.random.default_rng(seed)
    goal = sample_goal(CAT, rng, 0.0, kind)
    return UserSimulator(goal, CAT, rng, **kw), goal


def test_needless_confirmations_wear_the_users_patience():
    user, goal = _user(confirm_tolerance=(1, 1))
    user.opening()
    said = [s for s in CONSTRAINTS if s in user.said and user.cur[s] != "dontcare"]
    assert said, goal
    for k, s in enumerate(said[:2]):
        assert user.respond(SystemAct(A_CONFIRM[s], slot=s, value=user.cur[s])) == [
            ("affirm", None, None)]
        assert user.hung_up == (k >= 1)


def test_a_confirmation_that_catches_a_misreading_is_no_mistake_but_a_wrong_booking_is_two():
    user, goal = _user()
    user.opening()
    s = next(s for s in CONSTRAINTS if s in user.said and user.cur[s] != "dontcare")
    acts = user.respond(SystemAct(A_CONFIRM[s], slot=s, value="nowhere"))
    assert acts[0][0] == "negate" and user.mistakes == 0 and user.repeats == 1
    r = next(int(r) for r in CAT.matches({c: user.cur[c] for c in CONSTRAINTS})
             if CAT.booking_problem(int(r), user.cur["people"], user.cur["time"]) is None)
    people = str(int(user.cur["people"]) % 6 + 1)
    user.respond(SystemAct(A_BOOK, restaurant=r, people=people, time=user.cur["time"],
                           ref="X"))
    assert user.mistakes == 2 and user.booking is None


# ----------------------------------------------------------------------------- rules
def test_the_rule_confirms_what_it_doubts_and_a_disputed_booking():
    t = Tracker(CAT)
    t.user([("inform", "cuisine", "italian", 0.5), ("inform", "area", "north", 0.95),
            ("inform", "price", "cheap", 0.95)])
    assert rule_policy(t) == A_OFFER
    assert tuned_rule({"threshold": 0.6})(t) == A_CONFIRM["cuisine"]
    t.system(SystemAct(A_OFFER, restaurant=int(t.fresh()[0])))
    t.user([("inform", "people", "4", 0.95), ("inform", "time", "19:00", 0.95)], (0, 5))
    assert rule_policy(t) == A_BOOK
    assert tuned_rule({"booking_threshold": 0.96})(t) == A_CONFIRM["people"]
    t.user([], (5, 5))                       # half the words needed correcting
    assert tuned_rule({"sloppy": 0.3})(t) in (A_CONFIRM["people"], A_CONFIRM["time"])
    t.system(SystemAct(A_BOOK, restaurant=t.offered, people="4", time="19:00", ref="R"))
    t.user([("negate", None, None, 1.0)])
    assert rule_policy(t) in {A_CONFIRM[s] for s in BOOKING}


def test_confirming_everything_costs_users_and_confirming_nothing_costs_bookings():
    cfg = SimConfig()
    never = run_dialogues(tracker_policy(rule_policy), CAT, n=150, noise=0.0, seed=3, cfg=cfg)
    always = run_dialogues(tracker_policy(rule_confirm_all_policy), CAT, n=150, noise=0.0,
                           seed=3, cfg=cfg)
    assert never["success_rate"] >= 0.97
    assert always["success_rate"] < never["success_rate"] - 0.2     # needless confirmations
    env = DialogueEnv(CAT, SimConfig(noise=0.2), seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (OBS_DIM,)
