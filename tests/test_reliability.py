"""Reliability of the runtime: hostile input (property-based), faults, concurrency, no pickles."""
import ast
import collections
import concurrent.futures as cf
import time

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runtime
from runtime import ModelError, registry
from tests.conftest import ROOT, shipped_kinds

MAX_SECONDS = 30          # one call, worst case allowed by the documented caps
MAX_RSS_GROWTH = 600e6    # bytes one call may add to the process

hostile_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-5, max_value=80),
    st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-0.5, max_value=1.5),
    st.text(max_size=40),
    st.sampled_from(["C", "F#", "Bb", "Am", "H", "", "\u00e9\u00e8\u4e2d\U0001F600", "x" * 20000]),
    st.binary(max_size=8),
)
hostile_values = st.one_of(
    hostile_scalars,
    st.lists(hostile_scalars, max_size=6),
    st.lists(st.integers(min_value=-3, max_value=400), max_size=30),
    st.lists(st.text(max_size=80), max_size=6),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def check_result(kind, result, opts):
    """A valid result has the documented type, and the shape and values the options ask for
    (``opts`` as the model resolved them: defaults filled in)."""
    o = runtime.model_class(kind).options.resolve(kind, opts)
    if kind == "text":
        assert isinstance(result, str) and len(result.tokens) <= o["max_tokens"]
    elif kind in ("image", "video"):
        assert isinstance(result, np.ndarray) and result.dtype == np.uint8 and result.ndim == 3
        assert result.shape[1] == result.shape[2] >= 16
        if kind == "image":
            assert len(result) == len(result.labels) == o["n"]
            assert set(result.labels) <= (set(range(10)) if o["digit"] is None else {o["digit"]})
        else:
            assert len(result) == o["frames"] and len(result.digits) == o["digits"]
    elif kind == "level":
        assert len(result) == o["size"] and all(isinstance(r, str) and len(r) == o["size"]
                                                for r in result)
        flat = "".join(result)
        assert flat.count("S") == 1 and flat.count("G") == 1
    elif kind == "music":
        notes = result.notes
        assert notes and all((p is None or 0 <= p <= 127) and d >= 1 for p, d in notes)
    elif kind == "dialogue":
        assert isinstance(result, str) and result.strip() and result.act
        assert result.transcript[-1] == result
    elif kind == "recommend":
        assert len(set(result)) == len(result) == o["k"]
        assert not set(result) & set(o["exclude"])
        if not o["allow_repeats"]:
            assert not set(result) & set(o["history"])


def call_bounded(kind, opts):
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    try:
        result = runtime.generate(kind, seed=0, **opts)
        check_result(kind, result, opts)
    except ValueError as exc:
        assert str(exc), "ValueError without a message"
    finally:
        elapsed = time.perf_counter() - t0
        growth = proc.memory_info().rss - rss0
    assert elapsed < MAX_SECONDS, f"{kind} {opts!r:.200} took {elapsed:.1f}s"
    assert growth < MAX_RSS_GROWTH, f"{kind} {opts!r:.200} grew RSS by {growth / 1e6:.0f} MB"


KINDS = shipped_kinds()


@pytest.mark.parametrize("kind", KINDS or ["none"])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(data=st.data())
def test_hostile_options_give_result_or_value_error(kind, data):
    if kind == "none":
        pytest.skip("no shipped models")
    names = runtime.model_class(kind).options.names
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    opts = {name: data.draw(hostile_values, label=name) for name in chosen}
    call_bounded(kind, opts)


@pytest.mark.parametrize("kind", KINDS or ["none"])
def test_unknown_and_misspelled_options(kind):
    if kind == "none":
        pytest.skip("no shipped models")
    with pytest.raises(ValueError, match="accepted"):
        runtime.generate(kind, **{"s\u00e9ed": 1})


def test_concurrent_mixed_kinds_match_sequential(monkeypatch):
    if not KINDS:
        pytest.skip("no shipped models")
    jobs = [(KINDS[i % len(KINDS)], i) for i in range(48)]
    builds = []
    load_session = registry.load_session

    def counting(kind, role, *args, **kwargs):
        builds.append((kind, role))
        return load_session(kind, role, *args, **kwargs)

    def one(job):
        kind, seed = job
        out = runtime.generate(kind, seed=seed)
        return out.tobytes() if isinstance(out, np.ndarray) else repr(out)

    runtime.release()
    monkeypatch.setattr(registry, "load_session", counting)
    with cf.ThreadPoolExecutor(16) as pool:
        threaded = list(pool.map(one, jobs))
    built_by_threads = len(builds)
    sequential = [one(job) for job in jobs]
    assert threaded == sequential
    # every session was built once per model, not once per thread, and reused afterwards
    assert len(builds) == built_by_threads > 0
    once = {"image": 2}        # the video model draws its opening digits with its own image model
    for (kind, role), count in collections.Counter(builds).items():
        assert count <= once.get(kind, 1), (kind, role, count)


def test_missing_models_dir_is_model_error_naming_the_path(tmp_path):
    kind = KINDS[0] if KINDS else "text"
    with pytest.raises(ModelError, match=str(tmp_path / "gone")):
        runtime.generate(kind, models_dir=tmp_path / "gone")


def test_runtime_never_unpickles_or_evals():
    for path in (ROOT / "runtime").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert not {"pickle", "marshal", "shelve", "dill"} & {str(m).split(".")[0] for m in mods}, path
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", "")
                assert name not in ("eval", "exec", "__import__"), f"{path.name} calls {name}"
                if name == "load" and getattr(getattr(fn, "value", None), "id", "") == "np":
                    kws = {k.arg: k.value for k in node.keywords}
                    assert "allow_pickle" in kws and kws["allow_pickle"].value is False, path
