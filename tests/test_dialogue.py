"""Dialogue kind: simulator dynamics, NLU, templates, runtime replies, quick training."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.dialogue import (
    A_BOOK, A_BYE, A_CONFIRM, A_INFORM, A_OFFER, A_REQMORE, A_REQUEST, ACTIONS,
    DONTCARE, N_ACTIONS, OBS_DIM, Catalogue, SystemAct, Tracker, feature_index, mask_from_obs,
    parse_system, parse_user, render, replay, resolve_action,
)
from tests.conftest import require_kind
from trainer.dialogue_sim import (
    LEXICON, ONTOLOGY, SYSTEM_TEMPLATES, DialogueEnv, Goal, SimConfig, UserSimulator, corrupt,
    make_catalogue, random_policy, rule_confirm_policy, rule_policy, run_dialogues, sample_goal,
    text_dialogue, tracker_policy,
)

CAT = Catalogue(make_catalogue(0, 80))


def _acts(text, last=None):
    return parse_user(text, LEXICON, last)


def _informs(acts):
    return {s: v for a, s, v, _ in acts if a == "inform"}


# ----------------------------------------------------------------------------- catalogue + goals
def test_catalogue_is_seeded_and_covers_every_cuisine_area_pair():
    a, b, c = make_catalogue(0), make_catalogue(0), make_catalogue(1)
    assert a == b and a != c
    rs = a["restaurants"]
    assert len(rs) == 80 and len({r["name"] for r in rs}) == 80
    assert {(r["cuisine"], r["area"]) for r in rs} == {(x, y) for x in ONTOLOGY["cuisine"]
                                                       for y in ONTOLOGY["area"]}
    with pytest.raises(ValueError):
        make_catalogue(0, 50)


def test_goals_are_satisfiable_or_relaxable():
    rng = np.random.default_rng(0)
    cfg = SimConfig(p_unsatisfiable=0.3)
    relaxed = 0
    for _ in range(300):
        g = sample_goal(CAT, rng, cfg)
        if g.relax is None:
            assert len(CAT.matches(g.constraints)) > 0
        else:
            relaxed += 1
            assert len(CAT.matches(g.constraints)) == 0
            assert len(CAT.matches({**g.constraints, g.relax: DONTCARE})) > 0
    assert 40 < relaxed < 140


# ----------------------------------------------------------------------------- environment
def test_env_follows_gymnasium_api_and_is_deterministic():
    def rollout(seed):
        env = DialogueEnv(CAT, SimConfig(error_rate=0.2))
        obs, info = env.reset(seed=seed)
        assert obs.dtype == np.float32 and obs.shape == (OBS_DIM,) and isinstance(info, dict)
        out, rng = [obs], np.random.default_rng(0)
        for _ in range(40):
            a = int(rng.choice(np.flatnonzero(env.action_mask())))
            obs, r, term, trunc, info = env.step(a)
            assert isinstance(r, float) and isinstance(term, bool) and isinstance(trunc, bool)
            out.append(np.append(obs, r))
            if term or trunc:
                obs, _ = env.reset()
                out.append(obs)
        return np.concatenate(out)

    assert np.array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3), rollout(4))
    assert DialogueEnv.obs_dim == OBS_DIM and DialogueEnv.n_actions == N_ACTIONS == len(ACTIONS)


def test_user_hangs_up_when_patience_runs_out():
    env = DialogueEnv(CAT, SimConfig(patience=(7, 7), max_turns=30))
    env.reset(seed=0)
    total, turns = 0.0, 0
    while True:
        _, r, term, trunc, info = env.step(A_REQMORE)      # never helps
        total, turns = total + r, turns + 1
        if term or trunc:
            break
    assert term and turns == 7 and not info["success"]
    assert total == pytest.approx(-7 + SimConfig().reward_failure)


def test_user_hangs_up_after_too_many_wrong_offers():
    cfg = SimConfig(tolerance=(1, 1))
    goal = Goal({"cuisine": "italian", "area": "north", "price": DONTCARE}, "2", "19:00", ())
    env = DialogueEnv(CAT, cfg)
    env.reset(seed=0, options={"goal": goal})
    wrong = [i for i, r in enumerate(CAT.restaurants) if r["cuisine"] != "italian"]
    ends = []
    for r in wrong[:3]:
        env.tracker.offered = None
        act = SystemAct(A_OFFER, restaurant=r)
        ends.append(bool(env.user.respond(act)) and env.user.hung_up)
    assert ends == [False, True, True]                         # 2 mistakes > tolerance 1


def test_success_needs_booking_and_requested_info_before_bye():
    env = DialogueEnv(CAT, SimConfig())
    env.reset(seed=1)
    _, r, term, _, info = env.step(A_BYE)
    assert term and not info["success"] and r == -1.0 + SimConfig().reward_failure
    # the rule policy at 0% NLU errors always succeeds, with the reward +20 - turns
    m = run_dialogues(tracker_policy(rule_policy), CAT, n=200, error_rate=0.0, seed=5)
    assert m["success_rate"] == 1.0
    assert m["mean_return"] == pytest.approx(20 - m["mean_turns"])
    rnd = run_dialogues(random_policy(0), CAT, n=200, error_rate=0.0, seed=5)
    assert rnd["success_rate"] < 0.2


def test_nlu_errors_hurt_the_rule_policy_and_confirmation_helps():
    clean = run_dialogues(tracker_policy(rule_policy), CAT, n=300, error_rate=0.0, seed=2)
    noisy = run_dialogues(tracker_policy(rule_policy), CAT, n=300, error_rate=0.2, seed=2)
    confirm = run_dialogues(tracker_policy(rule_confirm_policy), CAT, n=300, error_rate=0.2, seed=2)
    assert noisy["success_rate"] < clean["success_rate"] - 0.1
    assert confirm["success_rate"] > noisy["success_rate"] + 0.1


def test_error_channel_rate_and_confidences():
    cfg = SimConfig()
    rng = np.random.default_rng(0)
    n, rate = 20_000, 0.2
    acts = [("inform", "cuisine", "italian", 1.0)] * n
    out = corrupt(acts, rng, rate, cfg)
    dropped = n - len(out)
    wrong = [a for a in out if a[2] != "italian"]
    # binomial: expected 0.2 * n errors, 70% substituted (4 sigma bounds)
    errors = dropped + len(wrong)
    assert abs(errors - rate * n) < 4 * np.sqrt(n * rate * (1 - rate))
    assert abs(len(wrong) / errors - cfg.substitute_share) < 0.04
    assert {a[2] for a in wrong} <= set(ONTOLOGY["cuisine"]) - {"italian"}
    right_conf = np.mean([a[3] for a in out if a[2] == "italian"])
    wrong_conf = np.mean([a[3] for a in wrong])
    assert right_conf > 0.8 and wrong_conf < 0.6
    assert all(a[2] == "italian" for a in corrupt(acts[:500], rng, 0.0, cfg))
    other = [("affirm", None, None, 1.0), ("request", "phone", None, 1.0)] * 100
    assert corrupt(other, rng, 1.0, cfg) == other               # only slot values are corrupted


def test_unsatisfiable_goal_is_relaxed_after_a_correct_no_match():
    c = next({"cuisine": x, "area": y, "price": p} for x in ONTOLOGY["cuisine"]
             for y in ONTOLOGY["area"] for p in ONTOLOGY["price"]
             if not len(CAT.matches({"cuisine": x, "area": y, "price": p})))
    user = UserSimulator(Goal(dict(c), "2", "19:00", (), -1, "price"), CAT,
                         np.random.default_rng(0), SimConfig())
    out = user.respond(SystemAct(A_OFFER, constraints=dict(c)))
    assert out == [("inform", "price", DONTCARE, 1.0)] and user.mistakes == 0


# ----------------------------------------------------------------------------- tracker + mask
def test_one_row_mask_matches_the_batched_rules():
    """mask_from_obs answers one row (every reply) in plain Python and a batch (training) in
    numpy: both give the same mask, thresholds included."""
    values = np.array([0.0, 0.3, 0.5, 0.6, 1.0], np.float32)
    obs = np.random.default_rng(0).choice(values, size=(5000, OBS_DIM))
    batched = mask_from_obs(obs)
    assert 0.02 < batched[:, A_INFORM].mean() < 0.98 and 0.02 < batched[:, A_BOOK].mean() < 0.98
    np.testing.assert_array_equal(np.concatenate([mask_from_obs(o[None]) for o in obs]), batched)


def test_tracker_features_and_mask():
    t = Tracker(CAT)
    t.user(_acts("I want cheap italian food in the north"))
    f = t.features()
    assert f.shape == (OBS_DIM,) and f.dtype == np.float32
    assert f[feature_index("cuisine", "filled")] == 1 and f[feature_index("people", "filled")] == 0
    assert f[feature_index("price", "conf")] == pytest.approx(0.95)
    m = mask_from_obs(f[None])[0]
    assert m.shape == (N_ACTIONS,)
    assert not m[A_BOOK] and not m[A_INFORM] and not m[A_CONFIRM["people"]]
    assert m[A_CONFIRM["cuisine"]] and m[A_OFFER] and m[A_REQUEST["time"]]
    # a "no" to a confirmation clears the slot; a "yes" makes it certain
    t.system(SystemAct(A_CONFIRM["cuisine"], slot="cuisine", value="italian"))
    t.user(_acts("no"))
    assert t.value["cuisine"] is None
    t.system(SystemAct(A_CONFIRM["area"], slot="area", value="north"))
    t.user(_acts("yes"))
    assert t.conf["area"] == 1.0 and t.confirmed["area"]


def test_resolve_action_offers_matching_restaurants_or_no_match():
    rng = np.random.default_rng(0)
    t = Tracker(CAT)
    t.user([("inform", "cuisine", "thai", 0.9), ("inform", "area", "east", 0.9)])
    act = resolve_action(t, A_OFFER, rng)
    r = CAT.restaurants[act.restaurant]
    assert (r["cuisine"], r["area"]) == ("thai", "east")
    missing = next(p for p in ONTOLOGY["price"]
                   if not len(CAT.matches({"cuisine": "thai", "area": "east", "price": p})))
    t.user([("inform", "price", missing, 0.9)])
    act = resolve_action(t, A_OFFER, rng)
    assert act.nomatch and act.constraints == {"cuisine": "thai", "area": "east", "price": missing}
    assert resolve_action(t, A_BOOK, rng).name == "none"        # nothing offered yet


# ----------------------------------------------------------------------------- NLU
@pytest.mark.parametrize("text,expected", [
    ("I want cheap italian food in the north",
     {"cuisine": "italian", "price": "cheap", "area": "north"}),
    ("Somewhere downtown, something posh please", {"area": "centre", "price": "expensive"}),
    ("a table for two at 7:30pm", {"people": "2", "time": "19:30"}),
    ("For 4 people at 7pm.", {"people": "4", "time": "19:00"}),
    ("There will be 6 of us, around eight", {"people": "6", "time": "20:00"}),
    ("sushi at 13:00 for three", {"cuisine": "japanese", "time": "13:00", "people": "3"}),
    ("not italian, chinese please", {"cuisine": "chinese"}),
    ("Any kind of food is fine, but in the west", {"cuisine": DONTCARE, "area": "west"}),
    ("Anywhere in town is fine.", {"area": DONTCARE}),
    ("I'd like a moderately priced restaurant", {"price": "moderate"}),
])
def test_nlu_reads_slot_values(text, expected):
    assert _informs(_acts(text)) == expected


def test_nlu_dialogue_acts_and_context():
    ask_people = SystemAct(A_REQUEST["people"], slot="people")
    ask_area = SystemAct(A_REQUEST["area"], slot="area")
    ask_time = SystemAct(A_REQUEST["time"], slot="time")
    assert _informs(_acts("4", ask_people)) == {"people": "4"}
    assert _informs(_acts("8 please", ask_time)) == {"time": "20:00"}
    assert _informs(_acts("I don't mind", ask_area)) == {"area": DONTCARE}
    assert _informs(_acts("I don't mind")) == {}
    kinds = lambda text: sorted(a[0] for a in _acts(text))  # noqa: E731
    assert kinds("yes please") == ["affirm"]
    assert kinds("No, I said chinese") == ["inform", "negate"]
    assert kinds("No, thank you. Goodbye!") == ["done"]
    assert kinds("Thanks, that's all.") == ["done"]
    asks = kinds("great thanks, what is the phone number and the address?")
    assert asks.count("request") == 2 and "done" not in asks
    assert _acts("blah blah") == []


def test_system_templates_round_trip():
    """Every template variant renders to text that parses back into the same act."""
    rng = np.random.default_rng(0)
    acts = [SystemAct(A_REQUEST[s], slot=s) for s in A_REQUEST]
    acts += [SystemAct(A_CONFIRM[s], slot=s, value=v) for s, v in
             [("cuisine", "thai"), ("area", "centre"), ("price", "moderate"), ("people", "7"),
              ("time", "20:30")]]
    for r in (0, 17, 79):
        acts += [SystemAct(A_OFFER, restaurant=r),
                 SystemAct(A_BOOK, restaurant=r, people="3", time="19:30", ref="AB12CD"),
                 SystemAct(A_INFORM, restaurant=r, slots=("phone",)),
                 SystemAct(A_INFORM, restaurant=r, slots=("address",)),
                 SystemAct(A_INFORM, restaurant=r, slots=("phone", "address"))]
    acts += [SystemAct(A_OFFER, constraints={"cuisine": "thai", "area": "east", "price": "cheap"}),
             SystemAct(A_REQMORE), SystemAct(A_REQMORE, value="open"), SystemAct(A_BYE)]
    keys = ("action", "slot", "value", "restaurant", "people", "time", "slots", "constraints")
    for act in acts:
        for _ in range(6):
            text = render(act, CAT, SYSTEM_TEMPLATES, rng)
            back = parse_system(text, CAT, SYSTEM_TEMPLATES, LEXICON)
            assert [getattr(back, k) for k in keys] == [getattr(act, k) for k in keys], text


def test_hand_written_system_turns_fall_back_to_keywords():
    name = CAT.names[5]
    act = parse_system(f"Try {name}, it is lovely.", CAT, SYSTEM_TEMPLATES, LEXICON)
    assert act.name == "offer" and act.restaurant == 5
    assert parse_system("How many of you are coming?", CAT, SYSTEM_TEMPLATES,
                        LEXICON).slot == "people"
    assert parse_system("Hmm.", CAT, SYSTEM_TEMPLATES, LEXICON).name == "none"


def test_text_level_rule_dialogues_succeed():
    """Simulated users speak sentences, the keyword NLU reads them, the rule policy answers."""
    def reply(history, seed):
        rng = np.random.default_rng(seed)
        t = replay(history, CAT, SYSTEM_TEMPLATES, LEXICON)
        return render(resolve_action(t, rule_policy(t), rng), CAT, SYSTEM_TEMPLATES, rng)

    runs = [text_dialogue(reply, CAT, seed=s) for s in range(60)]
    assert np.mean([r["success"] for r in runs]) >= 0.95
    assert all(len(r["history"]) % 2 == 0 for r in runs if r["success"])


# ----------------------------------------------------------------------------- runtime (shipped)
EXAMPLE = "I want cheap italian food in the north"


def _check_example_reply(reply: str, cat: Catalogue, templates, lexicon):
    act = parse_system(reply, cat, templates, lexicon)
    given = {"cuisine": "italian", "price": "cheap", "area": "north"}
    if act.action == A_OFFER and act.restaurant is not None:
        r = cat.restaurants[act.restaurant]
        assert all(r[s] == v for s, v in given.items()), reply
    elif act.nomatch:
        assert not len(cat.matches(given)) and act.constraints == given, reply
    elif act.name.startswith("request_"):
        assert act.slot in ("people", "time"), reply
    else:
        assert act.name.startswith("confirm_") and act.value in ("italian", "cheap", "north"), reply


def test_runtime_reply_to_the_example(exported_dir):
    require_kind("dialogue")
    import runtime
    from runtime.dialogue import load_resources

    cat, templates, lexicon = load_resources(exported_dir)
    for seed in range(5):
        reply = runtime.generate("dialogue", history=[EXAMPLE], seed=seed, models_dir=exported_dir)
        assert isinstance(reply, str) and reply
        _check_example_reply(reply, cat, templates, lexicon)


def test_runtime_determinism_opening_and_precision(exported_dir):
    require_kind("dialogue")
    import runtime

    h = ["I'd like some indian food in the centre", "What price range are you looking for?",
         "something cheap"]
    a = runtime.generate("dialogue", history=h, seed=3, models_dir=exported_dir)
    assert a == runtime.generate("dialogue", history=h, seed=3, models_dir=exported_dir)
    opening = runtime.generate("dialogue", history=[], seed=0, models_dir=exported_dir)
    assert opening in SYSTEM_TEMPLATES["greet"]
    if "q_int8" in runtime.info("dialogue", exported_dir)["files"]:
        assert isinstance(runtime.generate("dialogue", history=h, seed=3, precision="int8",
                                           models_dir=exported_dir), str)


def test_runtime_completes_a_simulated_conversation(exported_dir):
    require_kind("dialogue")
    import runtime

    def reply(history, seed):
        return runtime.generate("dialogue", history=history, seed=seed, models_dir=exported_dir)

    runs = [text_dialogue(reply, CAT, seed=100 + s) for s in range(30)]
    assert np.mean([r["success"] for r in runs]) >= 0.8


def test_runtime_survives_arbitrary_text(exported_dir):
    """Any odd-length list of strings within the caps gives a reply, never an exception."""
    require_kind("dialogue")
    import runtime

    rng = np.random.default_rng(0)
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789 :.,!?'-é😀") + [
        " cheap ", " north ", " 7pm ", " for 4 ", " no ", " yes ", " thanks ", " 25:99 ",
        " 99999 people ", " not ", " any ", CAT.names[3]]
    for i in range(40):
        turns = [
            "".join(rng.choice(alphabet, int(rng.integers(0, 30)))) for _ in range(2 * (i % 5) + 1)]
        reply = runtime.generate("dialogue", history=turns, seed=i, models_dir=exported_dir)
        assert isinstance(reply, str) and reply


@pytest.mark.parametrize("history,match", [
    ("hello", "history must be a list"),
    ([1], r"history\[0\] must be a string"),
    (["a"] * 65, "too many items"),
    (["x" * 1001], "too long"),
    (["hi", "hello"], "odd length"),
])
def test_runtime_rejects_bad_history(exported_dir, history, match):
    require_kind("dialogue")
    import runtime

    with pytest.raises(ValueError, match=match):
        runtime.generate("dialogue", history=history, models_dir=exported_dir)
    with pytest.raises(ValueError, match="unknown option"):
        runtime.generate("dialogue", history=[], turns=3, models_dir=exported_dir)


# ----------------------------------------------------------------------------- training (TF)
@pytest.mark.tf
@pytest.mark.slow
def test_quick_training_exports_a_working_policy(tmp_path):
    import dataclasses

    import runtime
    from trainer import dialogue

    cfg = dataclasses.replace(dialogue.PROFILES["quick"], eval_dialogues=50,
                              eval_text_dialogues=3)
    dialogue.train(cfg, tmp_path / "work")
    assert (tmp_path / "work" / "learning_curve.png").exists()
    dialogue.export(cfg, tmp_path / "work", tmp_path / "out")
    metrics = dialogue.evaluate(cfg, tmp_path / "work", tmp_path / "out")
    for policy in ("dqn", "rule", "rule_confirm", "random"):
        for e in ("0.0", "0.1", "0.2"):
            assert 0.0 <= metrics[policy][e]["success_rate"] <= 1.0
    assert metrics["rule"]["0.0"]["success_rate"] > metrics["random"]["0.0"]["success_rate"]
    info = runtime.info("dialogue", tmp_path / "out")
    assert info["files"]["q"]["parity_max_abs_diff"] < 1e-4
    assert info["files"]["q"]["inputs"][0]["shape"] == [None, OBS_DIM]
    reply = runtime.generate("dialogue", history=[EXAMPLE], seed=0, models_dir=tmp_path / "out")
    assert isinstance(reply, str) and reply
