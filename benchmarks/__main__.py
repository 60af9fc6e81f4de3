"""``python -m benchmarks NAME|all [args...]``: runs that benchmark module's ``main(argv)``.

BENCHMARKS maps NAME -> module; modules are imported lazily (one benchmark's heavy imports never
slow another down). A ``benchmarks/NAME.py`` with a ``main`` that is not listed yet is found too.
"""
import importlib
import sys
from pathlib import Path

BENCHMARKS = {
    "fastcore": "benchmarks.fastcore",
    "text": "benchmarks.text",
    "edge": "benchmarks.edge",
}


def _available() -> dict:
    names = dict(BENCHMARKS)
    for path in Path(__file__).resolve().parent.glob("*.py"):
        if not path.stem.startswith("_") and path.stem not in names:
            names[path.stem] = f"benchmarks.{path.stem}"
    return {k: v for k, v in names.items()
            if (Path(__file__).resolve().parent / (v.rsplit(".", 1)[-1] + ".py")).exists()}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = _available()
    usage = f"usage: python -m benchmarks NAME [args...]   (NAME: {', '.join(sorted(names))})"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    if argv[0] == "all":
        # `make bench`: every benchmark, the per-kind edge table (benchmarks/results.md) last
        order = sorted(n for n in names if n != "edge") + ["edge"]
        status = 0
        for name in order:
            print(f"\n===== benchmark: {name} =====", flush=True)
            result = importlib.import_module(names[name]).main(argv[1:])
            status = status or (result if isinstance(result, int) else 0)
        return status
    if argv[0] not in names:
        print(f"unknown benchmark {argv[0]!r}\n{usage}", file=sys.stderr)
        return 2
    module = importlib.import_module(names[argv[0]])
    if not hasattr(module, "main"):
        print(f"{names[argv[0]]} has no main()", file=sys.stderr)
        return 2
    result = module.main(argv[1:])
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
