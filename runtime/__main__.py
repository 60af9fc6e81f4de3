"""Runtime CLI.

    python -m runtime list
    python -m runtime demo [--out DIR]
    python -m runtime generate KIND [--seed N] [--out PATH] [--precision auto|fp32|int8] [--OPTION VALUE ...]

Each option value is read by the option's declared type: a string option (``--prompt 1984``)
keeps the text as it is; numbers and booleans are read as JSON (``--k 5``,
``--end_on_tonic false``); a list option (``history``, ``stop``, ...) given several times
collects the values (``--history 3 --history 17``), and a JSON list (``--history "[3, 17]"``)
gives several at once. Options of a kind's own type are read as JSON when they parse and as
strings otherwise. The sample is written with the result's own writer to ``--out`` (default
``out/KIND.SUFFIX``). Examples:

    python -m runtime generate text --prompt "The list " --max_tokens 200 --seed 1
    python -m runtime generate level --size 16 --difficulty 0.8 --out level.txt
    python -m runtime generate dialogue --history "I want cheap italian food in the north"
    python -m runtime generate recommend --history 3 --history 17 --history 42 --k 5
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# list options of kinds whose options do not say so by their type or default
LIST_OPTIONS = {"history", "stop", "skipped", "exclude", "topics"}
# list options whose items are text, where the kind declares them as its own type ("object")
TEXT_ITEMS = {("dialogue", "history"), ("text", "stop")}
STRING_TYPES = ("str", "choice")


def _declared(kind: str) -> dict:
    """``{option name: (type, default)}`` as the kind declares them ({} if unknown)."""
    import runtime

    try:
        options = runtime.model_class(kind).options
    except (ValueError, ImportError, AttributeError):
        return {}
    declared = {o.name: (o.type, o.default) for o in options}
    for name, (kind_type, default) in declared.items():
        if kind_type == "object" and (kind, name) in TEXT_ITEMS:
            declared[name] = ("str_list", default)
        elif kind_type == "object" and isinstance(default, str):
            declared[name] = ("str", default)
    return declared


def _json_or_text(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _is_list_option(name: str, declared: dict) -> bool:
    kind_type, default = declared.get(name, ("object", None))
    return kind_type in ("str_list", "int_list") or isinstance(default, (list, tuple)) \
        or name in LIST_OPTIONS


def _parse_value(name: str, raw: str, declared: dict):
    """One occurrence of ``--name raw`` read by the option's declared type."""
    kind_type = declared.get(name, ("object", None))[0]
    if kind_type in STRING_TYPES:
        return raw
    value = _json_or_text(raw)
    if kind_type == "str_list" and not isinstance(value, list):
        return raw                     # one item, kept as typed (`--stop 42` stops at "42")
    return value


def parse_options(tokens: list[str], declared: dict | None = None) -> dict:
    """``--name value`` / ``--name=value`` pairs to keyword options (see the module doc)."""
    declared = declared or {}
    opts: dict = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) < 3:
            raise ValueError(f"expected --OPTION VALUE, got {tok!r}")
        name, eq, raw = tok[2:].partition("=")
        name = name.replace("-", "_")
        if not eq:
            if i + 1 >= len(tokens):
                raise ValueError(f"option --{name} needs a value")
            raw = tokens[i + 1]
            i += 1
        value = _parse_value(name, raw, declared)
        if _is_list_option(name, declared):
            items = value if isinstance(value, list) else [value]
            opts[name] = opts.get(name, []) + items
        elif name in opts:
            raise ValueError(f"option --{name} given twice (it takes one value)")
        else:
            opts[name] = value
        i += 1
    return opts


def default_path(kind: str, result) -> Path:
    return Path("out") / f"{kind}{type(result).suffix}"


