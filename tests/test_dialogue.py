"""Dialogue kind: understanding, tracker, simulator goals, runtime replies, quick training."""
from __future__ import annotations

import json

import numpy as np
import pytest

from runtime.dialogue_domain import (
    A_BOOK, A_CHANGE, A_INFORM, A_NOMATCH, A_OFFER, A_REJECT, A_REQMORE, A_REQUEST, DONTCARE,
    Catalogue, SystemAct,
)
from runtime.dialogue_replies import SystemReader, render
from runtime.dialogue_spelling import Speller, osa_distance
from runtime.dialogue_tracker import OBS_DIM, Tracker, feature_index, mask_from_obs, resolve_action
from runtime.dialogue_understanding import READ_CHARS, Understanding
from tests.conftest import require_kind
from trainer.dialogue_goals import GOAL_TYPES, sample_goal
from trainer.dialogue_lexicon import LEXICON, ONTOLOGY, SYSTEM_TEMPLATES, make_catalogue
from trainer.dialogue_phrasing import HELDOUT, TRAIN, noisy
from trainer.dialogue_sim import (
    DialogueEnv, SimConfig, random_policy, rule_policy, run_dialogues, tracker_policy,
)

CAT = Catalogue(make_catalogue(0, 80))
NLU = Understanding(LEXICON, CAT)


def _informs(text, last=None):
    return {s: v for a, s, v, _ in NLU.parse(text, last) if a == "inform"}


def _kinds(text, last=None):
    return {a for a, *_ in NLU.parse(text, last)}


# ----------------------------------------------------------------------------- catalogue
def test_catalogue_is_seeded_and_knows_what_it_can_serve():
    a, b = make_catalogue(0, 80), make_catalogue(0, 80)
    assert a == b and a != make_catalogue(1, 80)
    pairs = {(r["cuisine"], r["area"]) for r in a["restaurants"]}
    assert len(pairs) == len(ONTOLOGY["cuisine"]) * len(ONTOLOGY["area"])
    r = int(CAT.matches({"cuisine": "italian", "area": "north"})[0])
    limit = CAT.restaurants[r]["max_people"]
    assert CAT.booking_problem(r, str(limit), "19:00") is None
    assert CAT.booking_problem(r, "12", "19:00") == "people"
    assert CAT.booking_problem(r, "2", "10:00") == "time"
    assert not len(CAT.matches({"cuisine": "ethiopian"}))
    no_italian = CAT.matches({"area": "north"}, {"cuisine": ("italian",)})
    assert len(no_italian) and all(CAT.restaurants[i]["cuisine"] != "italian" for i in no_italian)


# ----------------------------------------------------------------------------- understanding
@pytest.mark.parametrize("text,expected", [
    ("itallian food", {"cuisine": "italian"}),
    ("chepa", {"price": "cheap"}),
    ("something cheep", {"price": "cheap"}),
    ("indain please", {"cuisine": "indian"}),
    ("mid price", {"price": "moderate"}),
    ("a couple", {"people": "2"}),
    ("me and my wife", {"people": "2"}),
    ("two adults and two kids", {"people": "4"}),
    ("a table for 12", {"people": "12"}),
    ("half seven", {"time": "19:30"}),
    ("quarter to eight", {"time": "19:45"}),
    ("7.30pm", {"time": "19:30"}),
    ("seven thirty", {"time": "19:30"}),
    ("20h", {"time": "20:00"}),
    ("1930", {"time": "19:30"}),
    ("at lunchtime", {"time": "12:30"}),
    ("at 10:00", {"time": "10:00"}),
    ("I fancy french", {"cuisine": "french"}),
    ("something fancy in the centre", {"price": "expensive", "area": "centre"}),
    ("ethiopian food please", {"cuisine": "ethiopian"}),
    ("I'd like zorbian food", {"cuisine": "zorbian"}),
    ("cheap italian in the wset for 4 at 8pm",
     {"price": "cheap", "cuisine": "italian", "area": "west", "people": "4", "time": "20:00"}),
])
def test_understanding_reads_what_people_type(text, expected):
    assert _informs(text) == expected


