"""Melodies: tabular Q-learning (fastcore, C speed) with music-theory rewards in the spirit of
Magenta's RL Tuner, plus a style prior from Bach chorale soprano lines (music21's corpus).

Environment: ``fastcore.melody_env.MelodyEnv`` (its docstring lists the state encoding and every
reward term). In short: one episode composes a C major melody of 1..8 bars (8 steps per bar) over
the 25 pitches MIDI 60..84; state = (position in the 2-bar phrase or "final step", previous
pitch, previous interval bucket incl. repeat count) = 5304 states; rewards for notes in key,
the tonic on phrase starts/ends and on the final note, stepwise motion, penalties for large
leaps, excessive repeats and trills, resolution of leaps larger than a fifth in the opposite
direction, motifs (bars with >= 3 distinct pitches) and repeated motifs, and
``style_weight * (log P_bach(pitch | previous pitch) + log 25)``.

Style prior: a pitch bigram over the soprano parts of the major-key four-part chorales among the
first ``style_files`` Bach files of music21's corpus (key by ``analyze("key")``, transposed to C,
octave-shifted around C5, tied continuations merged; add-``style_smoothing`` smoothing; row 0 is
the first-note distribution). It is cached in ``work_dir/style_bigram.json`` and shipped as the
``style`` JSON side file (natural-log probabilities) next to the ONNX Q-table.

Evaluation (``evaluate``): ``eval_melodies`` melodies of ``eval_bars`` bars from
``runtime.generate("music", seed=i, key=MAJOR_KEYS[i % 12])`` (so transposition is tested too),
next to an untrained zero-Q agent through the same sampling rule (all pitches tie, so it plays
uniformly), the zero-Q agent acting greedily (ties -> lowest pitch: C4 repeated) and
uniformly random pitches over the same two octaves. Metrics (``melody_metrics``):
``in_key_pct`` notes in the key's scale; ``excessive_repeat_pct`` steps whose pitch equals the
three before it (4th or later equal note in a row); ``leaps_resolved_pct`` of the leaps larger
than a fifth (> 7 semitones) that are followed by a note, those whose next move goes the
opposite way by 1-4 semitones; ``end_on_tonic_pct``; ``distinct_pct`` distinct melodies;
``stepwise_pct`` moves of 1-2 semitones; ``style_loglik`` mean natural-log probability per note
under the Bach bigram (transposed back to C); ``phrase_start_tonic_pct``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer import tabular

KIND = "music"
DATA = ("Rewards from music theory (no data) plus a style prior: a pitch bigram of the soprano "
        "lines of the major-key Bach chorales in music21's bundled corpus (offline).")
MAJOR_KEYS = ("C", "G", "D", "A", "E", "B", "F#", "Db", "Ab", "Eb", "Bb", "F")
N_LAST, N_PITCH, LOW_MIDI = 26, 25, 60


@dataclass
class Config:
    seed: int = 0
    # environment (fastcore.melody_env.MelodyEnv)
    bars_min: int = 1
    bars_max: int = 8
    out_of_key: float = -1.0
    tonic_start: float = 1.0
    tonic_end: float = 1.0
    final_tonic: float = 2.0
    final_other: float = -2.0
    repeat: float = -0.2
    excess_repeat: float = -1.5
    step: float = 0.3
    skip: float = 0.1
    leap: float = -0.2
    big_leap: float = -0.8
    huge_leap: float = -1.5
    trill: float = -0.5
    resolved: float = 0.5
    unresolved: float = -1.0
    motif: float = 0.3
    repeated_motif: float = 1.0
    # style prior (Bach chorale soprano bigram)
    style_weight: float = 0.6
    style_files: int = 200
    style_smoothing: float = 0.5
    # tabular Q-learning (fastcore._core.train_q)
    episodes: int = 2_000_000
    chunks: int = 20
    alpha: float = 0.1
    gamma: float = 0.8
    epsilon: float = 0.3
    epsilon_min: float = 0.02
    # sampling (shipped to the runtime)
    temperature: float = 0.7
    margin: float = 1.5
    # evaluation
    eval_melodies: int = 1000
    eval_bars: int = 4


PROFILES = {
    "quick": Config(episodes=150_000, chunks=3, style_files=12, eval_melodies=200),
    "full": Config(),
}

REWARD_FIELDS = ("out_of_key", "tonic_start", "tonic_end", "final_tonic", "final_other",
                 "repeat", "excess_repeat", "step", "skip", "leap", "big_leap", "huge_leap",
                 "trill", "resolved", "unresolved", "motif", "repeated_motif")


# ------------------------------------------------------------------------------ style prior
def bach_bigram(max_files: int, cache: Path | None = None) -> dict:
    """Counts of the Bach soprano pitch bigram in C (see the module docstring), cached."""
    if cache is not None and Path(cache).exists():
        data = json.loads(Path(cache).read_text())
        if data.get("max_files") == max_files:
            return data
    from music21 import corpus

    counts = np.zeros((N_LAST, N_PITCH), dtype=np.int64)
    used = 0
    paths = sorted(corpus.getComposer("bach"), key=lambda p: Path(p).name)[:max_files]
    for path in paths:
        score = corpus.parse(path)
        if len(score.parts) < 4:
            continue
        key = score.analyze("key")
        if key.mode != "major":
            continue
        notes = [n.pitch.midi - key.tonic.pitchClass for n in score.parts[0].recurse().notes
                 if n.isNote and not (n.tie is not None and n.tie.type in ("continue", "stop"))]
        if len(notes) < 8:
            continue
        shift = 12 * round((72 - float(np.mean(notes))) / 12)
        prev = -1                    # -1: before the first note; None: after an out-of-range note
        for midi in notes:
            p = midi + shift - LOW_MIDI
            if not 0 <= p < N_PITCH:
                prev = None
                continue
            if prev is not None:
                counts[prev + 1, p] += 1
            prev = p
        used += 1
    data = {"max_files": max_files, "chorales": used, "transitions": int(counts.sum()),
            "counts": counts.tolist()}
    if cache is not None:
        from trainer.common import save_json

        save_json(cache, data)
    return data


def style_logp(counts, smoothing: float) -> np.ndarray:
    """Natural-log bigram probabilities (26, 25) with add-``smoothing`` smoothing."""
    c = np.asarray(counts, dtype=np.float64) + smoothing
    return np.log(c / c.sum(axis=1, keepdims=True))


# ------------------------------------------------------------------------------ training
def _env_kwargs(cfg: Config, logp: np.ndarray) -> dict:
    kw = {name: getattr(cfg, name) for name in REWARD_FIELDS}
    kw.update(bars_min=cfg.bars_min, bars_max=cfg.bars_max, style=logp + np.log(N_PITCH),
              style_weight=cfg.style_weight)
    return kw


def train(cfg: Config, work_dir: Path, *, strategy=None) -> None:
    """Q-learning in fastcore; ``strategy`` is unused (tabular, single process, C loop)."""
    from fastcore.melody_env import MelodyEnv, train_melody_agent

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    bigram = bach_bigram(cfg.style_files, work_dir / "style_bigram.json")
    print(f"style prior: {bigram['chorales']} major chorales, {bigram['transitions']} "
          f"transitions ({time.time() - t0:.1f}s)")
    logp = style_logp(bigram["counts"], cfg.style_smoothing)
    env_kwargs = _env_kwargs(cfg, logp)
    env = MelodyEnv(**env_kwargs)
    q, state = tabular.resume_or_start(cfg, work_dir, (env.n_states, env.n_actions),
                                       curves=("return",))

    def run_chunk(episodes, epsilon, decay, seed):
        return train_melody_agent(episodes, alpha=cfg.alpha, gamma=cfg.gamma, epsilon=epsilon,
                                  epsilon_decay=decay, epsilon_min=cfg.epsilon_min, seed=seed,
                                  q=q, **env_kwargs)[1]

    def record(state, stats):
        # return per step (episodes have 1..8 bars)
        state["return"] += tabular.curve_points(stats["returns"] / stats["lengths"], 25)
        return {"ret_per_step": state["return"][-1]}

    tabular.train_chunks(cfg, work_dir, KIND, q, state, run_chunk, record)
    tabular.save_curve(cfg, work_dir, state, {"reward per step": state["return"]},
                       title="melody agent: Q-learning")


def export(cfg: Config, work_dir: Path, out_dir: Path) -> None:
    from runtime import music as rt
    from trainer.common import config_dict
    from trainer.export import write_entry, write_json

    work_dir = Path(work_dir)
    q = tabular.load_q(work_dir, (rt.N_STATES, rt.N_PITCH))
    q_entry = tabular.export_q_table(q, rt.N_STATES, [0, 311, 5303], kind=KIND, out_dir=out_dir)
    env = {
        "encoding": rt.ENCODING, "n_states": rt.N_STATES, "n_actions": rt.N_PITCH,
        "low_midi": rt.LOW_MIDI, "steps_per_bar": rt.STEPS_PER_BAR, "trained_key": "C",
        "state": "(position * 26 + last + 1) * 12 + interval_bucket",
        "temperature": cfg.temperature, "margin": cfg.margin,
        "rewards": {name: getattr(cfg, name) for name in REWARD_FIELDS},
        "style_weight": cfg.style_weight,
    }
    env_entry = write_json(env, kind=KIND, role="env", out_dir=out_dir)
    bigram = bach_bigram(cfg.style_files, work_dir / "style_bigram.json")
    style = {"description": "pitch bigram of Bach chorale soprano lines in C, natural-log "
                            "probabilities; rows: 0 = first note, 1 + i = previous pitch "
                            "MIDI 60 + i; columns: pitch MIDI 60 + j",
             "chorales": bigram["chorales"], "transitions": bigram["transitions"],
             "smoothing": cfg.style_smoothing,
             "logp": np.round(style_logp(bigram["counts"], cfg.style_smoothing), 6).tolist()}
    style_entry = write_json(style, kind=KIND, role="style", out_dir=out_dir)
    write_entry(out_dir, KIND, {"q": q_entry, "env": env_entry, "style": style_entry},
                config_dict(cfg),
                notes="Tabular Q-learning (fastcore) with RL Tuner-style rewards and a Bach "
                      "soprano bigram prior; trained in C major, transposed at generation.")


# ------------------------------------------------------------------------------ evaluation
def melody_metrics(melodies: list[list[int]], keys: list[str], logp=None) -> dict:
    """The metrics of the module docstring over melodies (MIDI pitches) in the given keys."""
    from runtime import music as rt

    in_key = steps = excess = leaps = resolved = stepwise = moves = end_tonic = 0
    starts = start_tonic = 0
    ll = []
    for mel, key in zip(melodies, keys):
        scale = rt.scale_of(key)
        tonic, _ = rt.parse_key(key)
        offset = rt.key_offset(tonic)
        run = 0
        for i, p in enumerate(mel):
            steps += 1
            in_key += (p % 12) in scale
            run = run + 1 if i and p == mel[i - 1] else 1
            excess += run >= 4
            if i % 16 == 0:
                starts += 1
                start_tonic += p % 12 == tonic
            if i:
                iv = p - mel[i - 1]
                moves += 1
                stepwise += 1 <= abs(iv) <= 2
                if abs(iv) > 7 and i + 1 < len(mel):
                    leaps += 1
                    nxt = mel[i + 1] - p
                    resolved += iv * nxt < 0 and 1 <= abs(nxt) <= 4
            if logp is not None:
                prev = -1 if i == 0 else mel[i - 1] - offset - LOW_MIDI
                cur = p - offset - LOW_MIDI
                if 0 <= cur < N_PITCH and -1 <= prev < N_PITCH:
                    ll.append(logp[prev + 1][cur])
        end_tonic += bool(mel) and mel[-1] % 12 == tonic
    n = max(1, len(melodies))
    out = {
        "in_key_pct": 100.0 * in_key / max(1, steps),
        "excessive_repeat_pct": 100.0 * excess / max(1, steps),
        "leaps_over_fifth_per_melody": leaps / n,
        "leaps_resolved_pct": 100.0 * resolved / leaps if leaps else None,
        "end_on_tonic_pct": 100.0 * end_tonic / n,
        "distinct_pct": 100.0 * len({tuple(m) for m in melodies}) / n,
        "stepwise_pct": 100.0 * stepwise / max(1, moves),
        "phrase_start_tonic_pct": 100.0 * start_tonic / max(1, starts),
    }
    if logp is not None:
        out["style_loglik"] = float(np.mean(ll)) if ll else None
    return out


def evaluate(cfg: Config, work_dir: Path, models_dir: Path) -> dict:
    import runtime
    from runtime import music as rt
    from runtime import registry

    t0 = time.time()
    n, bars = cfg.eval_melodies, cfg.eval_bars
    keys = [MAJOR_KEYS[i % len(MAJOR_KEYS)] for i in range(n)]
    logp = np.asarray(registry.load_json(KIND, "style", models_dir)["logp"])
    rl = [runtime.generate(KIND, seed=i, models_dir=models_dir, bars=bars, key=keys[i])
          for i in range(n)]
    zeros = np.zeros((rt.N_STATES, rt.N_PITCH))
    _, sampling = rt.q_table(models_dir)
    zero_q = [rt.transpose(rt.rollout(zeros, bars, np.random.default_rng(i), **sampling), keys[i])
              for i in range(n)]
    # greedy on an all-zero table: argmax ties -> the lowest pitch, every step
    zero_greedy = [rt.transpose([LOW_MIDI] * (8 * bars), keys[i]) for i in range(n)]
    uniform = [rt.transpose(list(np.random.default_rng(10_000 + i).integers(
        LOW_MIDI, LOW_MIDI + N_PITCH, 8 * bars)), keys[i]) for i in range(n)]
    minor_keys = [k + "m" for k in keys]
    rl_minor = [runtime.generate(KIND, seed=i, models_dir=models_dir, bars=bars,
                                 key=minor_keys[i]) for i in range(min(n, 200))]
    metrics = {
        "melodies": n, "bars": bars, "keys": "the 12 major keys in turn",
        "rl": melody_metrics(rl, keys, logp),
        "baseline_zero_q": melody_metrics(zero_q, keys, logp),
        "baseline_zero_q_greedy": melody_metrics(zero_greedy, keys, logp),
        "baseline_uniform_random": melody_metrics(uniform, keys, logp),
        "rl_minor_keys_200": {k: v for k, v in melody_metrics(
            rl_minor, minor_keys[:len(rl_minor)]).items()
            if k in ("in_key_pct", "end_on_tonic_pct", "distinct_pct")},
        "sampling": sampling,
    }
    training = tabular.training_summary(cfg, work_dir, "first_reward_per_step",
                                        "final_reward_per_step")
    if training:
        metrics["training"] = training
    metrics["eval_seconds"] = round(time.time() - t0, 1)
    return metrics
