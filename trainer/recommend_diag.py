"""Why the learned recommend networks trail the history heuristic: ``python -m trainer.recommend_diag``.

Two questions, answered on simulated users that are neither training nor evaluation users:

1. *Can the Q-network represent the heuristic?*  The shipped architecture
   (``trainer.recommend_net``, same features) is fitted by regression to the heuristic's scores
   of every item, on the states of sessions the heuristic drives (with exploration noise), and
   served as a 5-item top-k policy.  The same network is also fitted to the exact one-step value
   of each item (the myopic oracle's score, which uses the hidden user): what a one-step learner
   would reach without sampling noise, i.e. the best ranking by E[one-step value | state];
   and that fitted value weighted towards quality as the patient oracle weights its values
   (the long-term worth of quality: trust and the refunded time budget).
2. *How concentrated should slates over random histories be?*  The largest item share of k=10
   slates over the evaluation's 500 random histories, for the heuristic and for the two oracles
   when each history is given to a user drawn from the population (who has consumed it).

3. *Does TD improve a network that starts at the heuristic?*  ``--warm-td``: the network fitted
   to the heuristic is fine-tuned by the recommend DQN trainer with gamma 0.9 and, from the same
   start, gamma 0 (the myopic ablation), and served after each chunk of transitions.

Prints one JSON object.  About 5 minutes on one core, ``--warm-td`` about 10 (``--quick``: a
smoke run).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from runtime.recommend_features import featurise, item_features, parse_catalogue
from trainer.recsim import RecSimEnv

DIAG_SEED = 50_000_000        # sessions whose states the network is fitted on
SELECT_SEED = 20_000_000      # users the fitted networks are served to (as in the tried runs)
PROBE_SEED = 30_000_000       # the evaluation's random-history probe
ORACLE_USER_SEED = 80_000_000


def heuristic_from_states(states: np.ndarray, cat) -> np.ndarray:
    """``trainer.recommend_eval.heuristic_scores`` computed from states [B, S] -> [B, N]."""
    t, e = cat.n_topics, cat.embedding_dim
    o = 4 * t + e
    s = np.asarray(states, np.float64)
    tp, q = cat.topics.astype(np.float64), cat.quality.astype(np.float64)
    sat = s[:, 3 * t + e:o]
    warm = (2 * s[:, :t] + 2 * s[:, t:2 * t] - s[:, 2 * t:3 * t] - sat) @ tp.T + 0.5 * q - (q < 0.3)
    cold = cat.popularity[None] + q[None] - 0.5 * (s[:, 2 * t:3 * t] @ tp.T)
    return np.where((s[:, o + 1] == 0)[:, None], cold, warm)


def _top_k(scores, blocked, k, rng, explore=0.0):
    s = np.array(scores, np.float64)
    if explore > 0:
        s += explore * (s[~blocked].std() + 1e-9) * rng.gumbel(size=s.shape)
    s[blocked] = -np.inf
    kk = min(k, int((~blocked).sum()))
    c = np.argpartition(-s, kk - 1)[:kk]
    return c[np.argsort(-s[c])]


def sessions(score_fn, raw, sim, n, seed0, k=5, explore=0.0, eps=0.0):
    """Lock-step sessions of ``n`` users served top-k of ``score_fn(states) -> [B, N]``
    (Gumbel ``explore``, a random slate with probability ``eps``).
    -> (returns [n], visited states [M, S], one-step values [M, N])."""
    envs = [RecSimEnv(raw, sim) for _ in range(n)]
    for i, e in enumerate(envs):
        e.reset(seed=seed0 + i)
    rng = np.random.default_rng(seed0 + 7)
    returns, states, values, active = np.zeros(n), [], [], list(range(n))
    while active:
        s = np.stack([envs[i].state() for i in active])
        scores = score_fn(s)
        keep = []
        for j, i in enumerate(active):
            e = envs[i]
            slate = _top_k(scores[j], e.blocked, k, rng, explore)
            if eps > 0 and rng.random() < eps:
                free = np.flatnonzero(~e.blocked)
                slate = rng.choice(free, min(k, len(free)), replace=False)
            states.append(s[j])
            values.append(e.myopic_values())
            _, r, term, trunc, _ = e.step(np.asarray(slate, np.int64))
            returns[i] += r
            if not (term or trunc):
                keep.append(i)
        active = keep
    return returns, np.asarray(states, np.float32), np.asarray(values, np.float32)


def fit_network(cfg, states, targets, steps: int, seed: int = 0):
    """The recommend Q-network fitted by least squares to ``targets`` [M, N] (all items);
    -> score function states -> [B, N] (in units of the targets' standard deviation)."""
    import tensorflow as tf
    from trainer.recommend import make_q_network

    tf.keras.utils.set_random_seed(seed)          # the initial weights too: reproducible fits
    net = make_q_network(cfg, "fit")
    net.build((None, cfg.n_items + states.shape[1]))
    layer = net.get_layer("fit_pairq")
    feats = tf.constant(item_features(parse_catalogue(_raw(cfg))))
    y = targets / targets.std()
    opt = tf.keras.optimizers.Adam(1e-3)

    @tf.function
    def step(s, t):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((layer.score(s, feats) - t) ** 2)
        opt.apply_gradients(zip(tape.gradient(loss, layer.trainable_variables),
                                layer.trainable_variables))
        return loss

    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.integers(0, len(states), 128)
        step(states[idx], y[idx])
    score = tf.function(lambda s: layer.score(s, feats))
    fn = lambda s: score(tf.constant(np.asarray(s, np.float32))).numpy()   # noqa: E731
    fn.net = net
    return fn


def _raw(cfg):
    from trainer.recommend import catalogue
    return catalogue(cfg)


def random_histories(n_items: int, n: int = 500):
    rng = np.random.default_rng(PROBE_SEED)
    return [rng.choice(n_items, int(rng.integers(1, 11)), replace=False).tolist()
            for _ in range(n)]


def item_share(slates, n_items: int) -> dict:
    counts = np.zeros(n_items)
    for s in slates:
        counts[np.asarray(s)] += 1
    return {"max_item_share": round(float(counts.max() / len(slates)), 3),
            "most_shown_item": int(counts.argmax()),
            "coverage": round(float((counts > 0).mean()), 3)}


def _top10(values, history):
    v = np.array(values, np.float64)
    v[history] = -np.inf
    return np.argsort(-v)[:10]


def dominant_item_reference(raw, sim, cat, score_fns: dict) -> dict:
    """Largest item share (k=10) over the random histories: for each score function of the
    state, and for the oracles given each history as a population user's consumption."""
    from trainer.recommend_eval import patient_values

    hists = random_histories(cat.n_items)
    states = np.stack([featurise(h, cat) for h in hists])
    out = {name: item_share([_top10(v, h) for v, h in zip(fn(states), hists)], cat.n_items)
           for name, fn in score_fns.items()}
    oracles = {"myopic_oracle": lambda e: e.myopic_values(), "patient_oracle": patient_values}
    for name, value in oracles.items():
        slates = []
        for j, h in enumerate(hists):
            e = RecSimEnv(raw, sim)
            e.reset(seed=ORACLE_USER_SEED + j, options={"cold": True})
            for i in h:
                e.consumed[i] = True
                e.history.append(i)
                e._consume(i)
            e._refresh()
            slates.append(_top10(value(e), h))
        out[name] = item_share(slates, cat.n_items)
    return out


def _setup():
    """One TensorFlow thread each way, the default config, its catalogue and the heuristic."""
    import tensorflow as tf
    from trainer.recommend import Config, sim_config

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cfg = Config()
    raw, sim = _raw(cfg), sim_config(cfg)
    cat = parse_catalogue(raw)
    return cfg, raw, sim, cat, lambda s: heuristic_from_states(s, cat)


def run(quick: bool = False) -> dict:
    cfg, raw, sim, cat, heur = _setup()
    n_fit, n_serve, steps = (60, 40, 200) if quick else (1500, 300, 4000)
    t0 = time.time()
    _, states, values = sessions(heur, raw, sim, n_fit, DIAG_SEED, explore=0.5, eps=0.1)
    out = {"fit_states": len(states), "served_users": n_serve, "fit_steps": steps}
    fns = {"heuristic": heur}
    for name, target in (("net_fitted_to_heuristic", heur(states)),
                         ("net_fitted_to_one_step_value", values)):
        fitted = fit_network(cfg, states, target.astype(np.float32), steps)
        held = states[-2000:]
        agree = np.mean([len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5
                         for a, b in zip(fitted(held), target[-2000:])])
        ret = sessions(fitted, raw, sim, n_serve, SELECT_SEED)[0]
        out[name] = {"return": round(float(ret.mean()), 2),
                     "sem": round(float(ret.std(ddof=1) / np.sqrt(n_serve)), 2),
                     "top5_agreement_with_target": round(float(agree), 3)}
        fns[name] = fitted
    # the same fitted one-step value, weighted towards quality like the patient oracle (weight
    # 4, not tuned here): how much of the gap is the long-term value of quality
    weight = np.maximum(0.05, 1.0 + 4.0 * (cat.quality - 0.5))[None]
    patient = lambda s: np.maximum(fns["net_fitted_to_one_step_value"](s), 0.0) * weight  # noqa: E731
    ret = sessions(patient, raw, sim, n_serve, SELECT_SEED)[0]
    out["net_fitted_to_one_step_value_x_quality_weight"] = {
        "return": round(float(ret.mean()), 2), "sem": round(float(ret.std(ddof=1) / np.sqrt(n_serve)), 2)}
    ret = sessions(heur, raw, sim, n_serve, SELECT_SEED)[0]
    out["heuristic"] = {"return": round(float(ret.mean()), 2),
                        "sem": round(float(ret.std(ddof=1) / np.sqrt(n_serve)), 2)}
    out["random_histories_k10"] = dominant_item_reference(raw, sim, cat, fns)
    out["seconds"] = round(time.time() - t0)
    return out


def _paired(ret, base) -> dict:
    d = ret - base
    return {"diff": round(float(d.mean()), 2),
            "se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 2)}


def warm_td(quick: bool = False, lr: float = 1e-4) -> dict:
    """Warm start + TD: the network fitted to the heuristic, then fine-tuned by the recommend
    DQN trainer (``trainer.dqn.train_dqn``, the full profile's one-item training slates,
    gamma 0.9 with 3-step returns, and gamma 0 from the same start), epsilon 0.05 throughout,
    Adam at ``lr``; served to the selection users after each chunk of transitions, paired with
    the warm start and the heuristic on the same users."""
    import dataclasses
    import tempfile

    from trainer.dqn import train_dqn
    from trainer.recommend import _dqn_config, action_mask, make_q_network

    cfg, raw, sim, cat, heur = _setup()
    n_fit, n_serve, steps, chunks = ((60, 40, 200, (2200, 2400)) if quick else
                                     (1500, 300, 4000, (4000, 10000, 20000, 45000)))
    _, states, _ = sessions(heur, raw, sim, n_fit, DIAG_SEED, explore=0.5, eps=0.1)
    fitted = fit_network(cfg, states, heur(states).astype(np.float32), steps)
    w0 = fitted.net.get_weights()
    base = sessions(heur, raw, sim, n_serve, SELECT_SEED)[0]
    warm = sessions(fitted, raw, sim, n_serve, SELECT_SEED)[0]
    out = {"heuristic": round(float(base.mean()), 2), "warm_start": round(float(warm.mean()), 2),
           "warm_start_minus_heuristic": _paired(warm, base), "lr": lr}

    def build(d, n, name):
        net = make_q_network(cfg, name)
        net.build((None, d))
        net.set_weights(w0)
        return net

    for gamma in (0.9, 0.0):
        rows = []
        with tempfile.TemporaryDirectory() as work:
            for total in chunks:
                dcfg = _dqn_config(cfg, gamma=gamma, total_steps=total,
                                   n_step=1 if gamma == 0 else None)
                dcfg = dataclasses.replace(dcfg, learning_rate=lr, start_epsilon=0.05,
                                           end_epsilon=0.05, checkpoint_every=total)
                q, _ = train_dqn(lambda i: RecSimEnv(raw, sim), dcfg, work, q_network_fn=build,
                                 action_mask_fn=action_mask(cfg), progress_desc=f"warm td {gamma}")
                layer, feats = q.get_layer("q_pairq"), item_features(cat)
                ret = sessions(lambda s: layer.score(s.astype(np.float32), feats).numpy(),
                               raw, sim, n_serve, SELECT_SEED)[0]
                rows.append({"transitions": total, "return": round(float(ret.mean()), 2),
                             "minus_warm_start": _paired(ret, warm),
                             "minus_heuristic": _paired(ret, base)})
        out[f"gamma_{gamma}"] = rows
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (minutes -> seconds)")
    ap.add_argument("--warm-td", action="store_true",
                    help="warm start from the fitted heuristic, then TD fine-tuning (gamma 0.9 "
                         "and 0), served after each chunk")
    ap.add_argument("--lr", type=float, default=1e-4, help="learning rate of --warm-td")
    args = ap.parse_args(argv)
    out = warm_td(args.quick, args.lr) if args.warm_td else run(args.quick)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
