"""Tests of the ``text`` kind: sampling, decoding controls, subwords, scoring, baselines,
the judge, options, training."""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest

import runtime
from runtime import text as rt
from runtime import text_codec, text_sampling
from runtime.text_bpe import BPE, learn_merges, pieces
from tests.conftest import require_kind

WORD = re.compile(r"[A-Za-z]+")
PROSE = ("And God said, Let there be light: and there was light. And God saw the light, that "
         "it was good: and God divided the light from the darkness. And God called the light "
         "Day, and the darkness he called Night. And the evening and the morning were the "
         "first day.\n")


@pytest.fixture(scope="module")
def models(exported_dir):
    require_kind("text")
    return exported_dir


@pytest.fixture(scope="module")
def model(models):
    with runtime.load("text", models_dir=models) as m:
        yield m


def gen(models, **kw):
    kw.setdefault("max_tokens", 40)
    return runtime.generate("text", models_dir=models, **kw)


# ---------------------------------------------------------------------------- pure sampling
def test_sample_next_top_k_only_draws_the_k_best():
    logits = np.log(np.array([0.05, 0.4, 0.3, 0.2, 0.05], np.float32))
    rng = np.random.default_rng(0)
    draws = {text_sampling.sample_next(logits.copy(), rng, 1.0, 2, 1.0) for _ in range(300)}
    assert draws == {1, 2}


def test_sample_next_top_p_keeps_the_smallest_nucleus():
    logits = np.log(np.array([0.5, 0.3, 0.2], np.float32))
    rng = np.random.default_rng(1)
    draws = Counter(text_sampling.sample_next(logits.copy(), rng, 1.0, 0, 0.7) for _ in range(2000))
    assert set(draws) == {0, 1}                      # 0.5 < 0.7 <= 0.5 + 0.3
    assert abs(draws[0] / 2000 - 0.5 / 0.8) < 0.05   # renormalised within the nucleus


def test_sample_next_follows_the_tempered_softmax():
    logits = np.array([0.0, 1.0, 2.0, -np.inf], np.float32)
    rng = np.random.default_rng(2)
    n, t = 6000, 0.5
    counts = np.bincount([text_sampling.sample_next(logits, rng, t, 0, 1.0) for _ in range(n)], minlength=4)
    p = np.exp(logits[:3] / t) / np.exp(logits[:3] / t).sum()
    assert counts[3] == 0                            # -inf (UNK) is never drawn
    assert np.all(np.abs(counts[:3] / n - p) < 0.03)


def test_sample_next_greedy_and_top_k_1_ignore_rng():
    logits = np.array([0.1, 3.0, 2.9], np.float32)
    assert text_sampling.sample_next(logits, None, 0.0, 0, 1.0) == 1
    assert text_sampling.sample_next(logits, None, 1.0, 1, 1.0) == 1


# ---------------------------------------------------------------------------- codec
def test_codec_maps_unseen_characters():
    codec = text_codec.Codec(["\ufffd", "a", "e", "c", "f", "i", '"', "'", "-", ".", " ", "\n"], unk=0)
    assert codec.decode(codec.encode("cafe")) == "cafe"
    assert list(codec.encode("é")) == list(codec.encode("e"))          # NFKD, accent dropped
    assert list(codec.encode("“a”")) == list(codec.encode('"a"'))      # typographic quotes
    assert list(codec.encode("…")) == list(codec.encode("..."))        # expands to 3 ids
    assert list(codec.encode("ﬁ")) == list(codec.encode("fi"))         # compatibility ligature
    assert list(codec.encode("☃日")) == [0, 0]                          # nothing close: UNK
    assert list(codec.encode("a\r\n")) == list(codec.encode("a\n"))    # CR dropped
    assert codec.encode("").dtype == np.int64


# ---------------------------------------------------------------------------- controls
def test_no_repeat_ngram_bans_the_completing_token():
    h = text_sampling.History(ngram=2, penalty=1.0)
    for t in (1, 2, 3, 1):
        h.add(t)
    row = h.adjust(np.zeros(5, np.float32))
    assert row[2] == -np.inf                          # "1 2" already occurred
    assert np.isfinite(row[[0, 1, 3, 4]]).all()
    only = np.full(5, -np.inf, np.float32)
    only[2] = 0.0                                     # banning every token lifts the ban
    assert h.adjust(only)[2] == 0.0