def save(result, path: Path) -> str:
    """Write ``result`` to ``path`` with its own ``save`` (every kind's result has one); a
    folder that cannot be written is a clear error, not a traceback."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return result.save(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValueError(f"cannot write {path} ({reason}): pass --out with a writable path")
    except MemoryError:
        raise ValueError(f"out of memory writing {path}") from None


def cmd_list(models_dir) -> int:
    import runtime

    kinds = runtime.available(models_dir)
    if not kinds:
        print("no models found (run `python -m trainer train all`)")
        return 1
    for kind in kinds:
        files = runtime.info(kind, models_dir)["files"]
        used = {role: f for role, f in files.items() if not f.get("optional")}
        size = sum(f["bytes"] for f in used.values())
        names = ", ".join(f"{role}={f['file']}" for role, f in used.items())
        print(f"{kind:10s} {size / 1e6:7.2f} MB  {names}")
    return 0


def cmd_generate(kind: str, seed, out, precision, models_dir, extra: list[str]) -> int:
    import runtime

    runtime.info(kind, models_dir)          # an unknown kind is a ValueError naming the kinds
    options = parse_options(extra, _declared(kind))
    result = runtime.generate(kind, seed=seed, models_dir=models_dir, precision=precision,
                              **options)
    path = Path(out) if out else default_path(kind, result)
    print(save(result, path))
    print(f"wrote {path}")
    return 0


# One sample of every kind for `make demo` (options chosen to show each kind off).
DEMO = {
    "text": {"prompt": "The ", "max_tokens": 300, "temperature": 0.7},
    "image": {"n": 16, "quality": 1.0},
    "video": {"frames": 16},
    "level": {"size": 16, "difficulty": 0.6},
    "music": {"bars": 4, "key": "C"},
    "dialogue": {"history": ["I want cheap italian food in the north"]},
    "recommend": {"history": [3, 17, 42], "k": 5},
}
DEMO_USER_TURNS = ["I want cheap italian food in the north", "a table for 2 at 7pm please",
                   "yes, and what is the phone number?", "thanks, bye"]


def _demo_dialogue(models_dir):
    import runtime

    history: list[str] = []
    for user in DEMO_USER_TURNS:
        history.append(user)
        history.append(runtime.generate("dialogue", history=list(history), seed=0,
                                        models_dir=models_dir))
    result = history.pop()
    return result, {"history": history}


def cmd_demo(out: str, models_dir) -> int:
    import runtime

    kinds = runtime.available(models_dir)
    if not kinds:
        print("no models found in exported/ (run `make train`)", file=sys.stderr)
        return 1
    out_dir = Path(out)
    for kind in kinds:
        options = dict(DEMO[kind])
        if kind == "dialogue":
            result, options = _demo_dialogue(models_dir)
        else:
            result = runtime.generate(kind, seed=0, models_dir=models_dir, **options)
        path = out_dir / default_path(kind, result).name
        summary = save(result, path)
        print(f"--- {kind} -> {path}")
        print(summary)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runtime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list the available models")
    p_list.add_argument("--models-dir", default=None)
    p_gen = sub.add_parser("generate", help="generate one sample and write it to a file")
    p_gen.add_argument("kind")
    p_gen.add_argument("--seed", type=int, default=None)
    p_gen.add_argument("--out", default=None, help="output file (default out/KIND.SUFFIX)")
    p_gen.add_argument("--precision", default="auto", choices=["auto", "fp32", "int8"])
    p_gen.add_argument("--models-dir", default=None)
    p_demo = sub.add_parser("demo", help="write one sample of every available kind")
    p_demo.add_argument("--out", default="out")
    p_demo.add_argument("--models-dir", default=None)
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "generate":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from runtime import ModelError

    try:
        if args.command == "demo":
            return cmd_demo(args.out, args.models_dir)
        if args.command == "list":
            return cmd_list(args.models_dir)
        return cmd_generate(args.kind, args.seed, args.out, args.precision, args.models_dir,
                            extra)
    except (ValueError, ModelError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory (try RUNTIME_LOW_MEMORY=1 or less work per call)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
