"""Masking of personal data and secrets in captured prompts and replies.

:func:`default_redact` runs on every captured text (a few KB per model call) before
anything leaves the process. What it masks, in this order (secrets first, so that the
digits of a key are never read as a phone number):

- API keys and secrets → ``[REDACTED_KEY]``: OpenAI ``sk-`` / ``sk-proj-``, Anthropic
  ``sk-ant-``, AWS access key ids ``AKIA`` / ``ASIA``, GitHub ``ghp_`` ``gho_`` ``ghu_``
  ``ghs_`` ``ghr_`` ``github_pat_``, Slack ``xox[abprs]-``, Google ``AIza``, Stripe
  ``sk_live_`` ``rk_live_`` (and ``_test_``), JWTs ``eyJ….eyJ….…``, and the token after
  ``Bearer`` (16+ characters with a digit and a letter; the word itself is kept). A key
  is not glued to a preceding word character, so ``ask-…``, ``task_…`` and ``risk-…``
  stay;
- emails → ``[REDACTED_EMAIL]``;
- payment card numbers → ``[REDACTED_CARD]``: 13 to 19 Luhn-valid digits, in one piece
  or in groups split by single spaces or dashes (4-4-4-4, 4-6-5 …), not glued to a word,
  a decimal point or a ``+`` phone number;
- phone numbers → ``[REDACTED_PHONE]``: international (``+44 20 7946 0958``,
  ``+1-202-555-0143``, ``+12025550143``: 8 to 15 digits), North American
  (``(202) 555-0143``, ``202-555-0143``, ``202.555.0143``) and European national numbers
  with a trunk 0 and a separator (``0151 12345678``, ``020 7946 0958``,
  ``06 12 34 56 78``). A bare run of digits without ``+`` is never taken for a phone
  number, so years, prices, order numbers, versions, ISO dates and times stay.

Most texts hold nothing to mask, so the full patterns sit behind prefilters that look at
the whole text in C at memchr-like speed: the text's UTF-8 bytes are translated into
two "shapes" (one with every token character as ``a``, one with every digit as ``0`` and
separators kept), and cheap substring tests on those say whether a key (a run of 15
token characters), a card or a phone number (a few digits close together) can be
present at all. Each prefilter accepts a superset of what its patterns match, so it
changes the speed, never the result (``_redact_unfiltered`` is the reference the tests
compare with). For ASCII text the patterns then run only where the shapes point.
Where the C extension ``_speedups`` is built, the same conditions are read from the text's
characters in one pass first, without building the shapes (``LLMPULSE_PURE_PYTHON=1`` turns
it off). ``bench/redact_bench.py`` measures it.

Redacting twice gives the same text as redacting once: no placeholder matches a pattern,
and nothing starts right after one.
"""

from __future__ import annotations

import inspect
import re
import string
from collections.abc import Callable, Iterable

from llmpulse._config import speedup
from llmpulse._exceptions import ConfigError

_might_mask: Callable[[str], bool] | None = speedup("might_mask")  # None: the shapes below decide

__all__ = ["Redactor", "default_redact", "resolve_redactor"]

Redactor = Callable[[str], str]

EMAIL = "[REDACTED_EMAIL]"
PHONE = "[REDACTED_PHONE]"
CARD = "[REDACTED_CARD]"
KEY = "[REDACTED_KEY]"


def _shape_table(mapping: dict[str, str], other: str) -> bytes:
    """A bytes.translate table sending each character of a key to its value, the rest to
    ``other`` (every byte of a non-ASCII character included)."""
    table = bytearray(ord(other) for _ in range(256))
    for chars, to in mapping.items():
        for byte in chars.encode():
            table[byte] = ord(to)
    return bytes(table)


# Token characters -> "a", anything else -> " ".
_TOKEN_SHAPE = _shape_table({string.ascii_letters + string.digits + "_-": "a"}, " ")
# Digits -> "0", the separators of phone and card numbers -> " " or "-", "+" stays.
_NUMBER_SHAPE = _shape_table({string.digits: "0", " .()/": " ", "-": "-", "+": "+"}, "x")

# --- secrets ---------------------------------------------------------------------------

# Every key pattern starts with at least this many token characters in a row (sk-… 23,
# sk_live_… 18, AKIA… 20, gh?_… 34, xox?-… 15, AIza… 34, a JWT's header 15).
_MIN_KEY_RUN = 15
_LONG_TOKEN_RUN = b"a" * _MIN_KEY_RUN
_LONG_TOKEN_RUNS = re.compile(b"a" * _MIN_KEY_RUN + b"+")