def test_repetition_penalty_shrinks_seen_logits():
    h = text_sampling.History(ngram=0, penalty=2.0)
    h.add(0)
    h.add(1)
    row = h.adjust(np.array([4.0, -1.0, 4.0], np.float32))
    assert row.tolist() == [2.0, -2.0, 4.0]


def test_stop_scanner_holds_back_possible_stop_prefixes():
    s = text_sampling.StopScanner(["END"])
    assert s.push("abcE") == "abc"                   # "E" could start "END"
    assert s.push("N") == ""
    assert s.push("Dxyz") == "" and s.stopped and s.text == "abc"
    s = text_sampling.StopScanner(["END"])
    assert s.push("abE") + s.push("x") + s.flush() == "abEx" and not s.stopped


# ---------------------------------------------------------------------------- subwords
def test_bpe_round_trips_and_merges_frequent_words():
    chars = ["\ufffd"] + sorted(set(PROSE))
    merges = learn_merges(PROSE * 3, chars, 40)
    bpe = BPE(chars, merges)
    ids = bpe.encode(PROSE)
    assert bpe.decode(ids) == PROSE
    assert len(ids) < len(PROSE) / 2                  # subwords are longer than characters
    assert bpe.encode(" light") == [bpe.tokens.index(" light")]
    assert learn_merges(PROSE * 3, chars, 40) == merges   # deterministic
    assert bpe.decode(bpe.encode("zq☃")) == "\ufffd\ufffd\ufffd"   # unknown -> UNK
    assert "".join(pieces("Hi, you\n")) == "Hi, you\n"


# ---------------------------------------------------------------------------- shipped model
def test_same_seed_same_text_and_seeds_differ(models):
    a = gen(models, prompt="And ", seed=11)
    assert isinstance(a, rt.Text) and len(a.tokens) == 40 and a.finish_reason == "length"
    assert gen(models, prompt="And ", seed=11) == a
    others = {gen(models, prompt="And ", seed=s) for s in (12, 13, 14)}
    assert a not in others and len(others) > 1


def test_greedy_ignores_seed(models):
    a = gen(models, prompt="And the ", temperature=0, seed=1)
    assert gen(models, prompt="And the ", temperature=0, seed=2) == a
    assert gen(models, prompt="And the ", temperature=0, seed=2, top_k=5, top_p=0.5) == a
    assert gen(models, prompt="And the ", top_k=1, temperature=1.5, seed=4) == a
    assert gen(models, prompt="And the ", top_p=1e-6, temperature=1.0, seed=5) == a


def test_max_tokens_counts_tokens(models):
    assert gen(models, max_tokens=0, seed=0) == ""
    one = gen(models, max_tokens=1, seed=0)
    assert len(one.tokens) == 1 and len(one) >= 1
    long = gen(models, max_tokens=300, seed=0)
    assert len(long.tokens) == 300 and len(long) >= 300


def test_streaming_equals_generate(model):
    for kw in ({}, {"temperature": 0}, {"top_k": 5, "top_p": 0.9}, {"stop": ["\n", "the"]},
               {"no_repeat_ngram_size": 2, "repetition_penalty": 1.3}):
        full = model.generate(prompt="And ", seed=21, max_tokens=60, **kw)
        stream = model.stream(prompt="And ", seed=21, max_tokens=60, **kw)
        pieces_ = list(stream)
        assert all(isinstance(p, str) and p for p in pieces_)
        assert "".join(pieces_) == full


def test_stop_strings_end_generation(model):
    full = model.generate(prompt="And ", seed=3, max_tokens=120)
    stop = full[100:103]
    got = model.generate(prompt="And ", seed=3, max_tokens=120, stop=[stop])
    assert got == full[: full.find(stop)] and got.finish_reason == "stop"
    other = full[60:64]
    first = min(full.find(other), full.find(stop))
    assert model.generate(prompt="And ", seed=3, max_tokens=120,
                          stop=[other, stop, "\x00never"]) == full[:first]
    assert model.generate(prompt="And ", seed=3, max_tokens=120, stop=["\x00never"]) == full
    assert model.generate(prompt="And ", seed=3, max_tokens=120, stop=[full[:2]]) == ""


