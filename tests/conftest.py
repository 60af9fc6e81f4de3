import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Quiet TensorFlow in tests that import it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def exported_dir() -> Path:
    return ROOT / "exported"


def shipped_kinds() -> list[str]:
    import runtime

    return runtime.available(ROOT / "exported")


def require_kind(kind: str) -> None:
    """Skip (with the reason) when the shipped models do not include ``kind``."""
    if kind not in shipped_kinds():
        pytest.skip(f"no shipped {kind!r} model in exported/manifest.json")


def pytest_sessionfinish(session, exitstatus):
    """A run that deselects the ``tf`` tests (``make test-fast``) must not import TensorFlow:
    a test that does is missing its ``tf`` mark."""
    markexpr = session.config.getoption("markexpr", "") or ""
    if "not tf" in markexpr and "tensorflow" in sys.modules:
        session.config.get_terminal_writer().line(
            "ERROR: TensorFlow was imported in a run without tf tests: mark the test that "
            "imports it with @pytest.mark.tf", red=True)
        session.exitstatus = 1
