"""Approximate policy iteration with rollout targets: the ``rollout`` stage of the recommend
trainer (after the ``myopic`` run).

The simulator is ours, so the value of showing an item can be measured instead of bootstrapped.
For a state of a session on a *training* user, and each candidate item i (the current policy's
top ``rollout_top`` plus ``rollout_random`` random allowed items), the simulated user is cloned
(hidden state included) and shown i alone.  With the exact click probability p_i and watch time
w_i of that one-item slate, the target is

    Q(s, i) = p_i (w_i + E[G | click on i]) + (1 - p_i) E[G | no click],

G being the rest of the session's return under the current policy (5-item slates, to the end
of the session), each branch estimated by ``rollout_click`` / ``rollout_noclick`` rollouts with
common random numbers across the candidates.  The *rollout part* p_i (E[G | click] -
E[G | no click]) is fitted by least squares on eight fixed features of (state, item)
(``features``) and added to the one-step network A(s, i) (the ``myopic`` run, an estimate of
p_i w_i):

    score(s, i) = A(s, i) + theta . phi(A(s, i), trust estimate(s), item i)

Round 1 follows the history heuristic (``trainer.recommend_eval.heuristic_scores``); round r
follows the policy of round r - 1, from states of its own sessions.  Everything is seeded
(``Config.seed``); each round keeps its targets (``targets.npz``, written every few states, so a
restart resumes) and its coefficients (``coef.json``) in ``<work>/rollout/round<r>``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from runtime.recommend_features import item_features, parse_catalogue
from trainer.recsim import RecSimEnv

ROLLOUT_SEED = 40_000_000      # training users of this stage (evaluation: 10M, selection: 20M)
FEATURES = ("quality", "quality x trust", "length", "popularity", "A", "A x (quality - 0.5)",
            "A x (quality - 0.5) x trust", "A x length")
# the terms that depend on the state (multiplied by A or by the trust estimate)
STATE_TERMS = (1, 4, 5, 6, 7)
GROUP = 8                      # states whose rollouts run in lock-step (one policy call a step)


def _cols(n_topics: int, embedding_dim: int):
    """(quality, length / 4, popularity) columns of the item features; trust column of the
    state (``runtime.recommend_features.featurise``)."""
    t, e = n_topics, embedding_dim
    return t, t + 1, t + 2, 4 * t + e + 6


def features(a, states, items, n_topics: int, embedding_dim: int, ops=np):
    """phi [B, N, 8] from the one-step values A [B, N], states [B, S] and items [N, F]; ``ops``:
    numpy or ``keras.ops`` (the exported graph computes the same terms)."""
    cq, cl, cp, ct = _cols(n_topics, embedding_dim)
    q, length, pop = items[:, cq][None, :], items[:, cl][None, :], items[:, cp][None, :]
    trust = states[:, ct:ct + 1]                                   # [B, 1]
    dq = q - 0.5
    ones = a * 0.0 + 1.0
    terms = [q * ones, q * trust, length * ones, pop * ones, a, a * dq, a * dq * trust,
             a * length]
    return ops.stack(terms, axis=-1)


def linear_term(a, states, items, coef, n_topics: int, embedding_dim: int, ops=np):
    """theta . phi: [B, N] (the part added to A)."""
    phi = features(a, states, items, n_topics, embedding_dim, ops)
    return ops.sum(phi * np.asarray(coef, np.float32), axis=-1)


def policy_scores(a_fn, coef, cat):
    """states [B, S] -> scores [B, N] of the policy A + theta . phi (numpy)."""
    items = item_features(cat)

    def score(states):
        a = a_fn(states)
        return a + linear_term(a, states, items, coef, cat.n_topics, cat.embedding_dim)
    return score


def top_slate(scores, blocked, k):
    s = np.where(blocked, -np.inf, scores)
    kk = min(k, int((~blocked).sum()))
    c = np.argpartition(-s, kk - 1)[:kk]
    return c[np.argsort(-s[c], kind="stable")]


# ------------------------------------------------------------------------------ states
def collect_states(policy, raw, sim, n_states: int, seed0: int, keep: float, k: int):
    """Sessions of training users (seeds ``seed0``, ``seed0 + 1``, ...) served top-k of ``policy``;
    each step kept with probability ``keep`` -> list of env clones at the kept steps."""
    rng = np.random.default_rng(seed0)
    out, user, batch = [], 0, 32
    while len(out) < n_states:
        envs = [RecSimEnv(raw, sim) for _ in range(batch)]
        for j, e in enumerate(envs):
            e.reset(seed=seed0 + user + j)
        user += batch
        active = list(range(batch))
        while active and len(out) < n_states:
            scores = policy(np.stack([envs[i].state() for i in active]))
            nxt = []
            for j, i in enumerate(active):
                e = envs[i]
                if rng.random() < keep and len(out) < n_states:
                    out.append(e.clone())
                _, _, term, trunc, _ = e.step(top_slate(scores[j], e.blocked, k).astype(np.int64))
                if not (term or trunc):
                    nxt.append(i)
            active = nxt
    return out


def candidates(env, scores, n_top: int, n_random: int, rng) -> np.ndarray:
    """The policy's top ``n_top`` allowed items + ``n_random`` other random allowed ones."""
    top = top_slate(scores, env.blocked, n_top)
    rest = np.setdiff1d(np.flatnonzero(~env.blocked), top)
    extra = rng.choice(rest, min(n_random, len(rest)), replace=False) if len(rest) else rest
    return np.concatenate([top, extra]).astype(np.int64)


