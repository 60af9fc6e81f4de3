"""The shared DQN (trainer/dqn.py): replay buffer, exploration, masks, learning and resuming."""
from __future__ import annotations

import json

import numpy as np
import pytest

# trainer.dqn imports TensorFlow, so every test here is a tf test; the module is imported in
# the fixture (not at collection), so a run without tf tests never loads TensorFlow
pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def dqn():
    pytest.importorskip("tensorflow")
    from trainer import dqn
    return dqn


class ContextBandit:
    """One-step episodes: the observation is a one-hot of a hidden index, the right action is
    that index (+1 reward, else 0).  Action ``n - 1`` is masked out by the tests."""

    def __init__(self, n=4):
        self.n = self.obs_dim = self.n_actions = n
        self.rng = np.random.default_rng(0)

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.target = int(self.rng.integers(0, self.n - 1))
        obs = np.zeros(self.n, np.float32)
        obs[self.target] = 1.0
        return obs, {}

    def step(self, action):
        assert 0 <= action < self.n
        reward = float(action == self.target)
        return np.zeros(self.n, np.float32), reward, True, False, {}


class Chain:
    """Walk right along a chain of 6 cells (reward 1 at the end, -0.01 per step, 20-step limit);
    learning it needs bootstrapping over several steps (gamma < 1)."""

    obs_dim, n_actions = 6, 2

    def reset(self, seed=None):
        self.pos, self.t = 0, 0
        return self._obs(), {}

    def _obs(self):
        o = np.zeros(6, np.float32)
        o[self.pos] = 1.0
        return o

    def step(self, action):
        self.t += 1
        self.pos = min(5, self.pos + 1) if action == 1 else max(0, self.pos - 1)
        done = self.pos == 5
        return self._obs(), 1.0 if done else -0.01, done, self.t >= 20, {}


def bandit_mask(obs):
    mask = np.ones((len(obs), obs.shape[1]), bool)
    mask[:, -1] = False
    return mask


# ---------------------------------------------------------------------------- buffer & policy
def test_replay_buffer_ring_wraps_and_samples_stored_transitions(dqn):
    rb = dqn.ReplayBuffer(5, 2)
    for start in range(0, 8, 2):          # 8 transitions into capacity 5
        idx = np.arange(start, start + 2)
        rb.add_batch(np.stack([idx, idx], 1).astype(np.float32), idx, idx.astype(np.float32),
                     np.stack([idx + 100, idx], 1).astype(np.float32), np.zeros(2, np.float32))
    assert len(rb) == 5 and rb.pos == 3
    assert sorted(rb.actions.tolist()) == [3, 4, 5, 6, 7]          # oldest overwritten
    obs, act, rew, nxt, done, w, idx = rb.sample(64, np.random.default_rng(0))
    assert obs.shape == (64, 2) and act.shape == (64,) and np.all(w == 1.0)
    assert np.all(obs[:, 0] == act) and np.all(rew == act) and np.all(nxt[:, 0] == act + 100)
    assert set(act.tolist()) <= {3, 4, 5, 6, 7}


def test_replay_buffer_save_load_roundtrip(dqn, tmp_path):
    rb = dqn.ReplayBuffer(10, 3, prioritized=True)
    rng = np.random.default_rng(1)
    rb.add_batch(rng.random((7, 3), np.float32), np.arange(7), rng.random(7, np.float32),
                 rng.random((7, 3), np.float32), np.ones(7, np.float32))
    rb.update_priorities(np.array([2]), np.array([5.0]))
    rb.save(tmp_path / "rb.npz")
    other = dqn.ReplayBuffer(10, 3, prioritized=True)
    assert other.load(tmp_path / "rb.npz")
    for name in ("obs", "next_obs", "actions", "rewards", "dones", "priorities"):
        np.testing.assert_array_equal(getattr(other, name), getattr(rb, name))
    assert (other.pos, other.size) == (rb.pos, rb.size)
    assert not dqn.ReplayBuffer(11, 3).load(tmp_path / "rb.npz")      # incompatible capacity


def test_prioritized_sampling_prefers_high_td_error(dqn):
    rb = dqn.ReplayBuffer(100, 1, prioritized=True, alpha=1.0)
    rb.add_batch(np.zeros((100, 1), np.float32), np.arange(100), np.zeros(100, np.float32),
                 np.zeros((100, 1), np.float32), np.zeros(100, np.float32))
    rb.update_priorities(np.arange(100), np.full(100, 0.01))
    rb.update_priorities(np.array([7]), np.array([100.0]))
    _, act, *_, w, idx = rb.sample(1000, np.random.default_rng(0), beta=1.0)
    assert np.mean(act == 7) > 0.9
    assert w[act == 7].max() < w[act != 7].min()                       # importance weights


