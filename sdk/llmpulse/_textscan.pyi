"""Types of the compiled refusal head scan (``_textscan.c``; contract in its comments)."""

from collections.abc import Iterable

class Heads:
    def __init__(self, heads: Iterable[str], /) -> None: ...
    def find(self, text: str, start: int, /) -> int: ...
