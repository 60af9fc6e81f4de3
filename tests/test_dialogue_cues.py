"""Dialogue kind: the signals a real system has that a turn was misunderstood (implausible
values, corrections, repeats, a name reached only through a typo) and the tuned rule that
may use them too."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.dialogue_domain import A_BOOK, A_CHANGE, A_CONFIRM, A_INFORM, A_OFFER, Catalogue, SystemAct
from runtime.dialogue_tracker import _F_CUES, CUE_FEATURES, OBS_DIM, Tracker
from runtime.dialogue_understanding import IMPLAUSIBLE, Understanding
from trainer.dialogue_lexicon import LEXICON, make_catalogue
from trainer.dialogue_sim import rule_policy, tuned_rule

CAT = Catalogue(make_catalogue(0, 80))
NLU = Understanding(LEXICON, CAT)


def _read(text, slot):
    return [a for a in NLU.parse(text) if a[:2] == ("inform", slot)]


@pytest.mark.parametrize("text,value", [("at 6:39pm", "18:39"), ("at 12:09", "12:09"),
                                        ("at 19pm", "19:00"), ("No, at 22.30pm", "22:30")])
def test_a_time_no_one_books_is_read_with_doubt(text, value):
    assert _read(text, "time") == [("inform", "time", value, IMPLAUSIBLE)]


@pytest.mark.parametrize("text,value", [("at 6:30pm", "18:30"), ("quarter to eight", "19:45"),
                                        ("at 10pm", "22:00"), ("at 11:00", "11:00")])
def test_bookable_slots_and_times_outside_the_hours_stay_certain(text, value):
    # outside the hours is something people do ask for: the booking is refused with the reason
    assert _read(text, "time") == [("inform", "time", value, 0.95)]


def test_party_sizes_beyond_any_table_twice_over_are_doubted():
    assert _read("a table for 44", "people")[0][3] == IMPLAUSIBLE
    assert _read("a table for 12", "people")[0][3] == 0.95      # too many for a table: asked
    assert CAT.plausible("people", 20) and not CAT.plausible("people", 21)


def test_a_typo_that_lands_on_a_name_word_names_no_restaurant():
    word = next(p for p, _, _, c in NLU.names if " " not in p and c == 0.85)
    dropped = word[:2] + word[3:]          # a deletion that corrects back to the name word:
    assert NLU.speller.correct(dropped)[0] == word         # could be any word, so no name
    assert [a for a in NLU.parse(word) if a[0] == "name"]
    assert not [a for a in NLU.parse(f"can i have the phone of {dropped}") if a[0] == "name"]
    assert not [a for a in NLU.parse("van I agve the phone") if a[0] == "name"]


def test_two_swapped_letters_of_a_one_word_name_still_name_it():
    named = [a[2] for a in NLU.parse("what is the phone of agvae") if a[0] == "name"]
    assert [CAT.names[r] for r in named] == ["Agave"]


def test_a_neighbouring_first_key_of_a_common_word_is_corrected():
    assert [a[0] for a in NLU.parse("I don't eant Curry Garden")] == ["reject_name"]
    assert NLU.speller.correct("eest")[0] == "east"      # slot values keep the first letter


def _booked(people="4", time="19:00"):
    t = Tracker(CAT)
    t.user([("inform", "cuisine", "italian", 0.95), ("inform", "area", "north", 0.95),
            ("inform", "price", "cheap", 0.95)])
    t.system(SystemAct(A_OFFER, restaurant=int(t.fresh()[0])))
    t.user([("inform", "people", people, 0.95), ("inform", "time", time, 0.95)], (0, 8))
    t.system(SystemAct(A_BOOK, restaurant=t.offered, people=people, time=time, ref="R"))
    return t


def _cues(t):
    f = t.features()
    assert f.shape == (OBS_DIM,)
    return dict(zip(CUE_FEATURES, f[_F_CUES:_F_CUES + len(CUE_FEATURES)].tolist()))


def test_a_correction_after_a_booking_shows_in_the_belief_and_survives_state():
    t = _booked()
    assert _cues(t)["corrections"] == 0 and not _cues(t)["people_corrected"]
    t.user([("negate", None, None, 1.0), ("inform", "people", "5", 0.95)], (0, 3))
    c = _cues(t)
    assert c["corrections"] == pytest.approx(1 / 3) and c["people_corrected"] == 1.0
    assert c["time_corrected"] == 0.0 and c["words"] == pytest.approx(11 / 40)
    back = Tracker.from_state(CAT, t.to_state())
    assert np.array_equal(back.features(), t.features())
    # the rule may recheck a corrected detail before changing the booking (tuned on/off)
    assert rule_policy(t) == A_CHANGE
    assert tuned_rule({"recheck": True})(t) == A_CONFIRM["people"]
    t.system(SystemAct(A_CONFIRM["people"], slot="people", value="5"))
    t.user([("affirm", None, None, 1.0)])
    assert _cues(t)["people_corrected"] == 0.0
    assert tuned_rule({"recheck": True})(t) == A_CHANGE


def test_a_no_to_a_read_back_value_counts_as_a_correction():
    t = _booked()
    t.system(SystemAct(A_CONFIRM["time"], slot="time", value="19:00"))
    t.user([("negate", None, None, 1.0), ("inform", "time", "18:00", 0.95)])
    c = _cues(t)
    assert c["corrections"] == pytest.approx(1 / 3) and c["time_corrected"] == 1.0


def test_repeating_a_value_and_asking_again_are_cues():
    t = _booked()
    t.user([("inform", "people", "4", 0.95)])           # nobody asked: the user repeats itself
    assert _cues(t)["repeated"] == 1.0
    t.system(SystemAct(A_INFORM, restaurant=t.offered, slots=["phone"]))
    t.user([("request", "phone", None, 1.0)])           # told, and asked again
    c = _cues(t)
    assert c["reasked"] == 1.0 and c["repeated"] == 0.0
