"""A warm start for the level editor's Q-table from the hand-written heuristic.

``heuristic_prior(cfg, seed)`` runs ``cfg.prior_episodes`` episodes of the heuristic designer
(``trainer/level_baselines.py``) through the editor, on the training distribution of the C
environment (size uniform in ``size_min..size_max``, difficulty uniform in [0, 1), half of the
time a path target uniform in ``1..2 m``), and returns the Monte Carlo estimate of Q under the
heuristic: for each (state, action) the heuristic took, the mean discounted return that
followed (``cfg.gamma``); actions it never took in a state stay 0. Q-learning then starts from
this table: its greedy policy begins close to the heuristic's (as far as the tabular state can
tell the heuristic's situations apart) and the learning improves on it. The ablation reports
the prior alone and Q-learning without it.
"""
from __future__ import annotations

import numpy as np


def heuristic_prior(cfg, seed: int) -> np.ndarray:
    from runtime import level_env as rules
    from runtime.level import _Draws
    from trainer.common import Progress
    from trainer.level_baselines import heuristic_policy

    total = np.zeros((rules.N_STATES, rules.N_ACTIONS))
    count = np.zeros((rules.N_STATES, rules.N_ACTIONS))
    draws = _Draws(np.random.default_rng(seed))
    with Progress(cfg.prior_episodes, "level heuristic prior", unit="episode") as bar:
        for ep in range(cfg.prior_episodes):
            n = cfg.size_min + draws.below(cfg.size_max - cfg.size_min + 1)
            m = rules.lattice(n)
            tg = list(rules.targets(m, draws.uniform()))
            if draws.uniform() >= 0.5:
                tg[0] = 1 + draws.below(2 * m)
            editor, act = rules.Editor(), heuristic_policy()
            state, done, steps = editor.start(n, tuple(tg), draws), False, []
            while not done:
                a = act(editor, draws)
                nxt, r, done = editor.step(a)
                steps.append((state, a, r))
                state = nxt
            ret = 0.0
            for s, a, r in reversed(steps):
                ret = r + cfg.gamma * ret
                total[s, a] += ret
                count[s, a] += 1
            if (ep + 1) % 1000 == 0:
                bar.update(1000)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)
