"""Learned-reward tuning of the text model (SeqGAN-style, with a KL anchor)."""
from __future__ import annotations

import numpy as np


def build_discriminator(n_tokens: int, hidden: int):
    """Real text vs samples, read left to right: Embedding(64) -> GRU -> Dense(1) at every
    position, so logit ``t`` judges the first ``t + 1`` tokens (per-token credit, as in
    ScratchGAN, instead of one verdict for the whole sequence)."""
    import keras

    model = keras.Sequential([keras.layers.Embedding(n_tokens, 64),
                              keras.layers.GRU(hidden, return_sequences=True),
                              keras.layers.Dense(1)])
    model(np.zeros((1, 2), np.int32))
    return model


def _windows(ids: np.ndarray, n: int, length: int, start_id: int, rng) -> np.ndarray:
    """``n`` windows of ``length`` real tokens at random offsets, the start token first."""
    starts = rng.integers(0, len(ids) - length, size=n)
    out = np.empty((n, length), np.int32)
    out[:, 0] = start_id
    for row, s in zip(out, starts):
        row[1:] = ids[s: s + length - 1]
    return out


class Rollouts:
    """Policy samples and real text of the same shape, drawn from the training tokens."""

    def __init__(self, cfg, data, model):
        from trainer.text_lm import make_sampler

        self.cfg, self.data = cfg, data
        self.sampler = make_sampler(model, data.n_tokens, data.vocab["unk"])

    def draw(self, step: int, salt: int = 0):
        """(prefix + sample [B, P + L], real continuation [B, L]) for one step."""
        import tensorflow as tf

        cfg, data = self.cfg, self.data
        rng = np.random.default_rng((cfg.seed, salt, step))
        prefix = _windows(data.train_tokens, cfg.rl_batch, cfg.rl_prefix, data.start_id, rng)
        gen = self.sampler(tf.constant(prefix), tf.constant(cfg.rl_len),
                           tf.constant(cfg.rl_temperature),
                           tf.constant([cfg.seed + salt, step], tf.int32)).numpy()
        starts = rng.integers(0, len(data.train_tokens) - cfg.rl_len, size=cfg.rl_batch)
        real = np.stack([data.train_tokens[s: s + cfg.rl_len] for s in starts]).astype(np.int32)
        return np.concatenate([prefix, gen], 1), real


def make_disc_step(disc, opt):
    """tf.function: one logistic-loss step at every position, real continuations = 1, samples
    = 0; returns the samples' per-position logits before the step (the reward, [B, L]) and the
    accuracy of the verdict on whole sequences (last position)."""
    import tensorflow as tf

    @tf.function(autograph=False)
    def step(fake, real):
        x = tf.concat([real, fake], 0)
        y = tf.concat([tf.ones(tf.shape(real)[0]), tf.zeros(tf.shape(fake)[0])], 0)
        with tf.GradientTape() as tape:
            logit = disc(x, training=True)[:, :, 0]
            labels = tf.broadcast_to(y[:, None], tf.shape(logit))
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logit))
        grads = tape.gradient(loss, disc.trainable_variables)
        opt.apply_gradients(zip(grads, disc.trainable_variables))
        acc = tf.reduce_mean(tf.cast(tf.equal(logit[:, -1] > 0, y > 0.5), tf.float32))
        return logit[tf.shape(real)[0]:], acc

    return step


def advantages(logits: np.ndarray, discount: float) -> np.ndarray:
    """Per-token advantages from per-position discriminator logits [B, L]: the discounted
    return of the logits from each position on, minus its batch mean at that position,
    scaled by the batch's standard deviation."""
    ret = np.zeros_like(logits, dtype=np.float64)
    acc = np.zeros(logits.shape[0])
    for t in range(logits.shape[1] - 1, -1, -1):
        acc = logits[:, t] + discount * acc
        ret[:, t] = acc
    adv = ret - ret.mean(0, keepdims=True)
    return (adv / (adv.std() + 1e-6)).astype(np.float32)