def test_epsilon_schedule_and_masked_epsilon_greedy(dqn):
    cfg = dqn.DQNConfig(total_steps=1000, start_epsilon=1.0, end_epsilon=0.1,
                        exploration_fraction=0.5)
    assert dqn.linear_epsilon(cfg, 0) == 1.0
    assert dqn.linear_epsilon(cfg, 250) == pytest.approx(0.55)
    assert dqn.linear_epsilon(cfg, 500) == pytest.approx(0.1) == dqn.linear_epsilon(cfg, 900)
    rng = np.random.default_rng(0)
    q = np.tile(np.array([0.0, 1.0, 2.0, 9.0]), (500, 1))
    mask = np.tile(np.array([True, True, True, False]), (500, 1))
    a = dqn.epsilon_greedy(q, 1.0, rng, mask)                           # all random
    assert set(a.tolist()) == {0, 1, 2}                                 # uniform over allowed only
    assert np.all(dqn.epsilon_greedy(q, 0.0, rng, mask) == 2)           # greedy skips masked 3
    assert np.all(dqn.epsilon_greedy(q, 0.0, rng) == 3)


def test_nstep_returns_and_episode_end_flush(dqn):
    ns = dqn.NStep(2, 3, 0.5)
    assert ns.push(0, "s0", 0, 1.0, "s1", False, False) == []
    assert ns.push(1, "x0", 9, 5.0, "x1", True, True) == [("x0", 9, 5.0, "x1", 1.0, 1)]
    assert ns.push(0, "s1", 1, 2.0, "s2", False, False) == []
    out = ns.push(0, "s2", 2, 4.0, "s3", False, False)
    assert out == [("s0", 0, 1.0 + 0.5 * 2.0 + 0.25 * 4.0, "s3", 0.0, 3)]
    # a truncated episode flushes the rest, bootstrapping from the last observation
    out = ns.push(0, "s3", 3, 8.0, "s4", False, True)
    assert out == [("s1", 1, 2.0 + 0.5 * 4.0 + 0.25 * 8.0, "s4", 0.0, 3),
                   ("s2", 2, 4.0 + 0.5 * 8.0, "s4", 0.0, 2), ("s3", 3, 8.0, "s4", 0.0, 1)]
    assert ns.queues == [[], []]


# ---------------------------------------------------------------------------- learning
def test_dqn_learns_contextual_bandit_with_mask_and_resumes(dqn, tmp_path):
    cfg = dqn.DQNConfig(total_steps=1600, learning_starts=200, batch_size=32, hidden=(32,),
                        target_update_every=50, exploration_fraction=0.5, learning_rate=3e-3,
                        num_envs=4, checkpoint_every=800, seed=3)
    q, hist = dqn.train_dqn(lambda i: ContextBandit(), cfg, tmp_path, action_mask_fn=bandit_mask)
    assert hist["steps"] == 1600 and len(hist["episode_returns"]) == 1600
    assert hist["steps_per_second"] > 0 and len(hist["losses"]) > 100
    # masked action never taken (the buffer holds every transition: capacity >> steps)
    with np.load(tmp_path / "replay.npz") as z:
        assert len(z["actions"]) == 1600 and 3 not in set(z["actions"].tolist())
    act = dqn.greedy_policy(q, action_mask_fn=bandit_mask)
    obs = np.eye(4, dtype=np.float32)[:3]
    np.testing.assert_array_equal(act(obs), [0, 1, 2])
    assert np.mean(hist["episode_returns"][-200:]) > 0.8
    # resume: a longer run in the same directory continues from step 1600
    cfg2 = dqn.DQNConfig(**{**cfg.__dict__, "total_steps": 2000})
    q2, hist2 = dqn.train_dqn(lambda i: ContextBandit(), cfg2, tmp_path,
                              action_mask_fn=bandit_mask)
    assert hist2["steps"] == 2000 and len(hist2["episode_returns"]) == 2000
    assert hist2["episode_returns"][:1600] == hist["episode_returns"]
    np.testing.assert_array_equal(dqn.greedy_policy(q2, bandit_mask)(obs), [0, 1, 2])
    assert json.loads((tmp_path / "dqn_history.json").read_text())["episode_returns"][:5] == \
        hist["episode_returns"][:5]


def test_dqn_bootstraps_along_a_chain_with_polyak_per_and_nstep(dqn, tmp_path):
    cfg = dqn.DQNConfig(total_steps=4000, learning_starts=300, batch_size=32, hidden=(32, 32),
                        tau=0.05, prioritized=True, gamma=0.95, learning_rate=2e-3, n_step=2,
                        exploration_fraction=0.4, num_envs=4, checkpoint_every=10_000, seed=0)
    q, hist = dqn.train_dqn(lambda i: Chain(), cfg, tmp_path)
    act = dqn.greedy_policy(q)
    assert np.all(act(np.eye(6, dtype=np.float32)[:5]) == 1)          # always walk right
    qv = act.q_values(np.eye(6, dtype=np.float32)[:5])[:, 1]
    assert qv[4] > qv[0]                                                # value grows near the goal
