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
