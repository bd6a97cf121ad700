"""The compiled fast paths (``llmpulse._speedups``) against their plain definitions: the refusal
verdicts, redactions and extracted responses with them and without them.

The contracts (``_speedups.c``): ``Heads(heads).find(text, start)`` is the first ``i >= start``
where ``text[i]`` is a space followed by one of the heads, or -1; ``_refusal`` runs its regex
only at those positions, which must give the verdicts the regex alone gives.
``might_mask(text)`` is whether any of ``default_redact``'s prefilters lets a pattern run;
when it is False, the text has nothing to mask. ``ChatExtractor(...).extract(obj)`` is
``extract_response(obj)`` or None (left to Python).
"""

from __future__ import annotations

import dataclasses
import gc
import sys
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion
from responses import openai_completion
from test_refusal import _load

from llmpulse import _checks, _config, _extract, _llm, _redact, _refusal, _speedups
from llmpulse._checks import CheckContext
from llmpulse._extract import Extracted
from llmpulse._redact import _redact_unfiltered
from llmpulse._refusal import RefusalDetector, RefusalMatch
from llmpulse._span import SpanEvent

# _speedups is imported, not skipped when missing: `make test` builds it, and a build that
# silently failed must fail the suite rather than hide these tests (as in test_otlpenc.py).
from memory import traced_growth

# derandomized: the same examples every run, so the suite's time does not depend on the seed
SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)

BUILT_IN_HEADS = _refusal._compiled().group_heads[1:]


def reference_find(heads: Sequence[str], text: str, start: int) -> int:
    """The contract, spelled out."""
    for i in range(max(start, 0), len(text)):
        if text[i] == " " and any(text.startswith(head, i + 1) for head in heads):
            return i
    return -1


# --- the scan against its definition ---------------------------------------------------------

# A small alphabet, so heads occur often, partly and at the very end; the other characters
# take the text through every storage width (1, 2 and 4 bytes a character).
ALPHABET = ["a", "b", "i", "'", " ", "-", "\n", "é", "ÿ", "’", "İ", "\u0800", "😀", "\x00"]
heads_st = st.lists(st.text(alphabet="abi' -\x00", min_size=1, max_size=5), max_size=8)
texts_st = st.lists(st.sampled_from(ALPHABET), max_size=60).map("".join)
starts_st = st.integers(-3, 70) | st.sampled_from([-(2**70), 2**70])


@SETTINGS
@given(heads=heads_st, text=texts_st, start=starts_st)
def test_find_is_the_first_space_followed_by_a_head(heads: list[str], text: str, start: int) -> None:
    assert _speedups.Heads(heads).find(text, start) == reference_find(heads, text, start)


@SETTINGS
@given(text=st.lists(st.sampled_from([*BUILT_IN_HEADS, *ALPHABET, "i", "i'", " my", "can"]), max_size=30).map("".join))
def test_find_with_the_built_in_heads(text: str) -> None:
    scan = _speedups.Heads(BUILT_IN_HEADS)
    pos, want = 0, []
    while (pos := reference_find(BUILT_IN_HEADS, text, pos)) >= 0:
        want.append(pos)
        pos += 1
    got = []
    pos = 0
    while (pos := scan.find(text, pos)) >= 0:
        got.append(pos)
        pos += 1
    assert got == want


def reference_find_in_reply(heads: Sequence[str], text: str, limit: int) -> int:
    """find_in_reply's contract: find on the string detect() scans (-2 where a character's
    lowercase is longer than it)."""
    window = text[: max(limit, 0)]
    if "\u0130" in window:
        return -2
    return reference_find(heads, _refusal._blank(" " + window.replace("’", "'").lower()), 0)


# Every character the scan maps specially: both cases, the blanked ones, the curly apostrophe,
# the Kelvin sign (lowercase "k") and U+0130 (a lowercase two characters long).
REPLY_PIECES = [*BUILT_IN_HEADS, "I", "I’M ", "CAN", "\u212a", "\u0130", "*", "\n", "\t", "\r", " ", "é", "😀", "Σ"]


