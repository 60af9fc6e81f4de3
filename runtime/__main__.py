"""Runtime CLI.

    python -m runtime list
    python -m runtime demo [--out DIR]
    python -m runtime generate KIND [--seed N] [--out PATH] [--precision fp32|int8] [--OPTION VALUE ...]

Option values are read as JSON when they parse (numbers, lists, true/false) and as plain
strings otherwise; a list option (``history``, ``stop``) given several times collects the
values. Examples:

    python -m runtime generate text --prompt "The list " --max_tokens 200 --seed 1
    python -m runtime generate level --size 16 --difficulty 0.8 --out level.txt
    python -m runtime generate dialogue --history "I want cheap italian food in the north"
    python -m runtime generate recommend --history "[3, 17, 42]" --k 5
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LIST_OPTIONS = {"history", "stop"}


def _parse_value(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _parse_options(tokens: list[str]) -> dict:
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
        value = _parse_value(raw)
        if name in LIST_OPTIONS:
            value = value if isinstance(value, list) else [raw]
            opts[name] = opts.get(name, []) + value
        else:
            opts[name] = value
        i += 1
    return opts


def cmd_list(models_dir) -> int:
    import runtime

    kinds = runtime.available(models_dir)
    if not kinds:
        print("no models found (run `python -m trainer train all`)")
        return 1
    for kind in kinds:
        e = runtime.info(kind, models_dir)
        files = ", ".join(f"{role}={f['file']}" for role, f in e["files"].items())
        print(f"{kind:10s} {e['bytes'] / 1e6:7.2f} MB  {files}")
    return 0


def cmd_generate(kind: str, seed, out, precision, models_dir, extra: list[str]) -> int:
    import runtime
    from runtime import media

    options = _parse_options(extra)
    result = runtime.generate(kind, seed=seed, models_dir=models_dir, precision=precision,
                              **options)
    if options.get("stream"):
        result = "".join(result)
    path = Path(out) if out else Path("out") / f"{kind}{media.EXTENSIONS[kind]}"
    summary = media.write_sample(kind, result, path, options)
    print(summary)
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


def cmd_demo(out: str, models_dir) -> int:
    import runtime
    from runtime import media

    kinds = runtime.available(models_dir)
    if not kinds:
        print("no models found in exported/ (run `make train`)", file=sys.stderr)
        return 1
    out_dir = Path(out)
    for kind in kinds:
        options = dict(DEMO[kind])
        if kind == "dialogue":
            history: list[str] = []
            for user in DEMO_USER_TURNS:
                history.append(user)
                history.append(runtime.generate("dialogue", history=list(history), seed=0,
                                                models_dir=models_dir))
            result, options["history"] = history.pop(), history
        else:
            result = runtime.generate(kind, seed=0, models_dir=models_dir, **options)
        path = out_dir / f"{kind}{media.EXTENSIONS[kind]}"
        summary = media.write_sample(kind, result, path, options)
        print(f"--- {kind} -> {path}")
        print(summary)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list the available models")
    p_list.add_argument("--models-dir", default=None)
    p_gen = sub.add_parser("generate", help="generate one sample and write it to a file")
    p_gen.add_argument("kind")
    p_gen.add_argument("--seed", type=int, default=None)
    p_gen.add_argument("--out", default=None, help="output file (default out/KIND.EXT)")
    p_gen.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    p_gen.add_argument("--models-dir", default=None)
    p_demo = sub.add_parser("demo", help="write one sample of every available kind")
    p_demo.add_argument("--out", default="out")
    p_demo.add_argument("--models-dir", default=None)
    args, extra = parser.parse_known_args(argv)
    from runtime import ModelError

    try:
        if args.command == "demo":
            return cmd_demo(args.out, args.models_dir)
        if args.command == "list":
            if extra:
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
            return cmd_list(args.models_dir)
        return cmd_generate(args.kind, args.seed, args.out, args.precision, args.models_dir,
                            extra)
    except (ValueError, ModelError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
