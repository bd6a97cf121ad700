from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from otlp_receiver import Receiver


@pytest.fixture(autouse=True)
def _clean_sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no client, fresh counters and no LLMPULSE_* environment."""
    import os

    import llmpulse
    from llmpulse._stats import stats

    for name in list(os.environ):
        if name.startswith(("LLMPULSE_", "OTEL_", "DD_")):
            monkeypatch.delenv(name)
    llmpulse.shutdown()
    stats.reset()
    yield
    llmpulse.shutdown()


@pytest.fixture(autouse=True)
def _no_swallowed_sdk_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """SDK internals log and swallow their own errors; in our tests that is a failure."""
    from llmpulse._stats import stats

    caplog.set_level(logging.DEBUG, logger="llmpulse")
    yield
    internal = sum(
        stats.get(k) for k in ("internal_errors", "extract_errors", "cost_errors", "spans_dropped.process_error")
    )
    if internal and not getattr(caplog, "_llmpulse_errors_expected", False):
        details = "\n".join(r.getMessage() for r in caplog.records if r.exc_info)
        pytest.fail(f"llmpulse swallowed {internal} internal error(s):\n{details}")


@pytest.fixture
def expect_sdk_errors(caplog: pytest.LogCaptureFixture) -> None:
    """For tests that break SDK internals on purpose."""
    caplog._llmpulse_errors_expected = True  # type: ignore[attr-defined]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r