def test_understanding_negation_names_and_speech_acts():
    acts = NLU.parse("anything but italian")
    assert ("exclude", "cuisine", "italian") in [a[:3] for a in acts]
    assert not _informs("anything but italian").get("cuisine") == "italian"
    assert ("exclude", "price", "expensive") in [a[:3] for a in NLU.parse("nothing too fancy")]
    assert ("exclude", "price", "expensive") in [a[:3] for a in NLU.parse("not too pricey")]
    jade = CAT.by_name["jade garden"]
    assert ("name", None, jade) in [a[:3] for a in NLU.parse("address of jade garden?")]
    assert ("reject_name", None, jade) in [a[:3] for a in NLU.parse("I don't want Jade Garden")]
    assert _kinds("anything else?") == {"reqalts"}
    assert "reqalts" in _kinds("not that one, what else is there?")
    assert _kinds("no need to book, thanks bye") == {"nobook", "done"}
    assert {a[1] for a in NLU.parse("postcode and phone please") if a[0] == "request"} == {
        "postcode", "phone"}
    assert "request" in _kinds("whats the adress")
    offer = SystemAct(A_OFFER, restaurant=jade)
    assert _kinds("no thanks", offer) == {"negate"}           # turns the offer down
    assert _kinds("no thanks", SystemAct(13)) == {"done"}     # after "anything else?"


def test_understanding_uses_the_context_of_the_question():
    ask_people = SystemAct(A_REQUEST["people"], slot="people")
    ask_time = SystemAct(A_REQUEST["time"], slot="time")
    ask_area = SystemAct(A_REQUEST["area"], slot="area")
    assert _informs("4", ask_people) == {"people": "4"}
    assert _informs("eight", ask_time) == {"time": "20:00"}
    assert _informs("any", ask_area) == {"area": DONTCARE}
    assert _informs("it doesn't matter", ask_area) == {"area": DONTCARE}
    reject = SystemAct(A_REJECT, slot="people", value="10")
    assert _informs("ok, make it 10 then", reject) == {"people": "10"}