def test_greedy_loops_are_stopped_by_the_controls(model):
    def worst_repeat(text):
        w = WORD.findall(text.lower())
        tri = [tuple(w[i:i + 3]) for i in range(len(w) - 2)]
        return 1 - len(set(tri)) / max(1, len(tri))

    greedy = model.generate(prompt="And ", temperature=0, max_tokens=300)
    banned = model.generate(prompt="And ", temperature=0, max_tokens=300, no_repeat_ngram_size=3)
    ids = banned.tokens
    grams = [tuple(ids[i:i + 3]) for i in range(len(ids) - 2)]
    assert len(grams) == len(set(grams))             # no token trigram twice
    assert worst_repeat(banned) <= worst_repeat(greedy)
    pen = model.generate(prompt="And ", temperature=0, max_tokens=300, repetition_penalty=1.5)
    assert pen != greedy


def test_unknown_characters_in_prompt(models):
    weird = "naïve café “quoted” — ☃ 日本語 \t tab\r\n\x00\U0001F600 ﬁn"
    out = gen(models, prompt=weird, seed=1)
    assert "\ufffd" not in out                       # UNK is never generated
    assert gen(models, prompt=weird, seed=1) == out
    assert gen(models, prompt="café ", temperature=0) == gen(models, prompt="cafe ", temperature=0)


def test_long_prompt_keeps_the_last_characters(models):
    long = ("The quick brown fox jumps over the lazy dog. " * 2000)[:90_000]
    out = gen(models, prompt=long, temperature=0, max_tokens=20)
    assert out == gen(models, prompt=long[-text_codec.PROMPT_CONTEXT:], temperature=0,
                      max_tokens=20)
    with pytest.raises(ValueError, match="prompt"):
        gen(models, prompt="x" * (rt.MAX_PROMPT_CHARS + 1))


@pytest.mark.parametrize("bad, name", [
    ({"temperature": -0.1}, "temperature"), ({"temperature": "hot"}, "temperature"),
    ({"temperature": math.nan}, "temperature"), ({"top_k": -1}, "top_k"),
    ({"top_k": 2.0}, "top_k"), ({"top_k": True}, "top_k"), ({"top_p": 0}, "top_p"),
    ({"top_p": 1.5}, "top_p"), ({"max_tokens": -1}, "max_tokens"),
    ({"max_tokens": rt.MAX_TOKENS + 1}, "max_tokens"), ({"max_tokens": "10"}, "max_tokens"),
    ({"stop": "."}, "stop"), ({"stop": [""]}, "stop"), ({"stop": [3]}, "stop"),
    ({"stop": ["a"] * (rt.MAX_STOP + 1)}, "stop"), ({"stop": ["x" * 65]}, "stop"),
    ({"prompt": 42}, "prompt"), ({"prompt": None}, "prompt"),
    ({"repetition_penalty": 0.5}, "repetition_penalty"),
    ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
    ({"temprature": 1.0}, "temprature"),
])
def test_bad_options_raise_value_error(model, bad, name):
    with pytest.raises(ValueError, match=name):
        model.generate(seed=0, **bad)
    with pytest.raises(ValueError, match=name):      # raised at the call, not at first next()
        model.stream(seed=0, **bad)


def test_int8_variant(models):
    a = gen(models, prompt="And ", precision="int8", seed=9)
    assert len(a.tokens) == 40
    assert gen(models, prompt="And ", precision="int8", seed=9) == a
    info = runtime.info("text", models)
    assert info["files"]["step_int8"]["bytes"] < info["files"]["step"]["bytes"] / 2


def test_bits_per_character_prefers_real_text(model):
    real = model.bits_per_character(PROSE)
    rng = np.random.default_rng(0)
    shuffled = "".join(rng.permutation(list(PROSE)))
    assert 0 < real < model.bits_per_character(shuffled) - 1.0
    with pytest.raises(ValueError, match="text"):
        model.bits_per_character("")


