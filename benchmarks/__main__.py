"""``python -m benchmarks NAME [args...]``: runs benchmarks/<module>.py's ``main()``.

Add a benchmark by adding one entry to BENCHMARKS (modules are imported lazily, so one
benchmark's heavy imports never slow another down).
"""
import importlib
import sys

BENCHMARKS = {
    "fastcore": "benchmarks.fastcore",
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        names = ", ".join(sorted(BENCHMARKS))
        print(f"usage: python -m benchmarks NAME [args...]   (NAME: {names})",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    result = module.main(argv[1:])
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