def test_a_long_user_turn_is_read_up_to_the_documented_limit():
    pad = "la " * (READ_CHARS // 3)
    assert _informs("cheap italian " + pad) == {"price": "cheap", "cuisine": "italian"}
    assert _informs(pad + " cheap italian") == {}            # beyond the limit: not read
    assert NLU.parse("x" * 100_000) == []


def test_spelling_correction_is_bounded_and_protects_common_words():
    assert osa_distance("chepa", "cheap") == 1 and osa_distance("abc", "abc") == 0
    sp = Speller(["italian", "west", "address"], protected=["best"])
    assert sp.correct("itallian") == ("italian", 0.7)
    assert sp.correct("wset")[0] == "west"
    assert sp.correct("best") == ("best", 1.0)
    assert sp.correct("xylophone") == ("xylophone", 1.0)


def test_typos_of_not_and_but_keep_the_negation():
    """Short words are not corrected, except "not"/"but": a typo there turns the meaning round."""
    for typo in ("nto", "ont", "nt", "mot"):
        assert NLU.speller.correct(typo) == ("not", 0.7)
    assert NLU.speller.correct("ubt") == ("but", 0.7)
    for word in ("the", "teh", "ot", "yse"):          # common or too far: left alone
        assert NLU.speller.correct(word)[0] == word
    name = CAT.names[0]
    assert NLU.parse(f"nto {name}, please") == [("reject_name", None, 0, 0.95)]
    assert ("exclude", "cuisine", "mexican", 0.85) in NLU.parse("anything ubt tacos")
    assert NLU.parse("not expensive") == [("exclude", "price", "expensive", 0.95)]


# ----------------------------------------------------------------------------- tracker
def _tracker(*turns):
    t = Tracker(CAT)
    for text in turns:
        t.user(NLU.parse(text, t.last_sys))
    return t


def test_tracker_masks_the_richer_act_set():
    t = _tracker("cheap ethiopian food in the north")
    m = t.mask()
    assert m[A_NOMATCH] and not m[A_OFFER]
    act = resolve_action(t, A_NOMATCH, np.random.default_rng(0))
    assert act.slot == "cuisine" and act.slots and "ethiopian" not in act.slots
    text = render(act, CAT, SYSTEM_TEMPLATES, np.random.default_rng(0))
    assert "ethiopian" in text and act.slots[0] in text
    t = _tracker("cheap indian in the south for 12 people at 7pm")
    t.system(resolve_action(t, A_OFFER, np.random.default_rng(0)))
    m = t.mask()
    assert m[A_REJECT] and not m[A_BOOK]
    t.system(resolve_action(t, A_REJECT, np.random.default_rng(0)))
    assert t.last_sys.slot == "people"
    t.user(NLU.parse("ok, 6 then", t.last_sys))
    assert t.mask()[A_BOOK]
    t.system(resolve_action(t, A_BOOK, np.random.default_rng(0)))
    assert not t.mask()[A_CHANGE] and not t.mask()[A_INFORM]     # nothing asked yet
    assert not t.mask()[A_REQUEST["people"]]          # heard: confirmed or corrected, not re-asked
    t.user(NLU.parse("what's their phone number?", t.last_sys))
    assert t.mask()[A_INFORM]
    t.system(resolve_action(t, A_INFORM, np.random.default_rng(0)))
    assert tuple(t.last_sys.slots) == ("phone",) and not t.mask()[A_INFORM]
    t.user(NLU.parse("can you change that to 4 people?", t.last_sys))
    assert t.mask()[A_CHANGE] and not t.mask()[A_BOOK]
    assert t.features()[feature_index(None, "has_booking")] == 1.0
    t = _tracker("a table for a couple at a cheap italian place in the north")
    t.system(resolve_action(t, A_OFFER, np.random.default_rng(0)))
    t.user(NLU.parse("great, book it please", t.last_sys))
    m = t.mask()                      # "book it" with the time missing: ask for it
    assert m[A_REQUEST["time"]] and not (m[A_REQMORE] or m[A_INFORM] or m[A_BOOK])
    t.system(resolve_action(t, A_REQUEST["time"], np.random.default_rng(0)))
    t.user(NLU.parse("7pm", t.last_sys))
    t.system(resolve_action(t, A_BOOK, np.random.default_rng(0)))
    assert t.mask()[A_REQMORE]        # the booking is made: "anything else?"
    t = _tracker("cheap italian")
    for _ in range(3):
        assert t.mask()[A_REQUEST["area"]]
        t.system(resolve_action(t, A_REQUEST["area"], np.random.default_rng(0)))
        t.user(NLU.parse("hmm", t.last_sys))
    assert not t.mask()[A_REQUEST["area"]]           # never a fourth time


def test_batched_mask_equals_the_one_row_mask():
    env = DialogueEnv(CAT, SimConfig(noise=0.2), seed=0)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    rows = []
    for _ in range(150):
        rows.append(obs)
        assert np.array_equal(env.action_mask(), mask_from_obs(obs[None])[0])
        obs, _, term, trunc, _ = env.step(int(rng.choice(np.flatnonzero(env.action_mask()))))
        if term or trunc:
            obs, _ = env.reset()
    batch = mask_from_obs(np.stack(rows))
    assert batch.shape == (150, len(env.action_mask())) and batch.any(axis=1).all()


def test_tracker_state_round_trips_through_json():
    t = _tracker("anything but italian in the north, cheap", "for 2 at half seven")
    t.system(resolve_action(t, A_OFFER, np.random.default_rng(1)))
    state = json.loads(json.dumps(t.to_state()))
    u = Tracker.from_state(CAT, state)
    assert np.array_equal(t.features(), u.features()) and u.offered == t.offered
    with pytest.raises(ValueError, match="state"):
        Tracker.from_state(CAT, {**state, "offered": 10_000})
    with pytest.raises(ValueError, match="state"):
        Tracker.from_state(CAT, {"version": 2})


def test_system_reader_reads_every_template_back():
    reader = SystemReader(CAT, SYSTEM_TEMPLATES, NLU)
    rng = np.random.default_rng(0)
    t = _tracker("cheap italian in the north for 2 at 7pm")
    for action in (A_OFFER, A_REQUEST["area"]):
        act = resolve_action(t, action, rng)
        for _ in range(4):
            back = reader.read(render(act, CAT, SYSTEM_TEMPLATES, rng))
            assert back.action == act.action and back.restaurant == act.restaurant
    t.system(resolve_action(t, A_OFFER, rng))
    act = resolve_action(t, A_BOOK, rng)
    back = reader.read(render(act, CAT, SYSTEM_TEMPLATES, rng))
    assert (back.action, back.people, back.time, back.ref) == (A_BOOK, "2", "19:00", act.ref)


# ----------------------------------------------------------------------------- simulator
def test_every_goal_type_is_sampled_and_banks_are_disjoint():
    rng = np.random.default_rng(0)
    kinds = {sample_goal(CAT, rng).kind for _ in range(400)}
    assert kinds == set(GOAL_TYPES)
    flat = lambda bank: {s for k, v in bank.items()  # noqa: E731
                         if k not in ("values", "what", "time_forms")
                         for s in (v if isinstance(v, list) else
                                   [x for xs in v.values() for x in xs])}
    assert not flat(TRAIN) & flat(HELDOUT)
    assert noisy("cheap italian food please", 0.0, rng) == "cheap italian food please"
    assert noisy("cheap italian food please", 1.0, rng) != "cheap italian food please"


def test_env_is_deterministic_and_success_is_judged_against_the_goal():
    def rollout(seed):
        env = DialogueEnv(CAT, SimConfig(noise=0.1), seed=seed)
        env.reset(seed=seed)
        texts = []
        while True:
            _, _, term, trunc, info = env.step(rule_policy(env.tracker))
            texts.append(info["user_text"])
            if term or trunc:
                return texts, info["success"]
    assert rollout(3) == rollout(3)
    env = DialogueEnv(CAT, SimConfig(goal_kind="info"), seed=0)
    env.reset(seed=5)
    while env.tracker.offered is None:
        env.step(rule_policy(env.tracker))
    if env.tracker.value["people"] is None:
        env.tracker.value.update(people="2", time="19:00")
    env.step(A_BOOK)                                   # nobody asked for a booking
    assert env.user.unwanted_booking and not env.user.satisfied


@pytest.mark.slow
def test_rule_policy_handles_every_goal_type_and_random_does_not():
    rule = run_dialogues(tracker_policy(rule_policy), CAT, n=140, noise=0.0)
    rand = run_dialogues(random_policy(0), CAT, n=140, noise=0.0)
    assert rule["success_rate"] >= 0.95 and rand["success_rate"] < 0.2
    assert all(v["success_rate"] >= 0.8 for v in rule["by_goal"].values())
    noisy_rule = run_dialogues(tracker_policy(rule_policy), CAT, n=140, noise=0.2)
    assert noisy_rule["clean_rate"] < rule["clean_rate"]


# ----------------------------------------------------------------------------- runtime (shipped)
EXAMPLE = "I want cheap italian food in the north"


def test_runtime_reply_is_structured(exported_dir):
    require_kind("dialogue")
    import runtime

    reply = runtime.generate("dialogue", history=[EXAMPLE], seed=0, models_dir=exported_dir)
    assert isinstance(reply, str) and reply.suffix == ".txt"
    assert reply.slots == {"cuisine": "italian", "area": "north", "price": "cheap"}
    if reply.act == "offer":
        assert reply.offered["cuisine"] == "italian" and reply.offered["name"] in reply
    assert reply.booking is None and json.loads(json.dumps(reply.state))
    nxt = runtime.generate("dialogue", state=reply.state, history=["for 2 at half seven"],
                           seed=1, models_dir=exported_dir)
    assert nxt.slots["people"] == "2" and nxt.slots["time"] == "19:30"
    same = runtime.generate("dialogue", history=[EXAMPLE, str(reply), "for 2 at half seven"],
                            seed=1, models_dir=exported_dir)
    assert (str(same), same.act, same.slots) == (str(nxt), nxt.act, nxt.slots)


def test_runtime_books_and_saves_the_conversation(exported_dir, tmp_path):
    require_kind("dialogue")
    import runtime

    model = runtime.load("dialogue", models_dir=exported_dir)
    reply = model.generate(history=["cheap italian in the north for 2 at 7pm"], seed=0)
    for user in ["great, book it", "yes please", "yes", "yes", "great"]:
        if reply.booking:
            break
        reply = model.generate(state=reply.state, history=[user], seed=0)
    assert reply.booking and reply.booking["people"] == 2 and reply.booking["time"] == "19:00"
    assert reply.booking["reference"] in reply or reply.act != "book"
    summary = reply.save(tmp_path / "chat.txt")
    lines = (tmp_path / "chat.txt").read_text().splitlines()
    assert lines[0].startswith("user: cheap italian") and "booked" in summary
    model.close()


def test_runtime_opening_determinism_and_int8(exported_dir):
    require_kind("dialogue")
    import runtime

    h = ["I'd like some indian food in the centre", "What price range are you looking for?",
         "something cheap"]
    a = runtime.generate("dialogue", history=h, seed=3, models_dir=exported_dir)
    assert a == runtime.generate("dialogue", history=h, seed=3, models_dir=exported_dir)
    opening = runtime.generate("dialogue", history=[], seed=0, models_dir=exported_dir)
    assert opening in SYSTEM_TEMPLATES["greet"] and opening.act == "greet"
    if "q_int8" in runtime.info("dialogue", exported_dir)["files"]:
        b = runtime.generate("dialogue", history=h, seed=3, precision="int8",
                             models_dir=exported_dir)
        assert b.slots == a.slots


def test_runtime_survives_arbitrary_text(exported_dir):
    require_kind("dialogue")
    import runtime

    rng = np.random.default_rng(0)
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789 :.,!?'-é😀") + [
        " cheap ", " north ", " 7pm ", " for 4 ", " no ", " yes ", " thanks ", " 25:99 ",
        " 99999 people ", " not ", " any ", " half ", " quarter to ", CAT.names[3]]
    for i in range(30):
        turns = ["".join(rng.choice(alphabet, int(rng.integers(0, 30))))
                 for _ in range(2 * (i % 5) + 1)]
        reply = runtime.generate("dialogue", history=turns, seed=i, models_dir=exported_dir)
        assert reply.strip() and reply.act and reply.transcript == [*turns, reply]
    long_turn = "cheap italian food " + "blah " * 196
    reply = runtime.generate("dialogue", history=[long_turn[:1000]], seed=0,
                             models_dir=exported_dir)
    assert reply.slots.get("cuisine") == "italian"