@SETTINGS
@given(
    text=st.lists(st.sampled_from(REPLY_PIECES), max_size=40).map("".join) | st.text(max_size=80),
    limit=st.integers(-2, 120) | st.sampled_from([_refusal.HEAD_CHARS, 2**70]),
)
def test_find_in_reply_is_find_on_the_scan_detect_builds(text: str, limit: int) -> None:
    assert _speedups.Heads(BUILT_IN_HEADS).find_in_reply(text, limit) == reference_find_in_reply(
        BUILT_IN_HEADS, text, limit
    )


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Sure, here it is.", -1),
        ("I can't help", 0),  # the leading space detect adds
        ("Well, I CAN'T", 6),  # lowercased
        ("**I can't** help", 2),  # asterisks read as spaces
        ("ok\nI can't", 3),
        ("I’m not able to", 0),  # the curly apostrophe folded
        ("I lac\u212a the tools", 0),  # the Kelvin sign's lowercase is "k": "i lack "
        ("\u0130 can", -2),  # its lowercase is two characters: Python builds the scan
        ("x" * 10 + " I can", -1),  # past the limit below
    ],
)
def test_find_in_reply_cases(text: str, found: int) -> None:
    scan = _speedups.Heads(BUILT_IN_HEADS)
    assert scan.find_in_reply(text, 12) == reference_find_in_reply(BUILT_IN_HEADS, text, 12) == found


def test_find_in_reply_on_long_replies() -> None:
    """Past the stack buffer: a scan longer than 1,024 characters."""
    scan = _speedups.Heads(BUILT_IN_HEADS)
    long = "x" * 3000 + " I can't help"
    assert scan.find_in_reply(long, 5000) == reference_find_in_reply(BUILT_IN_HEADS, long, 5000) == 3001
    assert scan.find_in_reply(long, 2000) == -1


@pytest.mark.parametrize(
    ("heads", "text", "start", "found"),
    [
        (["can"], " can", 0, 0),  # a head ending the text
        (["can"], " ca", 0, -1),  # cut short by the end
        (["can"], "can", 0, -1),  # no space before it
        (["can"], "x can", 2, -1),  # start is past the space
        (["can"], "x can", 1, 1),
        (["a"], "b  a", 0, 2),  # one-character head
        (["ab", "ac", "b"], " ad  b", 0, 4),
        (["ab"], " áb ab", 0, 3),  # non-ASCII next to a head
        (["i"], " İ", 0, -1),  # no case folding: the caller lowercases
        ([], " anything", 0, -1),
        (["x"], "", 0, -1),
        (["x"], " x", 5, -1),
    ],
)
def test_find_cases(heads: list[str], text: str, start: int, found: int) -> None:
    assert _speedups.Heads(heads).find(text, start) == found


@pytest.mark.parametrize("heads", [[""], ["é"], ["ok", 3], [b"ab"]])
def test_heads_must_be_non_empty_ascii_strings(heads: list[object]) -> None:
    with pytest.raises(ValueError, match="non-empty ASCII str"):
        _speedups.Heads(heads)  # type: ignore[arg-type]


def test_find_rejects_what_is_not_a_str() -> None:
    scan = _speedups.Heads(["a"])
    with pytest.raises(TypeError, match="must be str"):
        scan.find(b" a", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="two arguments"):
        scan.find(" a")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        scan.find(" a", "0")  # type: ignore[arg-type]


def test_heads_keep_their_strings_alive() -> None:
    heads = ["".join(("ca", "n"))]  # built at run time: not interned or shared
    scan = _speedups.Heads(heads)
    heads.clear()
    assert scan.find("x can", 0) == 1


# --- the refusal verdicts with and without it ------------------------------------------------


@pytest.fixture
def both_paths(monkeypatch: pytest.MonkeyPatch) -> tuple[RefusalDetector, pytest.MonkeyPatch]:
    compiled = _refusal._compiled()
    assert compiled.find_head is not None, "the built-in set must use the compiled scan here"
    return RefusalDetector(), monkeypatch


def verdicts(detector: RefusalDetector, monkeypatch: pytest.MonkeyPatch, text: str) -> list[RefusalMatch | None]:
    """detect(text) with the compiled scan, then with the regex alone."""
    out = [detector.detect(text)]
    plain = _refusal._compiled()._replace(find_head=None, find_in_reply=None)
    with monkeypatch.context() as m:
        m.setattr(_refusal, "_compiled", lambda: plain)
        out.append(detector.detect(text))
    return out