_T = r"[A-Za-z0-9_-]"  # base64url / token characters
_KEY = re.compile(
    rf"(?<!{_T})(?:"
    # OpenAI sk-… / sk-proj-…, Anthropic sk-ant-…: long, and holding a digit, so that
    # hyphenated words such as "sk-learn-compatible-estimators" are not keys.
    rf"sk-(?=[A-Za-z_-]*[0-9]){_T}{{20,}}"
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    rf"|AIza{_T}{{30,}}"
    rf"|eyJ{_T}{{12,}}\.eyJ{_T}{{4,}}\.{_T}*"
    r")"
)
# The token after "Bearer": 16 characters or more, holding a digit and a letter, so that
# prose ("the bearer of news", "Bearer instruments.", "bearer 2024-01-15") is left
# alone. Real tokens are long and random.
_BEARER = re.compile(
    r"(?<![A-Za-z])((?i:bearer)\s+)"
    r"(?=[A-Za-z._~+/=-]*[0-9])(?=[0-9._~+/=-]*[A-Za-z])[A-Za-z0-9._~+/=-]{16,}"
)


def _mask_keys(text: str, tokens: bytes) -> str:
    if len(tokens) != len(text):  # not ASCII: shape offsets are not text offsets
        return _KEY.sub(KEY, text)
    # A key starts where a long run of token characters starts (the pattern's
    # lookbehind), so try the pattern there only instead of at every position.
    parts: list[str] = []
    done = 0
    for run in _LONG_TOKEN_RUNS.finditer(tokens):
        start = run.start()
        if start < done:  # inside the previous key (a JWT spans several runs)
            continue
        match = _KEY.match(text, start)
        if match is not None:
            parts.append(text[done:start])
            parts.append(KEY)
            done = match.end()
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


# --- emails ----------------------------------------------------------------------------

# The local part starts where its run of characters starts (the lookbehind), which keeps
# the search linear, and not right after a placeholder: a run too long to be a local
# part stays so when a card in it is masked. It has at most 64 characters and the domain at most 255 (RFC 5321),
# which lets _mask_emails look only near each "@".
_MAX_LOCAL = 64
_MAX_DOMAIN = 255
_EMAIL = re.compile(
    rf"(?<![A-Za-z0-9._%+\]-])[A-Za-z0-9._%+-]{{1,{_MAX_LOCAL}}}@"
    rf"(?=[A-Za-z0-9.-]{{1,{_MAX_DOMAIN}}}(?![A-Za-z0-9.-]))"
    r"(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![A-Za-z0-9-])"
)


def _mask_emails(text: str) -> str:
    parts: list[str] = []
    done = 0
    at = text.find("@")
    while at >= 0:
        # The window holds the longest local part, the longest domain and the character
        # after it that the lookahead reads.
        match = _EMAIL.search(text, max(done, at - _MAX_LOCAL), at + _MAX_DOMAIN + 2)
        if match is None:
            at = text.find("@", at + 1)
            continue
        parts.append(text[done : match.start()])
        parts.append(EMAIL)
        done = match.end()
        at = text.find("@", done)
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


# --- numbers ---------------------------------------------------------------------------

# In the number shape every card this module masks contains "0 000" (a group of 4+
# digits, a separator, a group of 3+) or 13 "0"s in a row; every national phone number
# "0 000" or "00 00 00"; every international one "+0". Years, prices, versions, dates
# and times do not, and the literal first byte of the pattern makes the search fast.
_NUMBER_HINT = re.compile(rb"0(?:[ -]000|0[ -]00[ -]00|0{12})")
_PLUS_HINT = b"+0"

# Number patterns are ASCII (\d is [0-9], \w is [A-Za-z0-9_]) like the shape. Each
# starts with its first character and looks at what precedes it in a lookbehind after
# that, so the regex engine can skip to candidate characters quickly.

# A run of at least 13 digits with single spaces or dashes between them, taken whole
# (it starts after no digit and no "digit-separator"); _card finds the card in it.
_CARD_RUN = re.compile(r"\d(?<!\d\d)(?<!\d[ -]\d)(?:[ -]?\d){12,}(?!\w|[.,]\d)", re.ASCII)
# A run glued to one of these cannot start with a card: it goes on a word, a decimal
# number, a "+" phone number, or a placeholder (so that a second pass masks nothing new).
_CARD_GLUE = frozenset(string.ascii_letters + string.digits + "_.,+]")
_GROUP = re.compile(r"\d+", re.ASCII)