@pytest.mark.parametrize("kw,match", [
    ({"history": "hello"}, "history must be a list"),
    ({"history": [1]}, r"history\[0\] must be a string"),
    ({"history": ["a"] * 65}, "too many items"),
    ({"history": ["x" * 1001]}, "too long"),
    ({"history": ["hi", "hello"]}, "odd length"),
    ({"history": ["hi"], "state": "nope"}, "state must be"),
    ({"history": ["hi"], "state": {"version": 2}}, "state is not"),
    ({"history": ["a", "b", "c"], "state": {}}, "exactly the user's new turn"),
    ({"history": [], "turns": 3}, "unknown option"),
])
def test_runtime_rejects_bad_input(exported_dir, kw, match):
    require_kind("dialogue")
    import runtime

    with pytest.raises(ValueError, match=match):
        runtime.generate("dialogue", models_dir=exported_dir, **kw)


def test_hand_written_conversations_with_the_rule_policy(exported_dir):
    """The scripted users (never used in training) against the runtime's own pipeline with
    the hand-written policy in place of the Q-network: checks the scripts and understanding."""
    require_kind("dialogue")
    from runtime.dialogue import DialogueModel
    from trainer.dialogue_eval import run_script
    from trainer.dialogue_scripts import SCRIPTS

    class RuleModel(DialogueModel):
        def _policy(self, tracker):
            return rule_policy(tracker)

    model = RuleModel(models_dir=exported_dir)
    runs = [run_script(model, s) for s in SCRIPTS]
    assert len(runs) >= 40
    assert np.mean([r["success"] for r in runs]) >= 0.95


