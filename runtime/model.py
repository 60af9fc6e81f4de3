"""Model objects: one per kind, owning its onnxruntime sessions and side data.

    import runtime
    model = runtime.load("image", precision="int8")
    images = model.generate(n=4, seed=1)        # typed result (here: uint8 array + .labels)
    model.close()                               # releases the sessions

A kind module (``runtime/<kind>.py``) declares its options once (``OPTIONS = Options(...)``:
the single source of defaults, validation and the generated options reference), a result
type, and a ``Model`` subclass that implements ``_generate(rng, **options)``.

Everything a model builds (sessions, parsed side files, tables) lives in the instance's cache,
built once under a lock and dropped when the manifest file changes, when the session settings
change (``runtime.configure``) or on ``close()``.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable, ClassVar

import numpy as np

from runtime import options as _check
from runtime import registry
from runtime.errors import ModelError, out_of_memory

PRECISIONS = ("auto", "fp32", "int8")   # auto: the kind's default_precision (else fp32)
_TYPES = ("int", "float", "bool", "str", "choice", "str_list", "int_list", "object")


@dataclasses.dataclass(frozen=True)
class Option:
    """One generation option: its default, accepted values and a one-line description.

    ``type`` is one of int, float, bool, str, choice, str_list, int_list or object (validated by
    the kind itself). ``optional`` lets ``None`` through; ``lo``/``hi`` bound numbers and the
    length of lists and strings (``hi`` for str/lists is the maximum length)."""
    name: str
    default: Any
    type: str
    doc: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()
    optional: bool = False

    def __post_init__(self):
        if self.type not in _TYPES:
            raise TypeError(f"option {self.name}: unknown type {self.type!r}")

    def validate(self, value):
        if value is None and self.optional:
            return None
        name, t = self.name, self.type
        if t == "int":
            return _check.check_int(name, value, int(self.lo), int(self.hi))
        if t == "float":
            return _check.check_float(name, value, self.lo, self.hi)
        if t == "bool":
            return _check.check_bool(name, value)
        if t == "str":
            return _check.check_str(name, value, int(self.hi or 100_000))
        if t == "choice":
            return _check.check_choice(name, value, self.choices)
        if t == "str_list":
            return _check.check_str_list(name, value, int(self.hi or 1000))
        if t == "int_list":
            return _check.check_int_list(name, value, int(self.lo), 2**62,
                                         int(self.hi or 10_000))
        return value

    def accepted(self) -> str:
        """What the option accepts, in words (for errors and the reference)."""
        t = self.type
        if t in ("int", "float"):
            text = f"{'integer' if t == 'int' else 'number'} in [{_num(self.lo)}, {_num(self.hi)}]"
        elif t == "choice":
            text = "one of " + ", ".join(f"`{c}`" for c in self.choices)
        elif t == "str":
            text = "string" + (f" (at most {self.hi:,} characters)" if self.hi else "")
        elif t == "str_list":
            text = "list of strings" + (f" (at most {self.hi:,})" if self.hi else "")
        elif t == "int_list":
            text = "list of integers" + (f" (at most {self.hi:,})" if self.hi else "")
        elif t == "bool":
            text = "`True` or `False`"
        else:
            text = "see description"
        return text + (" or `None`" if self.optional else "")


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


class Options:
    """A kind's options, in order: defaults, validation and reference in one place."""

    def __init__(self, *options: Option):
        self._by_name = {o.name: o for o in options}
        if len(self._by_name) != len(options):
            raise TypeError("duplicate option names")

    def __iter__(self):
        return iter(self._by_name.values())

    def __contains__(self, name) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Option:
        return self._by_name[name]

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def defaults(self) -> dict:
        return {name: o.default for name, o in self._by_name.items()}

    def resolve(self, kind: str, given: dict) -> dict:
        """Defaults merged with ``given``, every value validated (ValueError names the option)."""
        unknown = [k for k in given if k not in self._by_name]
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(map(repr, sorted(unknown)))} for kind "
                             f"{kind!r}; accepted: {', '.join(self._by_name) or 'none'}, seed")
        out = {}
        for name, o in self._by_name.items():
            out[name] = o.validate(given[name]) if name in given else o.default
        return out

    def reference(self) -> str:
        """A markdown table of the options (the generated options reference)."""
        rows = ["| option | default | accepts | description |", "| --- | --- | --- | --- |"]
        for o in self:
            rows.append(f"| `{o.name}` | `{o.default!r}` | {o.accepted()} | {o.doc} |")
        return "\n".join(rows)


SessionFactory = Callable[[str, str, str], Any]


