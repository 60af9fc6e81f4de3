"""House limits that keep the code easy to walk: modules of at most 500 lines, functions of at
most 80. The pure-Python twins of the Cython kernels are exempt: they mirror the .pyx loop
for loop so that a bit-exact comparison stays readable side by side."""
import ast

from tests.conftest import ROOT

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
PACKAGES = ("runtime", "trainer", "benchmarks", "fastcore", "tests")
# twins of the Cython kernels: written to mirror the .pyx code line for line
EXEMPT = {"fastcore/reference.py", "fastcore/reference_envs.py", "fastcore/reference_level.py",
          "runtime/level_env.py",
          "fastcore/reference_music.py"}


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in EXEMPT:
                yield rel, path.read_text(encoding="utf-8")


def test_modules_are_at_most_500_lines():
    long = [(rel, text.count("\n")) for rel, text in _sources()
            if text.count("\n") > MAX_MODULE_LINES]
    assert not long, f"split these modules along their seams: {long}"


def test_functions_are_at_most_80_lines():
    long = []
    for rel, text in _sources():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                # a class defined in a function (a lazy Keras import) is measured by its methods
                size = node.end_lineno - node.lineno + 1 - sum(
                    c.end_lineno - c.lineno + 1 for c in node.body if isinstance(c, ast.ClassDef))
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{rel}:{node.lineno} {node.name} ({size} lines)")
    assert not long, "split these functions:\n" + "\n".join(long)