_PHONE = re.compile(
    # The first character, not glued to a word, a number, a sign or a placeholder.
    r"[+(\d](?<![\w+.,/\]-].)"
    r"(?:"
    # International: +CC (the one-digit codes are 1 and 7), an optional (0) or (area),
    # then up to 5 groups of digits, all but the first of 2 digits or more.
    r"(?<=\+)(?:[17]|[2-9]\d{1,2})(?:[ .-]?\(\d{1,4}\))?[ .-]?\d{1,5}(?:[ .-]?\d{2,5}){0,4}"
    # North American: (202) 555-0143, 202-555-0143, 202.555.0143, 202 555 0143.
    r"|(?<=\()\d{3}\)[ .-]?\d{3}[ .-]\d{4}"
    r"|(?<=\d)\d{2}([ .-])\d{3}\1\d{4}"
    # European national with a trunk 0: 0151 12345678, 020 7946 0958, 030-1234567.
    r"|(?<=0)\d{2,4}[ /-]\d{3,4}[ -]?\d{3,4}"
    # French style pairs: 06 12 34 56 78, 06.12.34.56.78.
    r"|(?<=0)\d([ .-])\d{2}(?:\2\d{2}){3}"
    r")(?!\w|[.,/-]?\d)",
    re.ASCII,
)
# Neither pattern consumes a character the number shape maps to "x", and their
# lookaheads read at most this many characters past the match.
_LOOKAHEAD = 2


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str | None:
    """Mask the Luhn-valid cards in a run of digit groups such as "4111 1111 1111 1111 12".

    A card spans whole groups, 13 to 19 digits, starting with a group of at least 4
    digits followed by one of at least 3 (every scheme prints its number as 4-4-4-4,
    4-6-5, 4-6-4, 4-4-4-4-3 or in one piece); from each start the longest valid span
    wins. So "2 4111 1111 1111 1111" and "4111 1111 1111 1111 12" mask the card and
    nothing else. A first group glued to a word or a number (see _CARD_GLUE) is not a
    start. None: nothing to mask.
    """
    text = match.group()
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(text)]
    parts: list[str] = []
    done = 0  # text[:done] is in parts already
    at = match.start()
    i = 1 if at > 0 and match.string[at - 1] in _CARD_GLUE else 0
    while i < len(groups):
        start, end = groups[i]
        best = -1
        if end - start >= 4:
            digits = ""
            for j in range(i, len(groups)):
                group = text[groups[j][0] : groups[j][1]]
                if j == i + 1 and len(group) < 3:
                    break
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and _luhn_ok(digits):
                    best = j
        if best < 0:
            i += 1
            continue
        parts.append(text[done:start])
        parts.append(CARD)
        done = groups[best][1]
        i = best + 1
    if not parts:
        return None
    parts.append(text[done:])
    return "".join(parts)


def _phone(match: re.Match[str]) -> str | None:
    text = match.group()
    if text[0] == "+" and not 8 <= sum(ch.isdigit() for ch in text) <= 15:
        return None
    return PHONE


_Replace = Callable[[re.Match[str]], str | None]


# Past this many clusters the plain scan of the whole text is as fast as visiting them.
_MAX_CLUSTERS = 16


def _clusters(numbers: bytes) -> list[tuple[int, int]] | None:
    """The stretches of digits and separators (no "x" in the shape) that hold a hint,
    in order; None when there are more than _MAX_CLUSTERS."""
    hints: Iterable[int] = (m.start() for m in _NUMBER_HINT.finditer(numbers))
    if _PLUS_HINT in numbers:
        plus = [m.start() for m in re.finditer(re.escape(_PLUS_HINT), numbers)]
        hints = sorted([*hints, *plus])
    clusters: list[tuple[int, int]] = []
    right = -1
    for hint in hints:
        if hint < right:
            continue
        if len(clusters) == _MAX_CLUSTERS:
            return None
        left = numbers.rfind(b"x", 0, hint) + 1
        right = numbers.find(b"x", hint)
        if right < 0:
            right = len(numbers)
        clusters.append((left, right))
    return clusters