class Model:
    """Base class of the seven kinds' models; see the module docstring.

    ``session_factory(kind, role, precision)`` replaces onnxruntime for every session of this
    model (the edge benchmark plugs TensorFlow in this way); it must return an object with
    ``get_inputs()``, ``get_outputs()`` and ``run(output_names, feeds)``."""
    kind: ClassVar[str] = ""
    options: ClassVar[Options] = Options()

    def __init__(self, models_dir=None, precision: str = "auto",
                 session_factory: SessionFactory | None = None):
        self.models_dir = registry.resolve(models_dir)
        _check.check_choice("precision", precision, PRECISIONS)
        self._factory = session_factory
        self._lock = threading.RLock()
        self._cache: dict = {}
        self._state: tuple | None = None       # (manifest object, session settings) of the cache
        self.precision = registry.resolve_precision(self.kind, precision, self.models_dir)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.precision} from {self.models_dir}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def info(self) -> dict:
        """This kind's manifest entry (files with sizes and sha256, config, metrics)."""
        return registry.entry(self.kind, self.models_dir)

    def generate(self, *, seed: int | None = None, **options):
        """One sample; same options and ``seed`` give the same result (``None``: fresh)."""
        seed = _check.check_seed(seed)
        opts = self.options.resolve(self.kind, options)
        try:
            return self._generate(np.random.default_rng(seed), **opts)
        except MemoryError:
            files = ", ".join(f["file"] for f in self.info.get("files", {}).values()
                              if not f.get("optional"))
            raise out_of_memory(f"{self.models_dir} ({files})", "generating from") from None

    def _generate(self, rng: np.random.Generator, **options):
        raise NotImplementedError

    def close(self) -> None:
        """Release the sessions and side data (a later call rebuilds them)."""
        with self._lock:
            self._cache.clear()
            self._state = None

    # ------------------------------------------------------------------ cached building blocks
    def cached(self, key, build: Callable[[], Any]):
        """``build()`` once per key, kept until the manifest or the settings change."""
        state = (registry.manifest(self.models_dir), registry.settings())
        if self._state is not None and self._state[0] is state[0] and self._state[1] == state[1]:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        with self._lock:
            if self._state is None or self._state[0] is not state[0] or self._state[1] != state[1]:
                self._cache.clear()
                self._state = state
            value = self._cache.get(key)
            if value is None:
                value = self._cache[key] = build()
            return value

    def session(self, role: str):
        """The verified session of the manifest file ``role`` (its int8 variant at int8)."""
        return self.cached(("session", role), lambda: self._build_session(role))

    def _build_session(self, role: str):
        if self._factory is not None:
            return self._factory(self.kind, role, self.precision)
        return registry.load_session(self.kind, role, self.models_dir, self.precision)

    def json(self, role: str):
        """The verified, parsed JSON side file ``role``."""
        return self.cached(("json", role),
                           lambda: registry.read_json(self.kind, role, self.models_dir))

    def q_table(self, role: str, n_states: int) -> np.ndarray:
        """A Q-table shipped as an ONNX gather (state indices -> Q rows), read once: float32
        ``(n_states, n_actions)``."""
        def build():
            sess = self.session(role)
            states = np.arange(n_states, dtype=np.int64)
            table = self.run(sess, {sess.get_inputs()[0].name: states})[0]
            if table.ndim != 2 or table.shape[0] != n_states:
                raise ModelError(f"the {self.kind} {role} model gives a table of shape "
                                 f"{table.shape}, expected ({n_states}, actions): re-export "
                                 f"{self.kind}")
            table = np.ascontiguousarray(table, np.float32)
            table.flags.writeable = False
            return table
        return self.cached(("table", role), build)

    @staticmethod
    def run(sess, feeds: dict, outputs: list[str] | None = None) -> list[np.ndarray]:
        """``sess.run`` with onnxruntime failures turned into ModelError."""
        return registry.run(sess, feeds, outputs)


class TaggedArray(np.ndarray):
    """Base of the array results (images, video): uint8 pixels carrying one int64 vector, the
    attribute named by ``tag``; a slice or a computed array is a plain view whose tag is None.
    A subclass sets ``tag``, ``suffix`` (the file type ``save`` writes) and ``save``."""
    tag: ClassVar[str] = ""
    suffix: ClassVar[str] = ""

    def __new__(cls, pixels: np.ndarray, values: np.ndarray):
        obj = np.asarray(pixels, np.uint8).view(cls)
        setattr(obj, cls.tag, np.asarray(values, np.int64))
        return obj

    def __array_finalize__(self, obj) -> None:
        setattr(self, self.tag, None)