def rollout_group(envs, cands, policy, seeds, cfg) -> list:
    """Rollouts of a group of states in lock-step.  -> per state (p [C], w [C], Gc [C], Gnc [C]):
    exact click probability and watch time of each candidate shown alone, and the mean return
    of the rest of the session after a click on it / after no click."""
    runs, out = [], []
    for g, (e, c) in enumerate(zip(envs, cands)):
        p, w = e.click_probs_alone()[c], e.expected_watch(c)
        gc, gnc = np.zeros(len(c)), np.zeros(len(c))
        out.append((p, w, gc, gnc))
        for branch, reps, acc in ((0, cfg.rollout_click, gc), (1, cfg.rollout_noclick, gnc)):
            for r in range(reps):
                for ci, item in enumerate(c):
                    # common random numbers: the same stream for every candidate of the state
                    x = e.clone(seed=[*seeds[g], branch, r])
                    _, _, term, trunc, _ = x.step(int(item), pick=branch)
                    if not (term or trunc):
                        runs.append((x, acc, ci, reps))
    active = runs
    while active:
        scores = policy(np.stack([x.state() for x, *_ in active]))
        nxt = []
        for j, run in enumerate(active):
            x, acc, ci, reps = run
            slate = top_slate(scores[j], x.blocked, cfg.slate_k).astype(np.int64)
            _, r, term, trunc, _ = x.step(slate)
            acc[ci] += r / reps
            if not (term or trunc):
                nxt.append(run)
        active = nxt
    return out


