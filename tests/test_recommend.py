"""Tests for generate("recommend"): the simulator (numpy only), the catalogue schema and state
features and the runtime on the shipped models (the quick profile trained, exported,
evaluated and served end to end: tests/test_recommend_train.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import runtime
from runtime.recommend import Slate
from runtime.recommend_features import (featurise, item_features, parse_catalogue,
                                        read_catalogue_file, state_dim)
from trainer.recsim import RecSimConfig, RecSimEnv, make_catalogue


@pytest.fixture(scope="module")
def raw():
    return make_catalogue()


@pytest.fixture()
def env(raw):
    return RecSimEnv(raw, RecSimConfig())


# ------------------------------------------------------------------------------ simulator
def test_catalogue_is_seeded_valid_and_large_enough(raw):
    assert raw == make_catalogue() and raw != make_catalogue(seed=1)
    cat = parse_catalogue(raw)
    assert cat.n_items >= 200 and cat.n_topics == 10 and cat.embedding_dim == 8
    np.testing.assert_allclose(cat.topics.sum(1), 1.0, atol=1e-3)
    assert set(cat.topic.tolist()) == set(range(cat.n_topics))
    assert cat.quality.std() > 0.1 and 0 <= cat.popularity.min() and cat.popularity.max() <= 1
    assert np.corrcoef(cat.quality, raw["appeal"])[0, 1] < -0.5         # clickbait
    # every topic has good and poor items (no topic is all junk)
    for t in range(cat.n_topics):
        q = cat.quality[cat.topic == t]
        assert q.max() > 0.55 and q.min() < 0.5


def test_users_are_heterogeneous_and_no_topic_dominates(env):
    favs, segs, cold, revealed = np.zeros(10), [], 0, []
    for s in range(800):
        env.reset(seed=s)
        favs[env.favourites] += 1
        segs.append(env.segment)
        cold += env.cold
        if env.segment == "focused" and env.history:
            revealed.append(np.mean(env.cat.topic[env.history] == env.favourites[0]))
    share = favs / favs.sum()
    assert share.max() < 1.5 / 10 and share.min() > 0.5 / 10
    assert 0.4 < segs.count("focused") / len(segs) < 0.6
    assert 0.2 < cold / 800 < 0.3
    assert np.mean(revealed) > 0.6                   # the prior history reveals the interest


def test_reset_is_deterministic_and_segments_can_be_pinned(env):
    def rollout(seed):
        env.reset(seed=seed)
        out = []
        for a in range(60, 90):
            if env.blocked[a]:
                continue
            _, r, term, trunc, info = env.step(a)
            out.append((r, info["clicked"]))
            if term or trunc:
                break
        return out, env.interest.copy(), list(env.history)
    a, b, c = rollout(5), rollout(5), rollout(6)
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert a[0] != c[0] or a[2] != c[2]
    env.reset(seed=1, options={"segment": "focused", "favourites": [7], "cold": True})
    assert env.favourites == [7] and env.history == [] and env.interest.argmax() == 7


def test_step_api_observation_and_skips(env):
    obs, info = env.reset(seed=0, options={"cold": True})
    n = env.n_actions
    assert obs.shape == (env.obs_dim,) and obs.dtype == np.float32
    assert np.flatnonzero(obs).tolist() == [env.obs_dim - 2]          # only the trust prior
    assert info["budget"] == env.cfg.budget0
    rng = np.random.default_rng(0)
    for _ in range(25):
        slate = rng.choice(np.flatnonzero(~env.blocked), 5, replace=False)
        obs, r, term, trunc, info = env.step(slate)
        assert isinstance(r, float) and r >= 0.0 and (r > 0) == (info["clicked"] is not None)
        eng = env.engagement if env.report_feedback else None
        np.testing.assert_array_equal(obs[n:], featurise(env.history, env.cat, eng, env.skipped))
        skipped = [i for i in slate if i != info["clicked"]]
        assert obs[skipped].min() == 1.0 and env.skipped[-len(skipped):] == list(skipped)
        assert obs[env.history].min(initial=1.0) == 1.0              # consumed stay blocked
        if term or trunc:
            break


def test_choice_model_and_position_bias(env):
    env.reset(seed=1)
    p = env.choice_probs(np.array([0, 1, 2, 3, 4]))
    assert p.shape == (6,) and abs(p.sum() - 1) < 1e-12 and p.min() > 0
    best = int(np.argmax(env.scores(np.arange(env.n_actions))))
    worst = int(np.argmin(env.scores(np.arange(env.n_actions))))
    assert env.choice_probs(np.array([best]))[0] > env.choice_probs(np.array([worst]))[0]
    slate = np.array([10, 11, 12, 13, 14])
    assert env.choice_probs(slate)[0] > env.choice_probs(slate[::-1])[4]


def test_budget_refund_rewards_quality_and_sessions_end(env):
    q = env.cat.quality
    spent = {}
    for item in (int(np.argmax(q)), int(np.argmin(q))):
        env.reset(seed=3, options={"cold": True})
        env._score[:] = 50.0                                          # force the click
        _, r, *_ = env.step(item)
        spent[item] = (env.cfg.budget0 - env.budget) / r
    assert spent[int(np.argmax(q))] < spent[int(np.argmin(q))]
    env.reset(seed=4, options={"cold": True})
    env._refresh = lambda: None                                       # keep the forced scores
    env._score[:] = -50.0
    steps = 0
    while True:
        _, r, term, trunc, _ = env.step(steps)
        steps += 1
        if term or trunc:
            break
    assert term and steps == int(np.ceil(env.cfg.budget0 / env.cfg.no_click_cost))


def test_interest_drifts_toward_good_and_away_from_bad_content(env):
    q = env.cat.quality
    for item, sign in ((int(np.argmax(q)), 1), (int(np.argmin(q)), -1)):
        env.reset(seed=7, options={"cold": True})
        topic = int(env.cat.topic[item])
        before = env.interest[topic]
        env._score[:] = 50.0
        env.step(item)
        assert sign * (env.interest[topic] - before) > 0


def test_satiation_bores_and_wears_off(env):
    env.reset(seed=8, options={"segment": "focused", "favourites": [2], "cold": True})
    pool = np.flatnonzero(env.cat.topic == 2)
    fresh = env.myopic_values()[pool[-1]]
    env._score[:] = 50.0
    for i in pool[:3]:
        env.step(int(i))
    bored = env.myopic_values()[pool[-1]]
    assert bored < 0.8 * fresh
    env._score[:] = -50.0
    for j in range(4):                                                # slates without a click
        env.step(int(pool[3 + j]))
        env._score[:] = -50.0
    env._refresh()
    assert env.myopic_values()[pool[-1]] > bored


def test_clickbait_erodes_trust_clicks_and_sessions(env):
    q = env.cat.quality
    bait, good = int(np.argmin(q)), int(np.argmax(q))
    trust, left = {}, 0
    for item in (bait, good):
        env.reset(seed=9, options={"cold": True})
        before = env._no_click
        env._score[:] = 50.0
        env.step(item)
        trust[item] = env.trust
        assert (env._no_click > before) == (item == bait)             # fewer clicks after bait
    assert trust[bait] < trust[good]
    for s in range(200):
        env.reset(seed=s, options={"cold": True})
        for i in np.argsort(q)[:6]:
            env._score[:] = 50.0
            *_, term, _, info = env.step(int(i))
            if term:
                left += info["abandoned"]
                break
    assert left > 50                                                  # clickbait ends sessions


def test_long_term_value_differs_from_myopic(raw):
    """Honest headroom: a quality-aware oracle beats the one-step oracle on return."""
    def run(score_fn, n=40):
        env, total = RecSimEnv(raw, RecSimConfig()), 0.0
        for s in range(n):
            env.reset(seed=500 + s)
            while True:
                v = score_fn(env).copy()
                v[env.blocked] = -np.inf
                _, r, term, trunc, _ = env.step(np.argsort(-v)[:5])
                total += r
                if term or trunc:
                    break
        return total / n
    myopic = run(lambda e: e.myopic_values())
    patient = run(lambda e: e.myopic_values() * (1 + 2 * (e.cat.quality - 0.5)))
    assert patient > 1.15 * myopic


@pytest.mark.parametrize("slate, what", [([200], "unknown"), ([-1], "unknown"),
                                         ([3, 3], "duplicate"), ([], "non-empty"),
                                         ([1.5], "non-empty")])
def test_bad_slates_raise(env, slate, what):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=what):
        env.step(slate)


# ------------------------------------------------------------------------------ features, schema
def test_featurise_layout(raw):
    cat = parse_catalogue(raw)
    t, e = cat.n_topics, cat.embedding_dim
    assert state_dim(t, e) == 4 * t + e + 8
    assert np.flatnonzero(featurise([], cat)).tolist() == [4 * t + e + 6]
    h, eng = [5, 9, 2, 11], [1.0, 0.5, 0.0, 1.0]
    x = featurise(h, cat, eng, skipped=[40, 41])
    np.testing.assert_allclose(x[:t], cat.topics[[9, 2, 11]].mean(0), atol=1e-6)
    w = 0.8 ** np.array([3, 2, 1, 0]) * np.array(eng)
    np.testing.assert_allclose(x[t:2 * t], w @ cat.topics[h] / w.sum(), atol=1e-6)
    ws = 0.8 ** np.array([1, 0])
    np.testing.assert_allclose(x[2 * t:3 * t], ws @ cat.topics[[40, 41]] / ws.sum(), atol=1e-6)
    np.testing.assert_allclose(x[3 * t:3 * t + e], w @ cat.embedding[h] / w.sum(), atol=1e-6)
    np.testing.assert_allclose(x[3 * t + e:4 * t + e], 0.6 ** np.array([3, 2, 1, 0]) @ cat.topics[h],
                               atol=1e-6)
    o = 4 * t + e
    assert x[o] == pytest.approx(cat.quality[[9, 2, 11]].mean(), abs=1e-6)
    assert x[o + 1] == pytest.approx(4 / 20) and x[o + 5] == pytest.approx(2 / 20)
    assert x[o + 4] == pytest.approx(0.5)
    trust = 0.55
    for q in cat.quality[h]:
        trust += 0.3 * (q - trust)
    assert x[o + 6] == pytest.approx(trust, abs=1e-5)
    same = [cat.topic[i] == cat.topic[11] for i in h[::-1]]
    run = same.index(False) if False in same else len(h)
    assert x[o + 7] == pytest.approx(run / 10)
    assert featurise([5], cat, [1.0])[o + 4] == 1.0
    assert featurise([5], cat)[o + 4] == 1.0
    assert item_features(cat).shape == (cat.n_items, t + 3 + e)


def _small(n=3):
    return {"n_topics": 2, "embedding_dim": 0,
            "items": [{"id": 10 + i, "topic": i % 2, "quality": 0.5, "length": 2.0}
                      for i in range(n)]}


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["items"][1].pop("quality"), r"item 1 \(id 11\): missing 'quality'"),
    (lambda d: d["items"][0].update(topic=2), r"'topic' must be an integer in \[0, 1\]"),
    (lambda d: d["items"][2].update(id=10), "duplicate id 10"),
    (lambda d: d["items"][0].update(quality=1.5), "'quality' must be a finite number"),
    (lambda d: d["items"][0].update(length=0), "'length'"),
    (lambda d: d["items"][0].update(length=float("nan")), "'length'"),
    (lambda d: d["items"][0].update(popularity="high"), "'popularity' must be a number"),
    (lambda d: d["items"][0].update(embedding=[1.0]), "'embedding' must be a list of 0"),
    (lambda d: d["items"][0].update(topics=[0.0, 0.0]), "'topics' must have a positive sum"),
    (lambda d: d["items"][0].update(id=-1), "'id' must be a non-negative integer"),
    (lambda d: d.update(items=[]), "'items' must be a non-empty list"),
    (lambda d: d.update(n_topics="2"), "'n_topics'"),
])
def test_catalogue_schema_errors_name_the_item_and_field(edit, match):
    data = _small()
    edit(data)
    with pytest.raises(ValueError, match=match):
        parse_catalogue(data, "my.json")


def test_catalogue_csv_and_json_files(tmp_path):
    csv = tmp_path / "cat.csv"
    csv.write_text("id,topic,quality,length,popularity,title,emb0,emb1\n"
                   "7,1,0.9,3.0,0.2,Seven,0.1,0.2\n3,0,0.1,1.5,,Three,0.0,-0.5\n")
    cat = read_catalogue_file(csv, n_topics=2, embedding_dim=2)
    assert cat.ids.tolist() == [7, 3] and cat.titles == ("Seven", "Three")
    assert cat.popularity.tolist() == [pytest.approx(0.2), 0.5]
    np.testing.assert_allclose(cat.topics, [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="needs n_topics=2, embedding_dim=3"):
        read_catalogue_file(csv, n_topics=2, embedding_dim=3)
    with pytest.raises(ValueError, match=r"item 0 \(id 7\): 'topic' must be an integer in \[0, 0\]"):
        read_catalogue_file(csv, n_topics=1, embedding_dim=2)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,topic,length\n1,0,2\n")
    with pytest.raises(ValueError, match="lacks the column"):
        read_catalogue_file(bad, 2, 0)
    js = tmp_path / "cat.json"
    js.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_catalogue_file(js, 2, 0)
    with pytest.raises(ValueError, match=r"\.json or \.csv"):
        read_catalogue_file(tmp_path / "cat.xml", 2, 0)


# ------------------------------------------------------------------------------ runtime (shipped)
@pytest.fixture(scope="module")
def models(exported_dir):
    if "recommend" not in runtime.available(exported_dir):
        pytest.skip("no 'recommend' model in exported/ yet (python -m trainer train recommend)")
    return exported_dir


@pytest.fixture(scope="module")
def model(models):
    with runtime.load("recommend", models_dir=models) as m:
        yield m


def gen(model, **kw):
    return model.generate(seed=kw.pop("seed", 0), **kw)


def test_slate_is_k_distinct_new_ids_with_scores(model):
    n = model.catalogue().n_items
    assert n >= 200
    for history in ([], [0], [5, 17, 42, 99], list(range(0, n - 10))):
        out = gen(model, history=history, k=5)
        assert isinstance(out, Slate) and isinstance(out, list) and len(set(out)) == 5
        assert all(type(i) is int and 0 <= i < n for i in out) and not set(out) & set(history)
        assert len(out.scores) == 5 and out.scores == sorted(out.scores, reverse=True)
    last = gen(model, history=list(range(n - 3)), k=3)
    assert sorted(last) == [n - 3, n - 2, n - 1]
    assert runtime.generate("recommend", seed=0, models_dir=model.models_dir) == gen(model)


def test_focused_history_is_followed(model):
    cat = model.catalogue()
    for t in range(cat.n_topics):
        hist = cat.ids[cat.topic == t][:5].tolist()
        assert sum(x == t for x in gen(model, history=hist, k=10).topics) >= 3


def test_deterministic_and_explore(model):
    a = gen(model, history=[3, 8], k=10, seed=1)
    assert a == gen(model, history=[3, 8], k=10, seed=1) == gen(model, history=[3, 8], k=10, seed=2)
    e1 = gen(model, history=[3, 8], k=10, explore=1.0, seed=1)
    e2 = gen(model, history=[3, 8], k=10, explore=1.0, seed=2)
    assert e1 != e2 and len(set(e1)) == 10 and not {3, 8} & set(e1)


def test_skipped_items_do_not_come_back_unless_allowed(model):
    first = gen(model, history=[1, 2, 3], k=5)
    second = gen(model, history=[1, 2, 3], skipped=list(first), k=5)
    assert not set(first) & set(second)
    n = model.catalogue().n_items
    with pytest.raises(ValueError, match="only 3 items are allowed"):
        gen(model, skipped=list(range(n - 3)), k=5)
    again = gen(model, skipped=list(range(n - 3)), k=5, reshow_skipped=True)
    assert len(set(again)) == 5 and set(again) & set(range(n - 3))
    # a user who never clicks gets new items slate after slate
    skipped, seen = [], set()
    for _ in range(4):
        s = gen(model, history=[], skipped=skipped, k=5)
        assert not seen & set(s)
        seen |= set(s)
        skipped += list(s)


def test_repeats_exclude_and_topic_filters(model):
    cat = model.catalogue()
    n = cat.n_items
    with pytest.raises(ValueError, match="k=5 but only 3 items"):
        gen(model, history=list(range(n - 3)), k=5)
    assert len(gen(model, history=list(range(n - 3)), k=5, allow_repeats=True)) == 5
    assert len(gen(model, history=[4, 4, 4], k=5)) == 5                  # re-watches are fine
    base = gen(model, history=[10, 11], k=5)
    out = gen(model, history=[10, 11], k=5, exclude=list(base[:2]))
    assert not set(base[:2]) & set(out)
    only = gen(model, history=[10, 11], k=8, topics=[2, 5])
    assert set(only.topics) <= {2, 5}


def test_engagement_changes_the_state_and_is_checked(model):
    cat = model.catalogue()
    a, b = cat.ids[cat.topic == 0][:3].tolist(), cat.ids[cat.topic == 1][:3].tolist()
    liked_a = gen(model, history=a + b, engagement=[1, 1, 1, 0, 0, 0], k=10)
    liked_b = gen(model, history=a + b, engagement=[0, 0, 0, 1, 1, 1], k=10)
    assert liked_a.topics.count(0) > liked_b.topics.count(0)
    with pytest.raises(ValueError, match="engagement must have one value per history item"):
        gen(model, history=[1, 2], engagement=[0.5])
    with pytest.raises(ValueError, match=r"engagement\[1\]"):
        gen(model, history=[1, 2], engagement=[0.5, 2.0])


def test_app_catalogue_file_without_retraining(model, tmp_path, models):
    shipped = runtime.load("recommend", models_dir=models).json("catalogue")
    items = [dict(it, id=1000 + it["id"]) for it in shipped["items"][:120][::-1]]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"n_topics": shipped["n_topics"],
                                "embedding_dim": shipped["embedding_dim"], "items": items}))
    out = gen(model, history=[1000 + 5], k=5, catalogue=str(path))
    assert all(1000 <= i < 1200 for i in out) and 1005 not in out
    # the same items under new ids get the same scores (features, not ids, are scored)
    ref = gen(model, history=[5], k=5, exclude=[i for i in range(200) if i + 1000 not in
                                                {it["id"] for it in items}])
    assert [i + 1000 for i in ref] == list(out)
    np.testing.assert_allclose(ref.scores, out.scores, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"unknown item ids \[5\]"):
        gen(model, history=[5], catalogue=str(path))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"n_topics": 3, "items": items[:3]}))
    with pytest.raises(ValueError, match="bad.json"):
        gen(model, catalogue=str(bad))
    with pytest.raises(ValueError, match="catalogue cannot be read"):
        gen(model, catalogue=str(tmp_path / "missing.json"))


def test_int8_precision(models):
    a = runtime.generate("recommend", history=[1, 2, 3], k=5, seed=0, models_dir=models)
    b = runtime.generate("recommend", history=[1, 2, 3], k=5, seed=0, precision="int8",
                         models_dir=models)
    assert len(set(b)) == 5 and len(set(a) & set(b)) >= 3


def test_save_writes_a_summary(model, tmp_path):
    s = gen(model, history=[1, 2], k=3)
    line = s.save(tmp_path / ("slate" + Slate.suffix))
    rows = (tmp_path / "slate.txt").read_text().splitlines()
    assert rows[0].startswith("rank") and [int(r.split("\t")[1]) for r in rows[1:]] == list(s)
    assert "\n" not in line and str(s[0]) in line


def test_unknown_ids_are_named(model):
    with pytest.raises(ValueError, match=r"history has unknown item ids \[200, 99999\]"):
        gen(model, history=[1, 200, 99999])
    with pytest.raises(ValueError, match=r"skipped has unknown item ids \[-1\]"):
        gen(model, skipped=[-1])
    with pytest.raises(ValueError, match=r"exclude has unknown item ids \[500\]"):
        gen(model, exclude=[500])


@pytest.mark.parametrize("opts, name", [
    ({"history": ["3"]}, "history"), ({"history": [2.0]}, "history"),
    ({"history": [True]}, "history"), ({"history": [None]}, "history"),
    ({"history": "1,2"}, "history"), ({"history": 5}, "history"),
    ({"history": list(range(100_000))}, "history"), ({"skipped": [1.0]}, "skipped"),
    ({"exclude": "3"}, "exclude"), ({"topics": [10]}, "topics"), ({"topics": 3}, "topics"),
    ({"k": 0}, "k"), ({"k": 51}, "k"), ({"k": 2.0}, "k"), ({"k": "5"}, "k"), ({"k": True}, "k"),
    ({"explore": -0.1}, "explore"), ({"explore": float("nan")}, "explore"),
    ({"allow_repeats": 1}, "allow_repeats"), ({"reshow_skipped": "yes"}, "reshow_skipped"),
    ({"catalogue": 3}, "catalogue"), ({"engagement": "x"}, "engagement"),
    ({"temperature": 1.0}, "temperature"),
])
def test_bad_options_raise_value_error(models, opts, name):
    with pytest.raises(ValueError) as info:
        runtime.generate("recommend", seed=0, models_dir=models, **opts)
    assert name in str(info.value)