def test_same_verdicts_on_the_labelled_dataset(both_paths: tuple[RefusalDetector, pytest.MonkeyPatch]) -> None:
    detector, monkeypatch = both_paths
    flagged = 0
    for row in _load():
        fast, plain = verdicts(detector, monkeypatch, str(row["text"]))
        assert fast == plain, row["text"]
        flagged += fast is not None
    assert flagged >= 100  # the dataset's refusals are found (not a vacuous equality of Nones)


# Words that make heads, their tails, look-alikes and the characters the scan blanks.
WORDS = [*BUILT_IN_HEADS, "I", "I’m", "can’t", "cannot", "not", "help", "assist", "with", "that", "sorry,", "but"]
WORDS += ["here's", "wait", "As", "AI", "able", "to", "provide", "\n", "**", "\t", '"', "é", "😀", ".", "unable"]


@SETTINGS
@given(words=st.lists(st.sampled_from(WORDS), max_size=25), seps=st.lists(st.sampled_from([" ", "", "  ", "\n"])))
def test_same_verdicts_on_generated_replies(
    both_paths: tuple[RefusalDetector, pytest.MonkeyPatch], words: list[str], seps: list[str]
) -> None:
    detector, monkeypatch = both_paths
    text = "".join(w + (seps[i % len(seps)] if seps else " ") for i, w in enumerate(words))
    fast, plain = verdicts(detector, monkeypatch, text)
    assert fast == plain


# --- the redaction prefilter ------------------------------------------------------------------


def reference_might_mask(text: str) -> bool:
    """default_redact's prefilters, as _redact.py spells them with its shapes."""
    data = text.encode("utf-8", "surrogatepass")
    numbers = data.translate(_redact._NUMBER_SHAPE)
    has_digit = b"0" in numbers
    return (
        _redact._LONG_TOKEN_RUN in data.translate(_redact._TOKEN_SHAPE)
        or "@" in text
        or (has_digit and ("earer" in text or "EARER" in text))
        or (has_digit and (_redact._NUMBER_HINT.search(numbers) is not None or _redact._PLUS_HINT in numbers))
    )


# Every boundary of the conditions: token runs of 14/15 around non-token and non-ASCII
# characters, each separator class of the number shape, both spellings of "earer" and
# near misses, and characters of every storage width (lone surrogates included).
MASK_PIECES = [
    *"0123456789 -+.()/,_@aZ\n\té€😀", "\ud800", "\udfff", "earer", "EARER", "eArer", "earE", "Bearer ",
    "abcdefghijklmn", "ABCDEFGHIJKLMNO", "1234", "12", "0 000", "00-00 00", "000000000000", "+4", "(0)",
    "4111 1111 1111 1111", "202-555-0143", "bob@example.com", "sk-abc123", "é1234", "😀0",
]  # fmt: skip
mask_texts = st.lists(st.sampled_from(MASK_PIECES), max_size=25).map("".join)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
@given(st.one_of(mask_texts, st.text(max_size=120)))
def test_might_mask_is_the_prefilters_of_default_redact(text: str) -> None:
    might = _speedups.might_mask(text)
    assert might == reference_might_mask(text)
    if not might:
        assert _redact_unfiltered(text) == text  # nothing to mask: skipping the patterns is exact


@pytest.mark.parametrize(
    ("text", "might"),
    [
        ("", False),
        ("plain words, nothing else", False),
        ("a" * 14, False),  # one short of a key's run
        ("a" * 15, True),
        ("a" * 7 + "é" + "a" * 7, False),  # a non-ASCII character breaks the run
        ("x@y", True),
        ("Bearer tok", False),  # no digit
        ("bearer 1", True),
        ("BEARER 1", True),
        ("BeArEr 1", False),  # neither spelling the prefilter reads
        ("order 12345", False),
        ("call 0 123", True),  # 0[ -]000
        ("06 12 34", True),  # 00[ -]00[ -]00
        ("1234567890123", True),  # thirteen digits
        ("123456789012", False),
        ("+4", True),
        ("+ 4", False),
        ("12é345", False),
        ("1é 234", False),  # the é breaks "0 000" whatever its UTF-8 length
    ],
)
def test_might_mask_cases(text: str, might: bool) -> None:
    assert _speedups.might_mask(text) is might
    assert reference_might_mask(text) is might


def test_might_mask_rejects_what_is_not_a_str() -> None:
    with pytest.raises(TypeError, match="must be str"):
        _speedups.might_mask(b"x@y")  # type: ignore[arg-type]


# --- Chat Completions extraction ---------------------------------------------------------------