# ----------------------------------------------------------------------------- training (TF)
@pytest.mark.tf
@pytest.mark.slow
def test_quick_training_exports_a_working_policy(tmp_path):
    import dataclasses

    import runtime
    from trainer import dialogue

    cfg = dataclasses.replace(dialogue.PROFILES["quick"], eval_dialogues=40)
    dialogue.train(cfg, tmp_path / "work")
    assert (tmp_path / "work" / "learning_curve.png").exists()
    dialogue.export(cfg, tmp_path / "work", tmp_path / "out")
    metrics = dialogue.evaluate(cfg, tmp_path / "work", tmp_path / "out")
    for policy in ("dqn", "rule", "rule_confirm", "random"):
        for setting in ("noise_0.0", "noise_0.2", "heldout_0.0"):
            assert 0.0 <= metrics[policy][setting]["success_rate"] <= 1.0
            assert set(metrics[policy][setting]["by_goal"]) <= set(GOAL_TYPES)
    assert metrics["rule"]["noise_0.0"]["success_rate"] > \
        metrics["random"]["noise_0.0"]["success_rate"]
    assert metrics["scripts"]["conversations"] >= 40
    info = runtime.info("dialogue", tmp_path / "out")
    assert info["files"]["q"]["parity_max_abs_diff"] < 1e-4
    assert info["files"]["q"]["inputs"][0]["shape"] == [None, OBS_DIM]
    reply = runtime.generate("dialogue", history=[EXAMPLE], seed=0, models_dir=tmp_path / "out")
    assert isinstance(reply, str) and reply.act


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.7])
def test_one_row_mask_matches_the_batched_mask(p):
    """mask_row (the runtime's reply path, plain Python) and mask_from_obs (the trainer's
    batches, numpy) are two writings of one rule: they agree on every observation."""
    from runtime.dialogue_tracker import mask_row

    rng = np.random.default_rng(int(p * 10))
    obs = (rng.random((2000, OBS_DIM)) < p).astype(np.float32)
    graded = list(range(0, OBS_DIM, 7))           # asked-counts and the turn are graded
    obs[:, graded] = rng.random((len(obs), len(graded)))
    want = mask_from_obs(obs)
    got = np.array([mask_row([float(x) for x in row]) for row in obs])
    assert got.shape == want.shape and (got == want).all()
