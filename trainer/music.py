"""Melodies: a recurrent prior over note events learned by maximum likelihood on folk songs and
chorale melodies, tuned by reinforcement learning in the RL Tuner way.

    python -m trainer train music --profile full

1. **Data** (``trainer.music_data``): Essen folk songs and Bach chorale soprano lines from
   music21's bundled corpus, as (pitch or rest, duration) events in C major / A minor with
   metre and pick-up; split by tune (variants kept on one side); parsed once and cached in
   ``runs/music/corpus.json``.
2. **Prior** (``trainer.music_prior``): token + context embeddings -> GRU -> next event, trained
   with teacher forcing (Adam, cosine decay, gradient clipping), whole tunes in length buckets.
3. **RL tuning** (``trainer.music_rl``): the policy starts as a copy of the prior; each update
   samples a batch of melodies (random style, metre, mode and length like the training tunes)
   with the runtime's masks and ``top_p``, scores them with the music-theory rewards
   (``trainer.music_rewards``, per-note penalties as rates), a pull toward the training
   tunes' rhythm, range and structure statistics and toward their window-feature means
   (``trainer.music_stats``; training tunes cut like the melody: their opening and closing,
   by window position, as the evaluation cuts the held-out tunes) and a discriminator
   trained on training tunes (``trainer.music_disc``), and takes a REINFORCE
   step on ``E[reward] - kl * KL(policy || prior)`` (normalised advantages; the KL is exact
   over the allowed events; ``kl`` decays from ``kl_coef`` to ``kl_final``).
4. **Export**: the tuned policy's single step ``(token, context, state) -> (logits, state)``
   (embedding gathers, input projection, GRU update, output layer), parity-checked against
   Keras' GRU and TensorFlow.
5. **Evaluation** (``evaluate``): against held-out folk tunes (``trainer.music_eval``), next to
   the prior alone, a Markov chain and uniform random events; see ``docs/kinds/music.md``.

Checkpoints: ``mle.npz`` after the prior, ``rl.npz`` every ``rl_checkpoint`` updates (weights
only; Adam restarts on resume) with ``state.json`` (config, progress, curves).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime import music_vocab as V
from trainer import music_data

KIND = "music"
DATA = ("Essen folk songs (European collections) and Bach chorale soprano parts (chosen by "
        "part name) from music21's bundled corpus (offline); held-out split by tune group.")


@dataclass
class Config:
    seed: int = 0
    # data
    folk_files: int | None = None          # None: every European Essen file
    folk_per_file: int | None = None
    chorales: int | None = None
    heldout_fraction: float = 0.15
    max_len: int = 160                      # events per training tune (longer ones truncated)
    # prior (GRU) and maximum likelihood
    hidden: int = 192
    token_dim: int = 48
    context_dim: int = 24
    dropout: float = 0.1                    # on the embedded input, training only
    batch: int = 48
    epochs: int = 12
    lr: float = 3e-3
    # RL tuning
    rl_updates: int = 400
    rl_batch: int = 96
    rl_lr: float = 6e-4
    kl_coef: float = 1.0
    kl_final: float | None = 0.2            # None: constant KL; else geometric decay to this
    rl_checkpoint: int = 50
    rl_top_p: float = 0.95                  # nucleus of the RL rollouts: the runtime default
    rl_per_note_rates: bool = True          # per-note penalties as rates (trainer.music_rewards)
    rl_openings: bool = True                # stats/discriminator on training tunes' openings
    rl_disc_holdout: bool = True            # discriminator scores batches it was not fitted on
    rl_frames: bool = True                  # ... on training tunes' openings AND closings, by
                                            # window position (as the evaluation's judge)
    # reward weights (trainer.music_rewards); w_theory scales their sum in RL only
    w_theory: float = 1.0
    w_out_of_key: float = -1.0
    w_end_tonic: float = 4.0
    w_end_long: float = 0.0                # off: pushed held notes the tunes do not have
    w_cadence: float = 0.0                 # off: as w_end_long (phrase-end quarter notes)
    w_repeat: float = -1.0
    w_leap: float = -0.7
    w_trill: float = -0.7
    w_motif: float = 0.0                   # off: rewarded repeated (plain) bar rhythms
    w_copy_bar: float = -0.5
    w_monotone: float = -2.0
    w_stats: float = 3.0                   # match training tunes' rhythm/range (music_stats)
    w_disc: float = 2.0                    # discriminator on training tunes (music_disc)
    w_features: float = 2.0                # match training tunes' window-feature means
    rl_gap_decay: float = 0.0              # moving average of the batch means (music_stats)
    rl_emphasis: tuple = (                 # (statistic, factor) pairs: music_stats.NAMES, or
        ("final note", 4), ("mean pitch", 2), ("quarters", 2),   # POSITION_NAMES for the
        ("closing: duration 4", 3), ("closing: pitch class 0", 3),  # feature matching: the
        ("closing: mean pitch", 2), ("closing: longest event", 3))  # closings pulled harder
    # evaluation
    eval_bars: int = 8
    eval_melodies: int = 600
    auc_seed: int = 0


PROFILES = {
    "quick": Config(folk_files=2, folk_per_file=30, chorales=12, hidden=32, token_dim=8,
                    context_dim=8, batch=16, epochs=2, rl_updates=3, rl_batch=8,
                    rl_checkpoint=2, eval_melodies=40),
    "full": Config(),
}


def reward_weights(cfg: Config) -> dict:
    from trainer.music_rewards import PARTS

    return {k: getattr(cfg, "w_" + k) for k in PARTS}


def corpus(cfg: Config, work_dir: Path) -> list[dict]:
    """The parsed corpus; the full selection is cached in runs/music/corpus.json (shared by
    profiles), a partial one beside the work dir."""
    full = cfg.folk_files is None and cfg.folk_per_file is None and cfg.chorales is None
    cache = (Path(__file__).resolve().parent.parent / "runs" / KIND / "corpus.json" if full
             else Path(work_dir) / "corpus.json")
    return music_data.load(cache, folk_files=cfg.folk_files, folk_per_file=cfg.folk_per_file,
                           chorales=cfg.chorales)


def split(cfg: Config, work_dir: Path):
    records = corpus(cfg, work_dir)
    return music_data.split(records, cfg.heldout_fraction)


# ------------------------------------------------------------------------------ training
def _mle_part(cfg_json: dict) -> dict:
    """The config fields the prior depends on (RL, reward and evaluation fields left out)."""
    return {k: v for k, v in cfg_json.items()
            if not k.startswith(("rl_", "w_", "eval_", "kl_", "auc_"))}


def _state(cfg: Config, work_dir: Path) -> dict:
    """Progress in ``work_dir``: kept when the config is the same; when only RL, reward or
    evaluation fields changed, the prior is kept and RL restarts from it."""
    from trainer.common import load_json

    state = load_json(work_dir / "state.json")
    cfg_json = json.loads(json.dumps(asdict(cfg)))   # as saved: tuples become lists
    if state and state.get("config") != cfg_json \
            and _mle_part(state.get("config", {})) == _mle_part(cfg_json):
        state.update(config=cfg_json, rl_done=0, rl_reward=[], rl_kl=[])
    if not state or state.get("config") != cfg_json:
        state = {"config": cfg_json, "mle_done": False, "rl_done": 0, "mle_loss": [],
                 "val_nll": [], "rl_reward": [], "rl_kl": []}
    return state


def _save_weights(path: Path, model) -> None:
    import io

    from trainer.export import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, *model.get_weights())
    atomic_write_bytes(path, buf.getvalue())


def _load_weights(path: Path, model) -> None:
    with np.load(path) as z:
        model.set_weights([z[f"arr_{i}"] for i in range(len(z.files))])


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    """MLE prior then RL tuning; resumes from ``work_dir``. ``strategy`` is unused."""
    import tensorflow as tf

    from trainer.common import save_json, set_seeds
    from trainer.music_prior import build_model

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    set_seeds(cfg.seed)
    train_recs, held = split(cfg, work_dir)
    print(f"music data: {len(train_recs)} training and {len(held)} held-out melodies")
    state = _state(cfg, work_dir)
    prior = build_model(cfg.hidden, cfg.token_dim, cfg.context_dim, cfg.dropout)
    if state["mle_done"] and (work_dir / "mle.npz").exists():
        _load_weights(work_dir / "mle.npz", prior)
    else:
        _train_mle(cfg, prior, train_recs, held, state)
        _save_weights(work_dir / "mle.npz", prior)
        state["mle_done"] = True
        save_json(work_dir / "state.json", state)
    policy = build_model(cfg.hidden, cfg.token_dim, cfg.context_dim, cfg.dropout)
    policy.set_weights(prior.get_weights())
    if state["rl_done"] and (work_dir / "rl.npz").exists():
        _load_weights(work_dir / "rl.npz", policy)
    _train_rl(cfg, work_dir, policy, prior, train_recs, state)
    _save_curves(work_dir, state)
    del tf


def _train_mle(cfg: Config, model, train_recs, held, state) -> None:
    import tensorflow as tf

    from trainer.common import Progress
    from trainer.music_prior import heldout_nll, pad_batch

    seqs = [music_data.to_tokens(r) for r in train_recs]
    held_seqs = [music_data.to_tokens(r) for r in held]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][1]))
    batches = [order[i:i + cfg.batch] for i in range(0, len(order), cfg.batch)]
    total = cfg.epochs * len(batches)
    sched = tf.keras.optimizers.schedules.CosineDecay(cfg.lr, total, alpha=0.05)
    opt = tf.keras.optimizers.Adam(sched, clipnorm=1.0)

    @tf.function(reduce_retracing=True)
    def step(x, c, y, m):
        with tf.GradientTape() as tape:
            logits = model(x, c, training=True)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
            loss = tf.reduce_sum(ce * m) / tf.reduce_sum(m)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(cfg.seed)
    with Progress(total, "music prior (MLE)", unit="batch") as bar:
        for epoch in range(cfg.epochs):
            losses = []
            for bi in rng.permutation(len(batches)):
                x, c, y, m = pad_batch([seqs[i] for i in batches[bi]], cfg.max_len)
                losses.append(float(step(x, c, y, m)))
                bar.update(1, loss=losses[-1])
            val = heldout_nll(model, held_seqs, cfg.max_len) if held_seqs else float("nan")
            state["mle_loss"].append(float(np.mean(losses)))
            state["val_nll"].append(val)
            bar.write(f"epoch {epoch + 1}/{cfg.epochs}: train {np.mean(losses):.3f} "
                      f"held-out {val:.3f} nats/event")


def _train_rl(cfg: Config, work_dir: Path, policy, prior, train_recs, state) -> None:
    import tensorflow as tf

    from trainer.common import Progress, save_json
    from trainer.music_prior import step_weights
    from trainer.music_rewards import batch_rewards
    from trainer.music_rl import draw_settings, kl_at, make_rl_step, pad_rollouts, rollouts
    from trainer.music_disc import Discriminator
    from trainer.music_stats import (GapTracker, frame, opening_targets, position_stats,
                                     stats_rewards, targets, window_stats)

    weights = reward_weights(cfg)
    if cfg.rl_frames:
        target = opening_targets(train_recs, cut=frame)
        feats = opening_targets(train_recs, stats=position_stats, cut=frame)
    elif cfg.rl_openings:
        target = opening_targets(train_recs)
        feats = opening_targets(train_recs, stats=window_stats)
    else:
        target, feats = targets(train_recs), targets(train_recs, stats=window_stats)
    trackers = [GapTracker(cfg.rl_gap_decay) for _ in range(2)]
    scales = _emphasis(cfg)
    disc = Discriminator(train_recs, cfg.seed, openings=cfg.rl_openings, frames=cfg.rl_frames,
                         holdout=cfg.rl_disc_holdout) if cfg.w_disc else None
    opt = tf.keras.optimizers.Adam(cfg.rl_lr)
    update = make_rl_step(policy, prior, opt)
    start = state["rl_done"]
    with Progress(cfg.rl_updates, "music RL tuning", unit="update", initial=start) as bar:
        for it in range(start, cfg.rl_updates):
            rng = np.random.default_rng([cfg.seed, 7, it])
            settings = draw_settings(train_recs, cfg.rl_batch, rng)
            rolls = rollouts(step_weights(policy), settings, rng, top_p=cfg.rl_top_p)
            rewards = batch_rewards(rolls, weights, cfg.rl_per_note_rates)[0]
            total = cfg.w_theory * rewards \
                + stats_rewards(rolls, target, cfg.w_stats, trackers[0], scales[0])[0] \
                + stats_rewards(rolls, feats, cfg.w_features, trackers[1], scales[1])[0]
            if disc is not None:
                total = total + cfg.w_disc * disc.rewards(rolls)
            adv = (total - total.mean()) / (total.std() + 1e-6)
            arrays = pad_rollouts(rolls)
            beta = kl_at(it, cfg.rl_updates, cfg.kl_coef, cfg.kl_final)
            _, kl = update(*[tf.constant(a) for a in arrays], tf.constant(adv, tf.float32),
                           tf.constant(beta, tf.float32))
            state["rl_reward"].append(float(rewards.mean()))
            state["rl_kl"].append(float(kl))
            bar.update(1, reward=rewards.mean(), kl=float(kl))
            done = it + 1
            if done % cfg.rl_checkpoint == 0 or done == cfg.rl_updates:
                _save_weights(work_dir / "rl.npz", policy)
                state["rl_done"] = done
                save_json(work_dir / "state.json", state)
    if cfg.rl_updates == 0:
        _save_weights(work_dir / "rl.npz", policy)


def _emphasis(cfg: Config) -> tuple:
    """(scale of music_stats.NAMES, scale of the feature matching's statistics, or None
    each): ``cfg.rl_emphasis`` split by name."""
    from trainer.music_stats import NAMES, POSITION_NAMES, emphasis

    pairs = [tuple(p) for p in cfg.rl_emphasis]
    known = set(NAMES) | (set(POSITION_NAMES) if cfg.rl_frames else set())
    bad = [n for n, _ in pairs if n not in known]
    if bad:
        raise ValueError(f"rl_emphasis: unknown statistics {bad}")
    own = [p for p in pairs if p[0] in NAMES]
    pos = [p for p in pairs if p[0] not in NAMES]
    return (emphasis(NAMES, own) if own else None,
            emphasis(POSITION_NAMES, pos) if pos else None)


def _save_curves(work_dir: Path, state: dict) -> None:
    from trainer.common import save_learning_curve

    save_learning_curve(work_dir / "learning_curve.png",
                        {"MLE train nats/event": state["mle_loss"],
                         "held-out nats/event": state["val_nll"],
                         "RL theory reward": state["rl_reward"], "RL KL to prior": state["rl_kl"]},
                        xlabel="epoch / update", title="music: prior (MLE) then RL tuning")


def load_models(cfg: Config, work_dir: Path):
    """(prior, policy) Keras models with the saved weights."""
    from trainer.music_prior import build_model

    prior = build_model(cfg.hidden, cfg.token_dim, cfg.context_dim, cfg.dropout)
    _load_weights(Path(work_dir) / "mle.npz", prior)
    policy = build_model(cfg.hidden, cfg.token_dim, cfg.context_dim, cfg.dropout)
    _load_weights(Path(work_dir) / "rl.npz", policy)
    return prior, policy


# ------------------------------------------------------------------------------ export
def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    import tensorflow as tf

    from trainer import export as tx
    from trainer.music_prior import export_weights, step_weights, tf_export_step

    _, policy = load_models(cfg, work_dir)
    _check_step(policy, step_weights(policy))
    arrays = export_weights(policy)

    def step(token, context, state):
        w = [tf.constant(a) for a in arrays]
        logits, new_state = tf_export_step(w, token, context, state)
        return tf.identity(logits, name="logits"), tf.identity(new_state, name="state_out")

    h = cfg.hidden
    signature = [tf.TensorSpec([None], tf.int64, name="token"),
                 tf.TensorSpec([None], tf.int64, name="context"),
                 tf.TensorSpec([None, h], tf.float32, name="state")]
    rng = np.random.default_rng(cfg.seed)
    samples = [[rng.integers(0, V.N_TOKEN, n).astype(np.int64),
                rng.integers(0, V.N_CONTEXT, n).astype(np.int64),
                rng.uniform(-1, 1, (n, h)).astype(np.float32)] for n in (1, 5, 64)]
    step_entry = tx.export_tf_function(step, signature, kind=KIND, role="step", out_dir=out_dir,
                                       sample_inputs=samples)
    vocab_entry = tx.write_json(vocab_json(), kind=KIND, role="vocab", out_dir=out_dir)
    notes = ("step: (token int64 [B], context int64 [B], state float32 [B,H]) -> (logits "
             "float32 [B,280], state); runtime.music samples events with masks and transposes "
             "from C major / A minor. Weights: the MLE prior tuned by REINFORCE on music-theory "
             "rewards with a KL anchor to the prior (RL Tuner).")
    tx.write_entry(out_dir, KIND, {"step": step_entry, "vocab": vocab_entry}, config=asdict(cfg),
                   notes=notes)


def vocab_json() -> dict:
    return {"pitch_low": V.PITCH_LOW, "pitch_high": V.PITCH_HIGH, "durations": list(V.DURATIONS),
            "meters": V.METERS, "styles": list(V.STYLES), "n_context": V.N_CONTEXT,
            "n_event": V.N_EVENT, "n_token": V.N_TOKEN}


def _check_step(model, weights) -> None:
    """The numpy/ONNX step must reproduce Keras' GRU layer (guards the gate layout)."""
    from trainer.music_prior import numpy_step

    rng = np.random.default_rng(0)
    tok = rng.integers(0, V.N_TOKEN, (3, 10)).astype(np.int32)
    ctx = rng.integers(0, V.N_CONTEXT, (3, 10)).astype(np.int32)
    want = np.asarray(model(tok, ctx))
    state = np.zeros((3, model.gru.units), np.float32)
    got = []
    for t in range(10):
        logits, state = numpy_step(weights, tok[:, t], ctx[:, t], state)
        got.append(logits)
    diff = float(np.max(np.abs(np.stack(got, 1) - want)))
    if diff > 1e-3:
        raise RuntimeError(f"the GRU step differs from Keras' GRU layer by {diff}")
    from trainer.music_prior import export_weights, tf_export_step

    state = np.zeros((3, model.gru.units), np.float32)
    shipped, folded = tf_export_step(export_weights(model), tok[:, 0], ctx[:, 0], state)[0], \
        numpy_step(weights, tok[:, 0], ctx[:, 0], state)[0]
    diff = float(np.max(np.abs(np.asarray(shipped) - folded)))
    if diff > 1e-3:
        raise RuntimeError(f"the shipped (unfolded) step differs from the folded one by {diff}")


def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    from trainer.music_report import evaluate as _evaluate

    return _evaluate(cfg, work_dir, models_dir)