def python_extract(obj: object) -> Extracted:
    """extract_response with the compiled reader off: the reference."""
    saved = _extract._read_chat
    _extract._read_chat = None
    try:
        return _extract.extract_response(obj)
    finally:
        _extract._read_chat = saved


def same_record(a: Extracted, b: Extracted) -> None:
    """Field by field, value and type (True is not 1, a str subclass is not a str)."""
    for f in dataclasses.fields(Extracted):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert (x, type(x)) == (y, type(y)), f.name
        if isinstance(x, list):
            assert [type(i) for i in x] == [type(i) for i in y], f.name


class Text(str):
    """A str subclass: taken as a str by isinstance, not by exact checks."""


# Values each field may hold: the right type, the wrong ones, and the edges of each check.
TEXTS = st.sampled_from(["", "hi", "I can't help with that.", Text("sub"), "é😀"]) | st.none() | st.just(3)
REASONS = st.sampled_from(["stop", "", "length", "content_filter", "refusal", "tool_calls", Text("stop")])
REASONS = REASONS | st.none() | st.just(7)
COUNTS = st.sampled_from([0, 1, 512, 2**70, -1, True, 3.0, "12"]) | st.none()


def maybe(d: dict[str, Any], draw: Any) -> dict[str, Any]:
    """d without some of its keys."""
    return {k: v for k, v in d.items() if draw(st.booleans()) or k in ("choices",)}


@st.composite
def chat_dicts(draw: Any) -> dict[str, Any]:
    details = maybe({"cached_tokens": draw(COUNTS), "cache_write_tokens": draw(COUNTS)}, draw)
    usage = maybe(
        {
            "prompt_tokens": draw(COUNTS),
            "completion_tokens": draw(COUNTS),
            "prompt_tokens_details": draw(st.none() | st.just(details) | st.just(5)),
            "completion_tokens_details": draw(st.none() | st.just({"reasoning_tokens": draw(COUNTS)}) | st.just("x")),
            "input_tokens": draw(COUNTS),
        },
        draw,
    )
    message = maybe(
        {
            "role": "assistant",
            "content": draw(TEXTS | st.just([{"type": "text", "text": "part"}])),
            "refusal": draw(TEXTS),
            "tool_calls": draw(st.sampled_from([None, [], (), [{"id": "c", "function": {"name": "f"}}], "x"])),
            "function_call": draw(st.sampled_from([None, None, {"name": "f", "arguments": "{}"}])),
        },
        draw,
    )
    choices = [
        maybe({"index": i, "finish_reason": draw(REASONS), "message": message, "text": "legacy"}, draw)
        for i in range(draw(st.integers(0, 3)))
    ]
    body = {
        "id": draw(TEXTS),
        "model": draw(TEXTS),
        "choices": draw(st.sampled_from([list, tuple, lambda c: c[0] if c else None]))(choices),
        "usage": draw(st.none() | st.just(usage)),
    }
    return maybe(body, draw)


@SETTINGS
@given(body=chat_dicts())
def test_chat_extraction_of_dicts_is_the_python_one(body: dict[str, Any]) -> None:
    got = _extract._read_chat(body)  # type: ignore[misc]
    want = python_extract(body)
    if got is not None:
        same_record(got, want)


@SETTINGS
@given(body=chat_dicts(), extra=st.booleans())
def test_chat_extraction_of_openai_models_is_the_python_one(body: dict[str, Any], extra: bool) -> None:
    """The real openai types: validated where the body is valid (with an extra field when
    asked), built without validation otherwise (fields of any type, as a caller could)."""
    try:
        obj: Any = ChatCompletion.model_validate(
            {**body, "object": "chat.completion", "created": 1, **({"surprise": 1} if extra else {})}
        )
    except ValueError:
        obj = ChatCompletion.model_construct(**body)
    python_extract(obj)  # the Python path classifies the classes first, as in a real process
    got = _extract._read_chat(obj)  # type: ignore[misc]
    want = python_extract(obj)
    if got is not None:
        same_record(got, want)
    if extra and obj.__pydantic_extra__:
        assert got is None  # extra fields: read by Python, which merges them


