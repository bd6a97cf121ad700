"""Versioned prompt templates: a prompt kept in git versions itself."""

from __future__ import annotations

import hashlib
import string
from typing import Any

from ._exceptions import ConfigError

__all__ = ["Prompt"]

_FORMATTER = string.Formatter()


class Prompt:
    """A named prompt template whose version defaults to a short hash of its text.

    Editing the template changes the version, so every span records exactly which
    wording produced it (``gen_ai.prompt.name`` and ``llmpulse.prompt.version``)::

        SUPPORT = llmpulse.Prompt("support-reply", "You are a casual support agent for {product}.")

        @llmpulse.llm(provider="openai", model="gpt-4o-mini", prompt=SUPPORT)
        def reply(question: str) -> ChatCompletion:
            system = SUPPORT.format(product="Acme")
            ...
    """

    __slots__ = ("_fields", "name", "template", "version")

    def __init__(self, name: str, template: str, version: str | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"Prompt name must be a non-empty string, got {name!r}")
        if not isinstance(template, str):
            raise ConfigError(f"Prompt template must be a string, got {type(template).__name__}")
        if version is not None and (not isinstance(version, str) or not version.strip()):
            raise ConfigError(f"Prompt version must be a non-empty string or None, got {version!r}")
        try:
            fields = {f for _, f, _, _ in _FORMATTER.parse(template) if f is not None}
        except ValueError as exc:
            raise ConfigError(f"Prompt {name!r}: template is not a valid format string: {exc}") from None
        self.name = name
        self.template = template
        self.version = version or hashlib.sha256(template.encode("utf-8")).hexdigest()[:12]
        self._fields = frozenset(fields)

    @property
    def variables(self) -> frozenset[str]:
        """The ``{placeholders}`` the template expects."""
        return self._fields

    def format(self, **variables: Any) -> str:
        """Fill the template; a missing variable raises ``KeyError`` naming it."""
        missing = {f.split(".")[0].split("[")[0] for f in self._fields} - variables.keys()
        missing.discard("")
        if missing:
            raise KeyError(f"Prompt {self.name!r} needs {', '.join(sorted(missing))}")
        return self.template.format(**variables)

    def __repr__(self) -> str:
        return f"Prompt({self.name!r}, version={self.version!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prompt):
            return NotImplemented
        return (self.name, self.template, self.version) == (other.name, other.template, other.version)

    def __hash__(self) -> int:
        return hash((self.name, self.version))
