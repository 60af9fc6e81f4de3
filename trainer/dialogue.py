"""Dialogue policy: a DQN that runs a restaurant-booking conversation (kind ``dialogue``).

Data: no corpus. The seeded catalogue, the agenda-based user simulator and its noisy NLU channel
live in :mod:`trainer.dialogue_sim`; the observation (belief state features), the action set
and the action mask live in :mod:`runtime.dialogue` so that training and serving share one
implementation.

``train`` runs :func:`trainer.dqn.train_dqn` (Double DQN, masked actions) on ``num_envs``
simulators whose NLU error rate is drawn per dialogue from ``[train_error_min,
train_error_max]``; ``export`` writes the Q-network (``obs float32 [None, OBS_DIM] -> q float32
[None, N_ACTIONS]``, plus an int8 variant) and the catalogue, templates and lexicon as JSON;
``evaluate`` simulates ``eval_dialogues`` dialogues per NLU error rate for the exported DQN (via
onnxruntime), the rule policies and a random policy, plus text-level dialogues through
``runtime.generate`` (keyword NLU on simulated user sentences).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.dialogue_domain import ACTIONS, N_ACTIONS, Catalogue
from runtime.dialogue_tracker import OBS_DIM, mask_from_obs
from trainer.dialogue_lexicon import LEXICON, SYSTEM_TEMPLATES, make_catalogue
from trainer.dialogue_sim import DialogueEnv, SimConfig

KIND = "dialogue"
DATA = ("No dataset: a seeded catalogue of restaurants and an agenda-based user simulator with "
        "a noisy NLU channel (trainer/dialogue_sim.py).")


# the demonstrator: rule_policy with the parameters tune_rule chose on training users (mean
# return, 3,000 users per grid point): read every booking back, no per-slot confirmation
DEMO_RULE = {"threshold": 0.0, "booking_threshold": 0.0, "sloppy": None, "recheck": False,
             "readback": 1.01, "readback_sloppy": None}


@dataclass
class Config:
    seed: int = 0
    catalogue_seed: int = 0
    n_restaurants: int = 80
    train_noise_min: float = 0.0          # typo channel rate drawn per training dialogue
    train_noise_max: float = 0.3
    reward_scale: float = 0.1             # rewards are multiplied by this for the DQN only
    # DQN (see trainer.dqn.DQNConfig)
    total_steps: int = 330_000
    learning_rate: float = 5e-4
    buffer_size: int = 100_000
    batch_size: int = 128
    gamma: float = 1.0                    # undiscounted, as the return the policies are judged by
    target_update_every: int = 500
    start_epsilon: float = 0.2            # DQfD starts at the demonstrator's level (plain: 1.0)
    end_epsilon: float = 0.02
    exploration_fraction: float = 0.3
    learning_starts: int = 2000
    train_every: int = 1
    hidden: tuple = (128, 128)
    num_envs: int = 8
    prioritized: bool = False
    checkpoint_every: int = 25_000
    # DQfD (trainer.dqfd, Hester et al. 2018): demonstrations of a rule kept in the replay with
    # a large-margin loss, n-step TD, pre-training; demo_transitions = 0 trains a plain DQN
    demo_transitions: int = 60_000       # played by demo_rule on training users
    demo_rule: dict = field(default_factory=lambda: dict(DEMO_RULE))
    demo_pretrain_steps: int = 15_000    # gradient steps on the demonstrations only
    demo_margin: float = 0.05            # in scaled reward units: half a turn
    demo_lambda_n: float = 1.0
    demo_lambda_e: float = 1.0
    n_step: int = 4
    demo_share: float = 0.25             # share of each batch from the demonstrations,
    demo_share_min: float = 0.02         # decaying linearly to this
    demo_decay_fraction: float = 0.5     # over this fraction of total_steps
    # evaluation
    eval_dialogues: int = 1000
    paired_dialogues: int = 10_000     # users per typo rate in the paired DQN-vs-rule runs
    tune_dialogues: int = 3_000        # training users per grid point when tuning rule_tuned
    eval_noise: tuple = (0.0, 0.1, 0.2)
    eval_heldout_noise: tuple = (0.0, 0.1)
    int8: bool = True


PROFILES = {
    "quick": Config(total_steps=3_000, learning_starts=500, hidden=(64, 64), buffer_size=5_000,
                    checkpoint_every=1_500, eval_dialogues=100, paired_dialogues=500,
                    tune_dialogues=100, demo_transitions=1_000, demo_pretrain_steps=200,
                    exploration_fraction=0.5, int8=False),
    "full": Config(),
}


def _dqn_config(cfg: Config):
    from trainer.dqn import DQNConfig

    return DQNConfig(
        total_steps=cfg.total_steps, learning_rate=cfg.learning_rate,
        buffer_size=cfg.buffer_size, batch_size=cfg.batch_size, gamma=cfg.gamma,
        target_update_every=cfg.target_update_every, start_epsilon=cfg.start_epsilon,
        end_epsilon=cfg.end_epsilon, exploration_fraction=cfg.exploration_fraction,
        learning_starts=cfg.learning_starts, train_every=cfg.train_every,
        hidden=tuple(cfg.hidden), num_envs=cfg.num_envs, seed=cfg.seed,
        checkpoint_every=cfg.checkpoint_every, prioritized=cfg.prioritized)


def catalogue(cfg: Config) -> dict:
    return make_catalogue(cfg.catalogue_seed, cfg.n_restaurants)


class ScaledRewardEnv(DialogueEnv):
    """The simulator with rewards multiplied by ``scale`` (Q-targets of order 1 suit the Huber
    loss and Adam better than +-20); metrics are always reported in unscaled rewards."""

    def __init__(self, *args, scale: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.scale = float(scale)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward * self.scale, terminated, truncated, info


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    from trainer import common
    from trainer.dqn import train_dqn

    work_dir = Path(work_dir)
    cat = Catalogue(catalogue(cfg))
    sim = SimConfig(noise=(cfg.train_noise_min, cfg.train_noise_max), bank="train")

    def make_env(i: int) -> DialogueEnv:
        return ScaledRewardEnv(cat, sim, seed=cfg.seed * 1000 + i, scale=cfg.reward_scale)

    if cfg.demo_transitions > 0:
        from trainer.dqfd import DemoConfig, train_dqfd
        from trainer.dialogue_sim import tuned_rule

        rule = tuned_rule(dict(cfg.demo_rule))
        demo = DemoConfig(cfg.demo_transitions, cfg.demo_pretrain_steps, cfg.demo_margin,
                          cfg.demo_lambda_n, cfg.demo_lambda_e, cfg.n_step, cfg.demo_share,
                          cfg.demo_share_min, cfg.demo_decay_fraction)
        q, history = train_dqfd(make_env, lambda env: rule(env.tracker), _dqn_config(cfg), demo,
                                work_dir, action_mask_fn=mask_from_obs,
                                progress_desc="dialogue dqfd")
    else:
        q, history = train_dqn(make_env, _dqn_config(cfg), work_dir, strategy=strategy,
                               action_mask_fn=mask_from_obs, progress_desc="dialogue dqn")
    if common.is_chief(strategy):
        q.save_weights(str(work_dir / "q.weights.h5"))
        common.save_json(work_dir / "train_summary.json", {
            "steps": history.get("steps"), "steps_per_second": history.get("steps_per_second"),
            "episodes": len(history["episode_returns"]),
            "last_1000_mean_return": float(np.mean(history["episode_returns"][-1000:]))
            / cfg.reward_scale if history["episode_returns"] else None})
        common.save_learning_curve(
            work_dir / "learning_curve.png",
            {"episode return": np.asarray(history["episode_returns"]) / cfg.reward_scale,
             "episode length (turns)": history["episode_lengths"],
             "Huber loss": history["losses"]},
            xlabel="episode / gradient step", title="dialogue DQN (mixed NLU error rates)")


def load_q_network(cfg: Config, work_dir: Path):
    from trainer.dqn import make_q_network

    path = Path(work_dir) / "q.weights.h5"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m trainer train {KIND}` first")
    q = make_q_network(OBS_DIM, N_ACTIONS, tuple(cfg.hidden), name="q")
    q.load_weights(str(path))
    return q


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    import tensorflow as tf

    from trainer import common
    from trainer.export import export_tf_function, quantize_int8, write_entry, write_json

    q = load_q_network(cfg, work_dir)

    def q_values(obs):
        return tf.identity(q(obs, training=False), name="q")

    # parity on real observations (random belief states from the simulator), batch 1 and 64
    env = DialogueEnv(catalogue(cfg), SimConfig(noise=0.2), seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    obs = [env.reset(seed=int(rng.integers(1 << 30)))[0]]
    while len(obs) < 64:
        o, _, term, trunc, _ = env.step(int(rng.choice(np.flatnonzero(env.action_mask()))))
        obs.append(env.reset()[0] if term or trunc else o)
    samples = [[np.stack(obs[:1])], [np.stack(obs)]]
    files = {"q": export_tf_function(q_values, [tf.TensorSpec([None, OBS_DIM], tf.float32,
                                                              name="obs")],
                                     kind=KIND, role="q", out_dir=out_dir, sample_inputs=samples)}
    if cfg.int8:
        files["q_int8"] = quantize_int8(files["q"], kind=KIND, role="q_int8", out_dir=out_dir)
    files["catalogue"] = write_json(catalogue(cfg), kind=KIND, role="catalogue", out_dir=out_dir)
    files["templates"] = write_json(SYSTEM_TEMPLATES, kind=KIND, role="templates", out_dir=out_dir)
    files["lexicon"] = write_json(LEXICON, kind=KIND, role="lexicon", out_dir=out_dir)
    notes = (f"q: obs float32 [N, {OBS_DIM}] (runtime.dialogue_tracker.Tracker.features) -> q "
             f"float32 [N, {N_ACTIONS}] over actions {', '.join(ACTIONS)}; mask with "
             "runtime.dialogue_tracker.mask_from_obs. catalogue (restaurants, hours, party "
             "sizes), templates (system replies), lexicon (the understanding's words): JSON.")
    write_entry(out_dir, KIND, files, common.config_dict(cfg), notes=notes)


def _onnx_q(models_dir: Path, precision: str):
    from runtime import registry

    sess = registry.load_session(KIND, "q", models_dir, precision)
    name = sess.get_inputs()[0].name
    return lambda obs: registry.run(sess, {name: np.asarray(obs, np.float32)})[0]


def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    from trainer.dialogue_eval import evaluate_all

    return evaluate_all(cfg, Path(work_dir), Path(models_dir), _onnx_q)