def test_chat_extraction_reads_the_common_responses() -> None:
    """Not vacuous: the usual responses are read in C, and read right."""
    for body in (
        openai_completion(),
        openai_completion("Sorry, I can't help.", finish_reason="content_filter"),
        openai_completion(refusal="I can't."),
    ):
        for obj in (body, ChatCompletion.model_validate({**body, "created": 1})):
            python_extract(obj)
            got = _extract._read_chat(obj)  # type: ignore[misc]
            assert got is not None
            same_record(got, python_extract(obj))
            assert got.input_tokens is not None
            assert got.finish_reasons


def test_chat_extraction_leaves_other_shapes_to_python() -> None:
    for obj in ("text", None, 3, [1], {"content": [{"type": "text", "text": "x"}]}, {"output": []}, {"choices": "x"}):
        assert _extract._read_chat(obj) is None  # type: ignore[misc]

    class Fresh(ChatCompletion):
        pass

    fresh = Fresh.model_validate({**openai_completion(), "created": 1})
    assert _extract._read_chat(fresh) is None  # a class Python has not classified yet
    python_extract(fresh)
    assert _extract._read_chat(fresh) is not None


def test_chat_extractor_refuses_a_record_it_does_not_know() -> None:
    @dataclasses.dataclass(slots=True)
    class Other:
        response_model: str | None = None

    with pytest.raises(TypeError, match="not a plain slotted record"):
        _speedups.ChatExtractor({}, 1, Other)
    assert _extract._read_chat is not None  # the real one is known


EDGE_COUNTS = [0, 7, 2**70, -1, True, 3.0, "12", None]
COUNT_PATHS = [
    ("prompt_tokens",),
    ("completion_tokens",),
    ("prompt_tokens_details", "cached_tokens"),
    ("prompt_tokens_details", "cache_write_tokens"),
    ("completion_tokens_details", "reasoning_tokens"),
]


@pytest.mark.parametrize("path", COUNT_PATHS)
@pytest.mark.parametrize("value", EDGE_COUNTS)
@pytest.mark.parametrize("as_model", [False, True])
def test_chat_extraction_of_every_count(path: tuple[str, ...], value: object, as_model: bool) -> None:
    """Each token count at each edge, the others distinct, so a count read from the wrong
    field or kept when negative, a bool or a float shows."""
    body = openai_completion(prompt_tokens=11, completion_tokens=22, cached=33)
    body["usage"]["prompt_tokens_details"]["cache_write_tokens"] = 44
    body["usage"]["completion_tokens_details"]["reasoning_tokens"] = 55
    *parents, leaf = path
    node = body["usage"]
    for key in parents:
        node = node[key]
    node[leaf] = value
    obj: Any = body
    if as_model:
        obj = ChatCompletion.model_construct(**body)  # fields of any type, as a caller could build
        obj.usage = CompletionUsage.model_construct(**body["usage"])
        python_extract(obj)
    got = _extract._read_chat(obj)  # type: ignore[misc]
    if value is None and path[0] in ("prompt_tokens", "completion_tokens"):
        pass  # one of the two may be missing; whether C reads it is its business
    else:
        assert got is not None
    if got is not None:
        same_record(got, python_extract(obj))


def _leak_cases() -> list[Any]:
    """Responses that take each way out: read in C (dict, model), left at each step."""
    full = openai_completion(refusal="no")
    model = ChatCompletion.model_validate({**openai_completion(), "created": 1})
    no_usage = {**openai_completion(), "usage": None}
    tools = openai_completion()
    tools["choices"][0]["message"]["tool_calls"] = [{"id": "c"}]
    anthropic_usage = {**openai_completion(), "usage": {"input_tokens": 3}}
    bad_details = openai_completion()
    bad_details["usage"]["completion_tokens_details"] = "x"
    cases = [full, model, no_usage, tools, anthropic_usage, bad_details, {"choices": "x"}, "text"]
    for case in cases:
        python_extract(case)  # classify the model classes
    return cases


def test_chat_extraction_leaks_no_memory() -> None:
    cases = _leak_cases()

    def read_all() -> None:
        for case in cases:
            _extract._read_chat(case)  # type: ignore[misc]

    grown = traced_growth(read_all, 3000)
    assert grown < 16_384, grown  # one leaked object a call would be 24,000 x 16+ bytes


