"""Types of the compiled scans in front of the refusal and redaction regexes (``_textscan.c``;
contracts in its comments)."""

from collections.abc import Iterable

class Heads:
    def __init__(self, heads: Iterable[str], /) -> None: ...
    def find(self, text: str, start: int, /) -> int: ...

def might_mask(text: str, /) -> bool: ...