# ------------------------------------------------------------------------------ one round
def _save(path: Path, **arrays) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def round_targets(cfg, rnd: int, policy, a_fn, raw, sim, out_dir: Path, n_states: int) -> dict:
    """States of the round's sessions, candidates and rollout targets (resumes from
    ``targets.npz``).  -> dict of arrays: states [M, S], cands [M, C], a [M, C] (one-step
    network), p, w, gc, gnc [M, C]."""
    from trainer.common import Progress

    cat = parse_catalogue(raw)
    seed0 = ROLLOUT_SEED + 1_000_000 * rnd + 100_000 * cfg.seed
    envs = collect_states(policy, raw, sim, n_states, seed0, cfg.rollout_keep, cfg.slate_k)
    path = out_dir / "targets.npz"
    keys = ("states", "cands", "a", "p", "w", "gc", "gnc")
    done = dict(np.load(path)) if path.exists() else {k: [] for k in keys}
    rows = {k: list(done[k]) for k in keys}
    start = len(rows["states"])
    c = cfg.rollout_top + cfg.rollout_random
    with Progress(n_states, f"recommend rollout round {rnd}", unit="state", initial=start) as bar:
        for g0 in range(start, n_states, GROUP):
            group = envs[g0:g0 + GROUP]
            ids = range(g0, g0 + len(group))
            states = np.stack([e.state() for e in group])
            scores = policy(states)
            cands = [candidates(e, scores[j], cfg.rollout_top, cfg.rollout_random,
                                np.random.default_rng([cfg.seed, rnd, m]))
                     for j, (e, m) in enumerate(zip(group, ids))]
            if any(len(x) != c for x in cands):        # too few allowed items: pad by repeats
                cands = [np.resize(x, c) for x in cands]
            res = rollout_group(group, cands, policy, [(cfg.seed, rnd, m) for m in ids], cfg)
            a = a_fn(states)
            for j, (p, w, gc, gnc) in enumerate(res):
                for k, v in zip(keys, (states[j], cands[j], a[j, cands[j]], p, w, gc, gnc)):
                    rows[k].append(v)
            if (g0 // GROUP) % 5 == 4 or g0 + GROUP >= n_states:
                _save(path, **{k: np.asarray(v) for k, v in rows.items()})
            bar.update(len(group))
    return {k: np.asarray(v) for k, v in rows.items()}


def fit(data: dict, items: np.ndarray, n_topics: int, embedding_dim: int, terms=None,
        held_out: float = 0.2) -> dict:
    """Least squares of the rollout part p (Gc - Gnc) on phi (+ an intercept, not served: it is
    the same for every item of a state).  ``terms``: indices of the features used (others 0).
    -> coefficients, R^2 on the fit's states and on the last ``held_out`` of the states (from
    a fit on the others)."""
    y = data["p"] * (data["gc"] - data["gnc"])                         # [M, C]
    m, c = y.shape
    phi = np.stack([features(data["a"][j:j + 1], data["states"][j:j + 1],
                             items[data["cands"][j]], n_topics, embedding_dim)[0]
                    for j in range(m)])                                # [M, C, 8]
    use = np.zeros(len(FEATURES), bool)
    use[list(range(len(FEATURES)) if terms is None else terms)] = True
    x = np.concatenate([phi[..., use], np.ones((m, c, 1))], -1)

    def solve(rows):
        xx, yy = x[rows].reshape(-1, x.shape[-1]), y[rows].reshape(-1)
        return np.linalg.lstsq(xx, yy, rcond=None)[0]

    def r2(beta, rows):
        pred = x[rows] @ beta
        return float(1.0 - ((y[rows] - pred) ** 2).sum() / ((y[rows] - y[rows].mean()) ** 2).sum())

    cut = int(round(m * (1.0 - held_out)))
    beta_cv = solve(slice(0, cut))
    beta = solve(slice(0, m))
    coef = np.zeros(len(FEATURES))
    coef[use] = beta[:-1]
    return {"coef": [float(v) for v in coef], "intercept": float(beta[-1]),
            "features": list(FEATURES), "terms": [int(i) for i in np.flatnonzero(use)],
            "r2_train": round(r2(beta, slice(0, m)), 4),
            "r2_held_out": round(r2(beta_cv, slice(cut, m)), 4) if cut < m else None,
            "states": int(m), "candidates": int(c),
            "target_mean": round(float(y.mean()), 4), "target_std": round(float(y.std()), 4)}


# ------------------------------------------------------------------------------ the stage
def one_step_network(cfg, work_dir: Path):
    """The ``myopic`` run's network as states [B, S] -> A [B, N] on the training catalogue."""
    import tensorflow as tf
    from trainer.recommend import catalogue, load_q

    layer = load_q(cfg, work_dir, "myopic").get_layer("q_pairq")
    items = tf.constant(item_features(parse_catalogue(catalogue(cfg))))
    f = tf.function(lambda s: layer.score(s, items))
    return lambda s: f(tf.constant(np.asarray(s, np.float32))).numpy().astype(np.float64)


def round_dir(work_dir: Path, rnd: int) -> Path:
    return Path(work_dir) / "rollout" / f"round{rnd}"


def load_fit(work_dir: Path, rnd: int) -> dict:
    path = round_dir(work_dir, rnd) / "coef.json"
    if not path.exists():
        raise FileNotFoundError(f"no rollout round {rnd} in {path.parent}: train first")
    return json.loads(path.read_text())


def train(cfg, work_dir: Path) -> dict:
    """Rounds 1 .. ``cfg.rollout_rounds`` (a finished round is read back, not redone).
    -> per round: the fit (coefficients, R^2, states) and the seconds it took."""
    from trainer.common import save_json
    from trainer.recommend import catalogue, sim_config
    from trainer.recommend_diag import heuristic_from_states

    raw, sim = catalogue(cfg), sim_config(cfg)
    cat = parse_catalogue(raw)
    items = item_features(cat)
    a_fn = one_step_network(cfg, work_dir)
    policy = lambda s: heuristic_from_states(s, cat)                    # noqa: E731
    terms = STATE_TERMS if cfg.rollout_terms == "state" else None
    summary = {}
    for rnd in range(1, cfg.rollout_rounds + 1):
        out = round_dir(work_dir, rnd)
        if not (out / "coef.json").exists():
            out.mkdir(parents=True, exist_ok=True)
            t0 = time.time()
            data = round_targets(cfg, rnd, policy, a_fn, raw, sim, out, cfg.rollout_states)
            res = fit(data, items, cat.n_topics, cat.embedding_dim, terms)
            res["seconds"] = round(time.time() - t0, 1)
            res["policy_followed"] = "history heuristic" if rnd == 1 else f"round {rnd - 1}"
            save_json(out / "coef.json", res)
            print(f"rollout round {rnd}: R^2 {res['r2_train']} (held out {res['r2_held_out']}), "
                  f"{res['seconds']:.0f} s, coef {np.round(res['coef'], 3).tolist()}",
                  file=sys.stderr)
        res = load_fit(work_dir, rnd)
        summary[f"round{rnd}"] = res
        policy = policy_scores(a_fn, res["coef"], cat)
    return summary
