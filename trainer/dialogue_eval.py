"""Dialogue evaluation: simulated users per goal type at 0/10/20% typo noise with the training
phrasing bank and with the held-out bank, for the exported DQN (fp32 and int8), the rule
policies and random; plus the forty hand-written conversations of
:mod:`trainer.dialogue_scripts` played against the runtime itself.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from runtime.dialogue_domain import CONSTRAINTS, Catalogue
from trainer.dialogue_scripts import BYE, SCRIPTS
from trainer.dialogue_sim import (
    q_policy, random_policy, rule_confirm_all_policy, rule_confirm_policy, rule_policy,
    run_dialogues, tracker_policy, tuned_rule,
)

RULES = ("rule", "rule_confirm", "rule_confirm_all", "rule_tuned")
# the tuned rule's grid, searched one parameter at a time (0: never confirm on confidence)
TUNE_GRID = {"threshold": (0.0, 0.55, 0.65, 0.75, 0.82, 0.9, 1.01),
             "booking_threshold": (0.0, 0.55, 0.65, 0.75, 0.82, 0.9, 0.96, 1.01),
             "sloppy": (None, 0.2, 0.12, 0.08, 0.05, 0.03, 0.0),
             "recheck": (False, True),
             # read the booking back: when a detail is below x (1.01: always), or for a user
             # more than x of whose words needed correcting (None: never)
             "readback": (None, 0.82, 0.9, 0.96, 1.01),
             "readback_sloppy": (None, 0.2, 0.12, 0.08, 0.05, 0.0)}

KIND = "dialogue"
EVIDENCE = (
    "success (the goal reached, judged against the goal: a booking when the user wanted one, "
    "none otherwise, the requested info) is also the reward's terminal term, so the simulated "
    "success rates show what the policy optimised; the evidence that does not share the "
    "reward's users is the held-out phrasing bank (words never used in training) and the "
    "hand-written conversations (scripts). clean = success with no repeat, correction or "
    "rephrasing by the user (not in the reward). The understanding (lexicon, rules) is "
    "hand-written, partly from the hand-written conversations' phrasings; the held-out bank "
    "was written separately from the training bank.")


def _setting_names(cfg) -> list[tuple[str, str, float]]:
    return ([(f"noise_{e:.1f}", "train", e) for e in cfg.eval_noise]
            + [(f"heldout_{e:.1f}", "heldout", e) for e in cfg.eval_heldout_noise])


def simulated(cfg, cat: Catalogue, policies: dict, n: int) -> dict:
    out = {}
    for name, policy in policies.items():
        out[name] = {setting: run_dialogues(policy, cat, n=n, noise=e, bank=bank,
                                            seed=cfg.seed + 7)
                     for setting, bank, e in _setting_names(cfg)}
    return out


# ----------------------------------------------------------------------------- scripts
def _line(script: dict, key: str, used: dict, default: str, reply) -> str:
    lines = script.get(key, [])
    k = used.get(key, 0)
    used[key] = k + 1
    text = lines[k] if k < len(lines) else default
    if "{reject_name}" in text:
        text = f"I don't want {reply.offered['name']}" if reply.offered else "another one"
    return text


def _answer(script: dict, reply, given: set, used: dict, log: dict) -> str:
    act = reply.act
    answers = script.get("answers", {})
    expect = script["expect"]
    booking = expect.get("booking")
    if act.startswith("request_"):
        slot = act[8:]
        if slot in given:
            log["repeats"] += 1
        given.add(slot)
        if slot in answers:
            return answers[slot]
        if slot in CONSTRAINTS:
            return "I don't mind"
        return "no need to book" if booking is False else "sorry, I said it already"
    if act.startswith("confirm_"):
        slot = act[8:]
        right = expect.get(slot) or (booking[0] if slot == "people" and booking else None) or (
            booking[1] if slot == "time" and booking else None)
        if right is None or reply.slots.get(slot) == right:
            return "yes"
        log["repeats"] += 1
        return "no, " + answers.get(slot, right)
    if act == "readback":
        if not booking:
            return "no need to book"
        wrong = [s for s, v in zip(("people", "time"), booking) if reply.slots.get(s) != v]
        if not wrong or (reply.booking is None and script.get("on_book")):
            return "yes please"       # a script that changes its booking: the first is right
        log["repeats"] += 1
        return "no, " + " ".join(answers.get(s, v) for s, v in zip(("people", "time"), booking)
                                 if s in wrong)
    if act == "offer":
        log["offers"].append(reply.offered["name"])
        return _line(script, "on_offer", used, "great, book it please" if booking else
                     "what's the phone number?", reply)
    if act in ("book", "change"):
        return _line(script, "on_book", used, BYE, reply)
    if act == "inform":
        return _line(script, "on_inform", used, "great, book it please" if booking and
                     reply.booking is None else BYE, reply)
    if act == "nomatch":
        log["nomatch"] = True
        return _line(script, "on_nomatch", used, "ok, anything then", reply)
    if act == "reject_booking":
        log["rejected"] = True
        return _line(script, "on_reject", used, "ok", reply)
    if act == "repeat":
        log["repeats"] += 1
    return _line(script, "on_reqmore", used, "no thanks, bye", reply)


def judge(script: dict, reply, log: dict, told: set, cat: Catalogue) -> bool:
    expect = script["expect"]
    b = reply.booking
    if expect.get("booking") is False:
        if b is not None:
            return False
        rest = reply.offered
    else:
        if b is None or (str(b["people"]), b["time"]) != tuple(expect["booking"]):
            return False
        rest = cat.restaurants[cat.by_name[b["restaurant"].lower()]]
    if rest is None:
        return False
    if any(rest.get(s) != expect[s] for s in CONSTRAINTS if s in expect):
        return False
    if any(rest.get(s) == v for s, v in expect.get("not", {}).items()):
        return False
    if "name" in expect and rest["name"] != expect["name"]:
        return False
    if any((rest["name"], q) not in told for q in expect.get("info", [])):
        return False
    if expect.get("second_offer") and len(set(log["offers"])) < 2:
        return False
    return all(log.get(k) for k in ("nomatch", "rejected") if expect.get(k))


def run_script(model, script: dict, seed: int = 0, max_turns: int = 14) -> dict:
    """Play one hand-written user against ``model`` (a ``runtime.load("dialogue")``), passing
    ``state`` back (the app path) -> {"success", "clean", "turns", "transcript"}."""
    log = {"repeats": 0, "offers": [], "nomatch": False, "rejected": False}
    given, used, told = set(script.get("gives", [])), {}, set()
    reply = model.generate(history=[script["open"]], seed=seed)
    turns = 1
    while reply.act != "bye" and turns < max_turns:
        if reply.act == "inform" and reply.offered:
            told.update((reply.offered["name"], q) for q in reply.state["informed"]
                        if reply.state["informed"][q])
        user = _answer(script, reply, given, used, log)
        reply = model.generate(state=reply.state, history=[user], seed=seed + turns)
        turns += 1
    success = reply.act == "bye" and judge(script, reply, log, told, model.resources()[0])
    return {"id": script["id"], "success": success, "clean": success and not log["repeats"],
            "turns": turns, "transcript": reply.transcript}


def run_scripts(models_dir: Path, precision: str = "fp32") -> dict:
    import runtime

    with runtime.load(KIND, models_dir=models_dir, precision=precision) as model:
        t0 = time.perf_counter()
        runs = [run_script(model, s) for s in SCRIPTS]
        dt = time.perf_counter() - t0
    return {"conversations": len(runs),
            "success_rate": float(np.mean([r["success"] for r in runs])),
            "clean_rate": float(np.mean([r["clean"] for r in runs])),
            "mean_turns": float(np.mean([r["turns"] for r in runs])),
            "failed": [r["id"] for r in runs if not r["success"]],
            "not_clean": [r["id"] for r in runs if r["success"] and not r["clean"]],
            "mean_reply_ms": 1000 * dt / max(1, sum(r["turns"] for r in runs))}


# ----------------------------------------------------------------------------- tuning
def tune_rule(cat: Catalogue, n: int, noise=(0.0, 0.3), seed: int = 101) -> dict:
    """Tune :func:`trainer.dialogue_sim.tuned_rule` on TRAINING users (the training phrasing
    bank, a typo rate drawn per dialogue from the DQN's training range, seeds of their own,
    never the evaluation's): coordinate ascent over :data:`TUNE_GRID`, two sweeps, on the mean
    return (the DQN's objective: success, failure and turns) -> {"params", "mean_return",
    "success_rate", "mean_turns", "dialogues", "seed"}."""
    params = {"threshold": 0.0, "booking_threshold": 0.0, "sloppy": None, "recheck": False,
              "readback": None, "readback_sloppy": None}
    cache: dict = {}

    def score(p):
        key = tuple(sorted(p.items(), key=lambda kv: kv[0]))
        if key not in cache:
            cache[key] = run_dialogues(tracker_policy(tuned_rule(p)), cat, n=n, noise=noise,
                                       seed=seed)
        r = cache[key]
        return r["mean_return"], r["success_rate"], -r["mean_turns"]
    for _ in range(2):
        for name, grid in TUNE_GRID.items():
            params[name] = max(grid, key=lambda v: score({**params, name: v}))
    best = cache[tuple(sorted(params.items(), key=lambda kv: kv[0]))]
    return {"params": dict(params), "mean_return": best["mean_return"],
            "success_rate": best["success_rate"], "mean_turns": best["mean_turns"],
            "dialogues": n, "noise": list(noise), "seed": seed, "grid": TUNE_GRID,
            "evaluated": len(cache)}


# ----------------------------------------------------------------------------- paired
def paired(cat: Catalogue, policies: dict, n: int, noise: float, seed: int) -> dict:
    """The DQN against each rule policy on the same ``n`` simulated users (a fresh sample, not
    the users of the main table): rates, and the per-user differences DQN - rule with their
    standard errors, so that "beats" means more than a dialogue or two in a thousand."""
    runs = {k: run_dialogues(policies[k], cat, n=n, noise=noise, seed=seed, outcomes=True)
            for k in ("dqn",) + RULES if k in policies}
    d = runs["dqn"]
    out = {"dialogues": n, "noise": noise, "seed": seed}
    for k, r in runs.items():
        out[k] = {"success_rate": r["success_rate"], "mean_turns": r["mean_turns"]}
        if k == "dqn":
            continue
        ds = d["success"].astype(float) - r["success"]
        dt = d["turns"] - r["turns"]
        out[k].update({
            "dqn_minus_rule_success": float(ds.mean()),
            "success_se": float(ds.std(ddof=1) / np.sqrt(n)),
            "only_dqn_succeeds": int((ds > 0).sum()), "only_rule_succeeds": int((ds < 0).sum()),
            "dqn_minus_rule_turns": float(dt.mean()), "turns_se": float(dt.std(ddof=1) / np.sqrt(n))})
    return out


def beats(p: dict) -> tuple[bool, bool]:
    """(success, turns): the DQN better than the rule policy ``p`` (a :func:`paired` entry) by
    more than two standard errors of the paired difference."""
    return (p["dqn_minus_rule_success"] > 2 * p["success_se"],
            p["dqn_minus_rule_turns"] < -2 * p["turns_se"])


# ----------------------------------------------------------------------------- everything
def targets(m: dict) -> dict:
    pair = m["paired_noise_0.2"]       # the best rule: most successes there, then fewest turns
    dqn, best = m["dqn"], max((p for p in RULES if p in pair), key=lambda p: (
        pair[p]["success_rate"], -pair[p]["mean_turns"]))
    success, turns = beats(pair[best])
    out = {"heldout_success_ge_0.90": dqn["heldout_0.0"]["success_rate"] >= 0.90,
           "heldout_clean_ge_0.75": dqn["heldout_0.0"]["clean_rate"] >= 0.75,
           "best_rule_at_0.2": best,
           "dqn_beats_best_rule_at_0.2_success": success,
           "dqn_beats_best_rule_at_0.2_turns": turns}
    if "dqn_int8" in m:
        out["int8_within_1_point"] = all(
            abs(m["dqn_int8"][k]["success_rate"] - dqn[k]["success_rate"]) <= 0.01 for k in dqn)
    return out


def evaluate_all(cfg, work_dir: Path, models_dir: Path, onnx_q) -> dict:
    import json

    from runtime import registry

    cat = Catalogue(registry.read_json(KIND, "catalogue", models_dir))
    tuned = tune_rule(cat, cfg.tune_dialogues)
    policies = {"dqn": q_policy(onnx_q(models_dir, "fp32")),
                "rule": tracker_policy(rule_policy),
                "rule_confirm": tracker_policy(rule_confirm_policy),
                "rule_confirm_all": tracker_policy(rule_confirm_all_policy),
                "rule_tuned": tracker_policy(tuned_rule(tuned["params"])),
                "random": random_policy(cfg.seed)}
    if "q_int8" in registry.entry(KIND, models_dir)["files"]:
        policies["dqn_int8"] = q_policy(onnx_q(models_dir, "int8"))
    metrics: dict = {"dialogues_per_setting": cfg.eval_dialogues,
                     "command": f"python -m trainer train {KIND} --profile full",
                     "settings": "noise_E: training phrasing bank with typo rate E; heldout_E: "
                                 "the held-out bank (never used in training) with typo rate E",
                     "evidence": EVIDENCE}
    metrics["rule_tuning"] = tuned
    metrics.update(simulated(cfg, cat, policies, cfg.eval_dialogues))
    for e in cfg.eval_noise:
        metrics[f"paired_noise_{e:.1f}"] = paired(cat, policies, cfg.paired_dialogues, e,
                                                  cfg.seed + 11)
    metrics["scripts"] = run_scripts(models_dir)
    if "dqn_int8" in policies:
        metrics["scripts_int8"] = run_scripts(models_dir, "int8")
    metrics["target"] = targets(metrics)
    summary = Path(work_dir) / "train_summary.json"
    if summary.exists():
        metrics["train"] = json.loads(summary.read_text())
    return metrics