def make_policy_step(model, reference, opt, cfg):
    """tf.function: REINFORCE with per-token advantages [B, L] on the sampled tokens +
    kl_coef x KL(policy || reference)."""
    import tensorflow as tf

    variables = model.trainable_variables

    @tf.function(autograph=False)
    def step(seq, adv):
        x, y = seq[:, :-1], seq[:, 1:]
        gen = tf.cast(tf.range(tf.shape(y)[1]) >= cfg.rl_prefix - 1, tf.float32)[None, :]
        ref_logp = tf.nn.log_softmax(reference(x))
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            logp = tf.nn.log_softmax(logits)
            # the policy that samples is the tempered one: its log-probabilities get the credit
            tempered = tf.nn.log_softmax(logits / cfg.rl_temperature)
            chosen = tf.gather(tempered, y, batch_dims=2)[:, cfg.rl_prefix - 1:]
            pg = -tf.reduce_sum(adv * chosen, 1) / cfg.rl_len
            kl = tf.reduce_sum(tf.reduce_sum(tf.exp(logp) * (logp - ref_logp), -1) * gen,
                               1) / cfg.rl_len
            loss = tf.reduce_mean(pg + cfg.kl_coef * kl)
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, cfg.clip_norm)
        opt.apply_gradients(zip(grads, variables))
        return tf.reduce_mean(kl)

    return step


def tune(cfg, data, obj, start: int, history: dict, work_dir) -> None:
    """Steps ``start - mle_steps`` .. ``rl_steps`` of learned-reward tuning (resumable)."""
    import tensorflow as tf

    from trainer import common
    from trainer.text_lm import val_bits_per_char

    rollouts = Rollouts(cfg, data, obj.model)
    disc_step = make_disc_step(obj.disc, obj.disc_opt)
    policy_step = make_policy_step(obj.model, obj.reference, obj.rl_opt, cfg)
    total = cfg.mle_steps + cfg.rl_steps
    if start == cfg.mle_steps:                      # fresh: the discriminator learns first
        with common.Progress(cfg.disc_pretrain, "text discriminator", unit="step") as bar:
            for i in range(cfg.disc_pretrain):
                seq, real = rollouts.draw(i, salt=1)
                _, acc = disc_step(tf.constant(seq[:, cfg.rl_prefix:]), tf.constant(real))
                bar.update(1, acc=float(acc))
        history["disc_pretrain_acc"] = [(cfg.mle_steps, float(acc))]
    with common.Progress(total, "text tuning", unit="step", initial=start) as bar:
        for step in range(start, total):
            seq, real = rollouts.draw(step)
            logit, acc = disc_step(tf.constant(seq[:, cfg.rl_prefix:]), tf.constant(real))
            reward = logit.numpy()
            adv = advantages(reward, cfg.rl_discount)
            kl = float(policy_step(tf.constant(seq), tf.constant(adv)))
            history["reward"].append((step, float(reward.mean())))
            history["kl"].append((step, kl))
            history["disc_acc"].append((step, float(acc)))
            if (step + 1 - cfg.mle_steps) % cfg.rl_val_every == 0 or step + 1 == total:
                v = val_bits_per_char(obj.model, data.val_tokens, data.start_id, cfg.eval_chunks,
                                      data.token_lengths)
                history["rl_val_bpc"].append((step, v))
                bar.write(f"step {step + 1}: reward {reward.mean():.3f} disc acc {float(acc):.2f}"
                          f" kl {kl:.4f} val bpc {v:.3f} | "
                          f"{data.decode(seq[0, cfg.rl_prefix:])[:80]!r}")
            bar.update(1, reward=float(reward.mean()), kl=kl, acc=float(acc))
            if (step + 1) % cfg.ckpt_every == 0 or step + 1 == total:
                obj.ckpt.save(step + 1)
                common.save_json(work_dir / "history.json", history)