def test_chat_extraction_keeps_no_references() -> None:
    """Every object read has the same reference count after as before, on each way out."""

    def parts(obj: Any, depth: int = 0) -> list[Any]:
        found = [obj]
        if depth < 6:
            items = obj.__dict__ if hasattr(obj, "__pydantic_fields__") else obj
            if isinstance(items, dict):
                for key, value in items.items():
                    found += [key, *parts(value, depth + 1)]
            elif isinstance(items, list | tuple):
                for value in items:
                    found += parts(value, depth + 1)
        return found

    for case in _leak_cases():
        objects = parts(case)
        before = [sys.getrefcount(o) for o in objects]
        for _ in range(50):
            _extract._read_chat(case)  # type: ignore[misc]
        after = [sys.getrefcount(o) for o in objects]
        # A reference kept or dropped by a call shows as 50 (or 25) here. Shared objects (dict
        # keys, "stop", None) may also move by a few while another test's thread winds down.
        leaks = [(o, b, a) for o, b, a in zip(objects, before, after, strict=True) if abs(a - b) >= 20]
        assert not leaks, (case, leaks)


# --- slotted records built without their __init__ ---------------------------------------------


CONTEXT_VALUES = [
    ("out", 0.5, None, 0.01, True, "gpt-4o", {"raw": 1}),
    (Text("sub"), 0, 1.5, None, False, None, None),
]


@pytest.mark.parametrize("values", CONTEXT_VALUES)
def test_make_context_is_the_dataclass_built_in_c(values: tuple[Any, ...]) -> None:
    assert isinstance(_checks.make_context, _speedups.SlotMaker)  # the compiled one is under test
    fast = _checks.make_context(*values)
    for other in (CheckContext(*values), _checks._make_context(*values)):
        assert fast == other
        assert [type(getattr(fast, f)) for f in _checks._CONTEXT_FIELDS] == [
            type(getattr(other, f)) for f in _checks._CONTEXT_FIELDS
        ]
    assert fast.response is values[6]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.output = "x"  # type: ignore[misc]


def test_span_events_are_built_in_c_with_the_same_slots() -> None:
    assert isinstance(_llm._new_event, _speedups.SlotMaker)
    attrs: dict[str, Any] = {"k": "v"}
    fast, slow = _llm._new_event("n", 7, attrs), SpanEvent("n", 7, attrs)
    assert type(fast) is SpanEvent
    assert (fast.name, fast.time_ns, fast.attributes) == (slow.name, slow.time_ns, slow.attributes)
    assert fast.attributes is attrs


class _CustomNew:
    __slots__ = ("a",)

    def __new__(cls) -> _CustomNew:
        return super().__new__(cls)


class _Prop:
    __slots__ = ("a",)

    @property
    def b(self) -> int:
        return 1


class _Two:
    __slots__ = ("a", "b")


@pytest.mark.parametrize(
    ("cls", "names"),
    [
        (_CustomNew, ("a",)),  # its own __new__ would not run
        (_Prop, ("a", "b")),  # b is not a slot
        (_Two, ("a",)),  # b would be left unset
        (_Two, ("a", "b", "c")),
        (_Two, ("a", "a")),
        (dict, ()),
    ],
)
def test_slot_maker_refuses_what_it_cannot_build(cls: type, names: tuple[str, ...]) -> None:
    with pytest.raises(TypeError, match="not a plain slotted record"):
        _speedups.SlotMaker(cls, names)


def test_slot_maker_takes_exactly_its_positional_values() -> None:
    make = _speedups.SlotMaker(_Two, ("b", "a"))  # any order: values go to the named slots
    two = make(1, 2)
    assert (two.a, two.b) == (2, 1)
    with pytest.raises(TypeError, match="takes 2 positional arguments, got 1"):
        make(1)
    with pytest.raises(TypeError):
        make(1, b=2)


def test_slot_maker_holds_one_reference_a_value_and_releases_it() -> None:
    make = _speedups.SlotMaker(_Two, ("a", "b"))
    values = [object(), "".join(["x", "y"])]
    before = [sys.getrefcount(v) for v in values]
    made = [make(*values) for _ in range(10)]
    assert [sys.getrefcount(v) for v in values] == [b + 10 for b in before]
    del made
    gc.collect()
    assert [sys.getrefcount(v) for v in values] == before


def test_a_part_bound_to_a_class_of_another_shape_costs_speed_not_the_import() -> None:
    """speedup() gives None (the Python path) when a class no longer fits the C code."""
    assert _config.speedup("SlotMaker", _Two, ("a",)) is None
    assert _config.speedup("Heads", ["é"]) is None
    assert isinstance(_config.speedup("SlotMaker", _Two, ("a", "b")), _speedups.SlotMaker)
