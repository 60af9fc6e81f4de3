"""DQfD (trainer/dqfd.py): the paired 1-step/n-step transitions, the demonstrations, and that
pre-training on a rule's demonstrations makes the network rank the rule's action first."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.dialogue_domain import Catalogue
from runtime.dialogue_tracker import mask_from_obs
from trainer.dialogue import DEMO_RULE, ScaledRewardEnv
from trainer.dialogue_lexicon import make_catalogue
from trainer.dialogue_sim import SimConfig, tuned_rule
from trainer.dqfd import DemoConfig, PairedNStep, PairedReplay, collect_demos, demo_share

CAT = Catalogue(make_catalogue(0))


def test_paired_nstep_gives_one_step_and_n_step_of_the_same_step():
    ns = PairedNStep(1, 3, 0.5)
    o = [np.full(2, k, np.float32) for k in range(5)]
    assert ns.push(0, o[0], 1, 1.0, o[1], False, False) == []
    assert ns.push(0, o[1], 2, 2.0, o[2], False, False) == []
    (one, many), = ns.push(0, o[2], 3, 4.0, o[3], False, False)
    assert one[1] == 1 and one[2] == 1.0 and np.array_equal(one[3], o[1]) and one[4] == 0.0
    assert many[2] == 1.0 + 0.5 * 2.0 + 0.25 * 4.0 and np.array_equal(many[3], o[3])
    assert many[5] == 3
    # the episode ends: every queued step comes out, the last one terminal in both forms
    out = ns.push(0, o[3], 4, 8.0, o[4], True, True)
    assert [p[0][1] for p in out] == [2, 3, 4]
    assert out[-1][0][4] == 1.0 and out[-1][1][4] == 1.0 and out[-1][1][5] == 1
    assert out[0][1][2] == 2.0 + 0.5 * 4.0 + 0.25 * 8.0


def test_demo_share_decays_to_its_floor():
    from trainer.dqn import DQNConfig

    cfg, demo = DQNConfig(total_steps=1000), DemoConfig(demo_share=0.25, demo_share_min=0.05,
                                                        demo_decay_fraction=0.5)
    assert demo_share(demo, cfg, 0) == 0.25
    assert abs(demo_share(demo, cfg, 250) - 0.15) < 1e-9
    assert demo_share(demo, cfg, 900) == pytest.approx(0.05)


def _envs(k):
    return [ScaledRewardEnv(CAT, SimConfig(noise=(0.0, 0.3)), seed=100 + i, scale=0.1)
            for i in range(k)]


def test_demonstrations_are_the_rules_valid_actions_with_scaled_rewards():
    rule = tuned_rule(DEMO_RULE)
    buf = collect_demos(_envs(4), lambda env: rule(env.tracker), 300, DemoConfig(n_step=3),
                        gamma=1.0, seed=0)
    assert isinstance(buf, PairedReplay) and len(buf) >= 300
    rows = buf.rows(np.arange(len(buf)))
    assert mask_from_obs(rows["obs"])[np.arange(len(buf)), rows["act"]].all()
    allowed = np.array([-0.1, 1.9, -2.1])                          # turn, success, failure
    assert np.isclose(rows["r1"][:, None], allowed).any(axis=1).all()
    assert (buf.many.nsteps[:len(buf)] <= 3).all()


@pytest.mark.slow
def test_pretraining_on_demonstrations_ranks_the_rules_action_first(tmp_path):
    from dataclasses import replace

    from trainer import dialogue

    cfg = replace(dialogue.PROFILES["quick"], total_steps=200, demo_transitions=2_000,
                  demo_pretrain_steps=1_500, num_envs=4, checkpoint_every=200)
    dialogue.train(cfg, tmp_path)
    assert (tmp_path / "pretrained.weights.h5").exists()
    from runtime.dialogue_domain import N_ACTIONS
    from runtime.dialogue_tracker import OBS_DIM
    from trainer.dqn import make_q_network

    q = make_q_network(OBS_DIM, N_ACTIONS, cfg.hidden, name="q")
    q.load_weights(str(tmp_path / "pretrained.weights.h5"))
    rule = tuned_rule(DEMO_RULE)
    buf = collect_demos(_envs(4), lambda env: rule(env.tracker), 500, DemoConfig(), 1.0, 7)
    rows = buf.rows(np.arange(len(buf)))
    qs = np.where(mask_from_obs(rows["obs"]), q(rows["obs"]).numpy(), -np.inf)
    assert (qs.argmax(axis=1) == rows["act"]).mean() >= 0.95