def _sub_in(
    pattern: re.Pattern[str],
    replace: _Replace,
    text: str,
    clusters: list[tuple[int, int]] | None,
) -> str:
    """``pattern.sub`` with ``replace`` returning None for "leave it", looking only
    inside ``clusters`` (all of the text when None).

    Every match lies inside one cluster and only matches inside a cluster with a hint can
    be masked, so the clusters give what the whole text gives. ``finditer`` from a start
    position still sees the text before it for the lookbehinds, and the end position is
    moved past the cluster by what the lookaheads read.
    """
    if clusters is None:
        return pattern.sub(lambda m: replace(m) or m.group(), text)
    parts: list[str] = []
    done = 0
    for left, right in clusters:
        for match in pattern.finditer(text, left, right + _LOOKAHEAD):
            if match.start() >= right:
                break
            masked = replace(match)
            if masked is not None:
                parts.append(text[done : match.start()])
                parts.append(masked)
                done = match.end()
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def _mask_numbers(text: str, numbers: bytes) -> str:
    # Shape offsets are text offsets for ASCII text only; otherwise scan the whole text.
    clusters = _clusters(numbers) if len(numbers) == len(text) else None
    masked = _sub_in(_CARD_RUN, _card, text, clusters)
    if masked is not text and clusters is not None:  # phones: look in what cards left
        clusters = _clusters(masked.encode("ascii").translate(_NUMBER_SHAPE))
    return _sub_in(_PHONE, _phone, masked, clusters)


def default_redact(text: str) -> str:
    """Mask emails, phone numbers, payment card numbers and API keys in ``text``.

    Returns ``text`` itself when there is nothing to mask::

        >>> default_redact("mail bob@example.com or call +1-202-555-0143")
        'mail [REDACTED_EMAIL] or call [REDACTED_PHONE]'
    """
    if _might_mask is not None and not _might_mask(text):
        return text  # what the prefilters below decide, read in one pass in C
    original = text
    data = text.encode("utf-8", "surrogatepass")
    # The shapes describe the original text. Masking a key or an email only removes
    # candidates for the later patterns, so the later prefilters stay supersets.
    tokens = data.translate(_TOKEN_SHAPE)
    if _LONG_TOKEN_RUN in tokens:
        text = _mask_keys(text, tokens)
    numbers = data.translate(_NUMBER_SHAPE)
    has_digit = b"0" in numbers
    if has_digit and ("earer" in text or "EARER" in text):
        text = _BEARER.sub(rf"\g<1>{KEY}", text)
    if "@" in text:
        text = _mask_emails(text)
    if has_digit and (_NUMBER_HINT.search(numbers) is not None or _PLUS_HINT in numbers):
        if text is not original:  # masked above: take the shape of what is left
            numbers = text.encode("utf-8", "surrogatepass").translate(_NUMBER_SHAPE)
        text = _mask_numbers(text, numbers)
    return text


def _redact_unfiltered(text: str) -> str:
    """What :func:`default_redact` must return, with every pattern run on the whole text.

    The specification the prefilters are tested against, and the benchmark's baseline.
    """
    text = _KEY.sub(KEY, text)
    text = _BEARER.sub(rf"\g<1>{KEY}", text)
    text = _EMAIL.sub(EMAIL, text)
    text = _sub_in(_CARD_RUN, _card, text, None)
    return _sub_in(_PHONE, _phone, text, None)


def resolve_redactor(value: bool | Redactor | None, option: str = "redact") -> Redactor | None:
    """Turn the ``redact`` option into a function, or ``None`` for no redaction.

    ``True`` gives :func:`default_redact`, ``False`` and ``None`` give ``None``, and a
    function ``str -> str`` is used as is (call :func:`default_redact` inside it to add
    masks of your own). Anything else raises :class:`ConfigError` naming ``option``.
    """
    if value is True:
        return default_redact
    if value is False or value is None:
        return None
    candidate: object = value  # typed loosely: the check is for callers who are not
    if isinstance(candidate, (bool, str, bytes)) or not callable(candidate):
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:59] + "…"
        raise ConfigError(
            f"{option} must be True, False, None or a function str -> str, got {type(value).__name__} {shown}"
        )
    call = getattr(type(value), "__call__", None)  # noqa: B004 - the class's __call__
    if inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(call):
        raise ConfigError(f"{option} must be a plain function str -> str; async functions are not supported")
    return value
