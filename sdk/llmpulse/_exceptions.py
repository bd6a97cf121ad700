"""Exceptions raised by llmpulse.

The SDK raises only where the application asked for something that cannot work,
never from inside an instrumented call::

    LlmpulseError
     └── ConfigError      a bad option to init(), a decorator or a check (names the option)

Everything that goes wrong while recording or exporting spans is logged on the
``llmpulse`` logger and counted (see ``llmpulse.sdk_stats()``), never raised.
"""

from __future__ import annotations

__all__ = ["ConfigError", "LlmpulseError"]


class LlmpulseError(Exception):
    """Base class of every exception llmpulse raises."""


class ConfigError(LlmpulseError, ValueError):
    """A configuration value is invalid; the message names the option and what to fix."""