def test_text_save_writes_the_text(model, tmp_path):
    t = model.generate(prompt="And ", seed=2, max_tokens=30)
    line = t.save(tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == t
    assert "\n" not in line and str(len(t.tokens)) in line and rt.Text.suffix == ".txt"


# ---------------------------------------------------------------------------- baselines, judge
def test_kneser_ney_is_a_distribution_and_learns():
    from trainer.text_baselines import KneserNey, compressor_bpc, kneser_ney_bpc

    text = np.array([ord(c) % 13 for c in PROSE * 4], np.int64)
    model = KneserNey(text[:600], 4, 13)
    for hist in (text[:50], text[100:107], np.array([12, 12, 12], np.int64)):
        total = sum(2.0 ** -model.bits(hist, np.array([w])) for w in range(13))
        assert abs(total - 1.0) < 1e-9
    uniform = math.log2(13)
    assert kneser_ney_bpc(text[:600], text[600:], 4, 13) < 0.6 * uniform
    assert compressor_bpc(PROSE * 5, PROSE) < 0.5 * compressor_bpc("x" * 500, PROSE)


def test_roc_auc_and_judge():
    from trainer.text_eval import judge_auc, roc_auc

    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    rng = np.random.default_rng(1)
    words = PROSE.split()
    real = [" ".join(rng.choice(words, 30)) for _ in range(80)]
    same = [" ".join(rng.choice(words, 30)) for _ in range(80)]
    other = [" ".join(rng.choice(["zq", "xv", "light", "wk"], 30)) for _ in range(80)]
    assert judge_auc(real, other, 0) > 0.95
    assert 0.3 < judge_auc(real, same, 0) < 0.7


def test_judge_features_sparse_products_match_dense():
    from trainer.text_eval import HASH_DIM, _features

    x = _features([PROSE[:120], PROSE[50:300], "", PROSE[200:260]])
    dense = np.zeros((x.n_rows, HASH_DIM))
    np.add.at(dense, (x.rows, x.cols), x.vals)
    np.testing.assert_allclose(np.linalg.norm(dense, axis=1), [1, 1, 0, 1], atol=1e-9)
    rng = np.random.default_rng(0)
    w, g = rng.normal(size=HASH_DIM), rng.normal(size=x.n_rows)
    np.testing.assert_allclose(x.dot(w), dense @ w, atol=1e-12)
    np.testing.assert_allclose(x.tdot(g), dense.T @ g, atol=1e-12)
    keep = np.array([True, False, True, True])
    np.testing.assert_allclose(x.take(keep).dot(w), dense[keep] @ w, atol=1e-12)


def test_word_stats_count_real_words_and_repeats():
    from trainer.text_data import word_stats

    words = frozenset({"the", "light", "was", "good", "and"})
    s = word_stats(["x "], [" the light was good and the light was good the "], words)
    assert s["real_word_share"] == 1.0 and s["repeated_trigrams"] > 0.2
    junk = word_stats(["x "], [" thx lihgt wsa godo "], words)
    assert junk["real_word_share"] < 0.5 and junk["repeated_trigrams"] == 0.0


# ---------------------------------------------------------------------------- training
@pytest.mark.tf
@pytest.mark.slow
def test_quick_train_export_generate(tmp_path):
    pytest.importorskip("tensorflow")
    import dataclasses
    import json

    import pydoc_data.topics as topics

    from trainer import text as tt

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(topics.topics[k] for k in sorted(topics.topics)),
                      encoding="utf-8")
    cfg = dataclasses.replace(tt.PROFILES["quick"], corpus=str(corpus))
    work, out = tmp_path / "work", tmp_path / "out"
    tt.train(cfg, work)
    assert (work / "learning_curve.png").stat().st_size > 1000
    tt.export(cfg, work, out)
    metrics = tt.evaluate(cfg, work, out)
    bpc = metrics["heldout_bits_per_char"]
    assert bpc["mle"] < bpc["baseline_unigram"]                 # it learned something
    assert abs(bpc["onnx_fp32"] - bpc["tuned"]) < 0.01          # export reproduces TF
    assert abs(bpc["onnx_int8"] - bpc["onnx_fp32"]) < 0.2
    assert 0.0 <= metrics["judge_roc_auc"]["mle"] <= 1.0
    json.dumps(metrics)
    with runtime.load("text", models_dir=out) as m:
        a = m.generate(prompt="The ", seed=5, max_tokens=30)
        assert "".join(m.stream(prompt="The ", seed=5, max_tokens=30)) == a
        assert abs(m.bits_per_character(a) - m.bits_per_character(a)) == 0.0
    tt.train(cfg, work)                                          # resumes: nothing to do
    assert sorted(p.name for p in (work / "checkpoints").glob("ckpt-*.index"))[-1] == \
        f"ckpt-{cfg.mle_steps + cfg.rl_steps}.index"
