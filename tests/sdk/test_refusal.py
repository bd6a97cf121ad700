"""Tests for the refusal-detection heuristic (llmpulse._refusal)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from llmpulse._exceptions import ConfigError
from llmpulse._refusal import (
    CATEGORIES,
    DEFAULT_PATTERNS,
    HEAD_CHARS,
    RefusalDetector,
    RefusalMatch,
    _compiled,
)

DATASET = Path(__file__).parent / "data" / "refusals.jsonl"


@pytest.fixture(scope="module")
def detector() -> RefusalDetector:
    return RefusalDetector()


def _load() -> list[dict[str, object]]:
    with DATASET.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- the labelled dataset --------------------------------------------------------------


def test_dataset_is_large_and_well_formed() -> None:
    rows = _load()
    for row in rows:
        assert set(row) <= {"text", "refusal", "note"}, row
        assert isinstance(row["text"], str)
        assert row["text"]
        assert isinstance(row["refusal"], bool)
    texts = [row["text"] for row in rows]
    assert len(set(texts)) == len(texts), "duplicate texts"
    refusals = [row for row in rows if row["refusal"]]
    others = [row for row in rows if not row["refusal"]]
    hard = [row for row in others if "hard negative" in str(row.get("note", ""))]
    # Guard against making the measure easier by deleting examples.
    assert len(refusals) >= 110
    assert len(others) >= 110
    assert len(hard) >= 40


def test_precision_and_recall_on_dataset(detector: RefusalDetector) -> None:
    tp = fp = fn = 0
    wrong: list[str] = []
    for row in _load():
        text = str(row["text"])
        flagged = detector.detect(text) is not None
        if flagged and row["refusal"]:
            tp += 1
        elif flagged:
            fp += 1
            wrong.append(f"false positive: {text[:120]!r}")
        elif row["refusal"]:
            fn += 1
            wrong.append(f"missed refusal: {text[:120]!r}")
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall)
    summary = f"precision={precision:.3f} recall={recall:.3f} f1={f1:.3f} (tp={tp} fp={fp} fn={fn})"
    print(summary)
    for line in wrong:
        print(line)
    assert precision >= 0.95, summary + "\n" + "\n".join(wrong)
    assert recall >= 0.95, summary + "\n" + "\n".join(wrong)


# --- targeted phrasings -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I’m sorry, but I can’t help with that.",
        "I cannot assist with that request.",
        "I cannot help with this.",
        "I won't be able to do that.",
        "As an AI language model, I cannot browse the web.",
        "I'm not able to provide that information.",
        "I must decline.",
        "I can't help with that.",
        "That's not something I can help with.",
        "That’s not something I can help with.",
        "I'm unable to comply.",
        "Sorry, I can't do that.",
        "I apologize, but I cannot fulfill this request.",
        "Writing that would go against my guidelines.",
        "That request is against my content policies.",
        "**I can't help with that.**",
        "Thanks for asking!\n\nUnfortunately I can't share that.",
        "i cant help with that lol",
        "I CAN'T HELP WITH THAT.",
    ],
)
def test_refusals_match(detector: RefusalDetector, text: str) -> None:
    assert detector.detect(text) is not None


LONG_ANSWER = (
    "Here is the evaluation report you asked for. " * 12
    + "In one run the model replied 'I can't help with that' to a benign question."
)


@pytest.mark.parametrize(
    "text",
    [
        "I can't wait to help!",
        "I'm sorry to hear that your order was late. Here's what I can do: a $10 credit.",
        "Sorry for the delay! Here is the summary.",
        "I cannot stress enough how important backups are.",
        "I can't believe how easy this is.",
        "Unfortunately, the store closes at 6pm.",
        "No problem, I can help with that!",
        "I won't forget to add tests.",
        "As an AI enthusiast, I love this question.",
        "I can't help but notice the off-by-one error.",
        "I can't recommend this library enough.",
        "I can't give you an exact date, but it usually takes 3 days.",
        "The bot said “I can’t help with that” and the user left.",
        "return \"I'm sorry, but I can't help with that.\"",
        '{"label": "refusal", "evidence": "I cannot assist with that request"}',
        "`I can't help with that` is a common refusal string.",
        "haha i can't wait, this is gonna be great",
        "I can't access the internet, but based on my training data it was 39 million.",
        LONG_ANSWER,
    ],
)
def test_look_alikes_do_not_match(detector: RefusalDetector, text: str) -> None:
    assert detector.detect(text) is None


# --- categories -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I can't help with that. Making explosives is dangerous and illegal.", "unsafe"),
        ("I won't write malware that steals passwords.", "unsafe"),
        ("I'm sorry, but I can't share personal information about private individuals.", "privacy"),
        ("I can't help find someone's home address.", "privacy"),
        ("I'm not able to provide medical advice. Please see a doctor.", "professional_advice"),
        ("I can't give legal advice about your case.", "professional_advice"),
        ("Sorry, I can't offer financial advice on which stocks to buy.", "professional_advice"),
        ("I don't have access to real-time data, so I can't check prices.", "capability"),
        ("I'm not able to browse the internet.", "capability"),
        ("I can't help with that; it goes against my guidelines.", "policy"),
        ("This request violates our content policy, so I'm unable to produce it.", "policy"),
        ("I can't help with that.", None),
        ("I'm not able to help you with that request.", None),
    ],
)
def test_categories(detector: RefusalDetector, text: str, category: str | None) -> None:
    match = detector.detect(text)
    assert match is not None
    assert match.category == category
    assert match.category is None or match.category in CATEGORIES


def test_first_keyword_decides_the_category(detector: RefusalDetector) -> None:
    match = detector.detect("I can't give medical advice about dosages; that could also be dangerous.")
    assert match is not None
    assert match.category == "professional_advice"


def test_match_carries_the_pattern(detector: RefusalDetector) -> None:
    match = detector.detect("I'm sorry, but I can't help with that.")
    assert match is not None
    assert match.pattern in DEFAULT_PATTERNS


def test_refusal_match_is_frozen_with_slots() -> None:
    match = RefusalMatch(category="unsafe", pattern="x")
    assert not hasattr(match, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        match.category = "policy"  # type: ignore[misc]


# --- custom patterns --------------------------------------------------------------------


def test_patterns_replace_the_built_in_set() -> None:
    detector = RefusalDetector(patterns=[r"\bcomputer says no\b"])
    assert detector.detect("I can't help with that.") is None
    match = detector.detect("Computer says NO.")
    assert match == RefusalMatch(category=None, pattern=r"\bcomputer says no\b")


def test_empty_patterns_detect_nothing() -> None:
    assert RefusalDetector(patterns=[]).detect("I can't help with that.") is None


def test_extra_patterns_add_to_the_built_in_set() -> None:
    detector = RefusalDetector(extra_patterns=[r"^nope\b", r"\bno dice\b"])
    assert detector.detect("I can't help with that.") is not None
    match = detector.detect("No dice, that's illegal.")
    assert match is not None
    assert match.pattern == r"\bno dice\b"
    assert match.category == "unsafe"


def test_patterns_and_extra_patterns_combine() -> None:
    detector = RefusalDetector(patterns=["alpha"], extra_patterns=["beta"])
    assert detector.detect("... BETA ...") == RefusalMatch(None, "beta")
    assert detector.detect("... alpha ...") == RefusalMatch(None, "alpha")
    assert detector.detect("I can't help with that.") is None


def test_custom_patterns_see_straight_apostrophes() -> None:
    detector = RefusalDetector(patterns=["won't do it"])
    assert detector.detect("I won’t do it.") is not None


def test_custom_pattern_with_backreference() -> None:
    # Joining into one alternation would renumber groups; such patterns run on their own.
    detector = RefusalDetector(patterns=[r"(x)y", r"\b(\w+) \1\b"])
    match = detector.detect("no no, not that")
    assert match is not None
    assert match.pattern == r"\b(\w+) \1\b"
    assert detector.detect("no, not that") is None


def test_custom_pattern_with_global_flag() -> None:
    # "(?x)" is only valid at the start of a whole expression, so it cannot be joined.
    detector = RefusalDetector(patterns=["alpha", r"(?x) nope \b"])
    assert detector.detect("nope.") == RefusalMatch(None, r"(?x) nope \b")
    assert detector.detect("alpha") == RefusalMatch(None, "alpha")


@pytest.mark.parametrize("option", ["patterns", "extra_patterns"])
def test_invalid_pattern_raises_config_error(option: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        RefusalDetector(**{option: ["fine", "bad(pattern"]})
    message = str(excinfo.value)
    assert "refusal_patterns" in message
    assert "bad(pattern" in message
    assert option in message


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="refusal_patterns"):
        RefusalDetector(patterns=["[unclosed"])


def test_single_string_instead_of_a_sequence_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"refusal_patterns.*wrap it in a list"):
        RefusalDetector(patterns="i can't")


def test_empty_pattern_is_rejected() -> None:
    with pytest.raises(ConfigError, match="refusal_patterns"):
        RefusalDetector(extra_patterns=[""])


# --- edge inputs ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "\n\n", "I", "*", '"'])
def test_empty_and_tiny_inputs(detector: RefusalDetector, text: str) -> None:
    assert detector.detect(text) is None


def test_very_long_text_finishes_and_is_correct(detector: RefusalDetector) -> None:
    one_mb = 1024 * 1024
    assert detector.detect("I can't help with that. " + "x" * one_mb) is not None
    assert detector.detect("Here you go. " * (one_mb // 13)) is None
    # Adversarial: every word is a pattern head or a near miss; the head bound keeps it
    # linear, and the regexes have no nested quantifiers to backtrack through.
    assert detector.detect("i can " * (one_mb // 6)) is None
    assert detector.detect("i'm not " * (one_mb // 8)) is None
    assert detector.detect("'" * one_mb) is None
    assert detector.detect("a " * (one_mb // 2) + "I can't help with that.") is None


def test_only_the_head_is_read(detector: RefusalDetector) -> None:
    filler = "The quick brown fox jumps over the lazy dog. "
    padding = filler * (HEAD_CHARS // len(filler) + 1)
    assert detector.detect(padding + "I can't help with that.") is None
    assert detector.detect(filler + "I can't help with that.") is not None


@pytest.mark.parametrize(
    "text",
    [
        "🙏 I’m sorry, but I can’t help with that.",
        "¡Hola! I'm sorry, but I can't help with that.",
        # "İ".lower() is two characters long: offsets must stay consistent.
        "İİİ İstanbul trip? Sorry, I can't help with that.",
        "Ünfortunately… I can’t assist with that request.",
    ],
)
def test_non_ascii_refusals(detector: RefusalDetector, text: str) -> None:
    assert detector.detect(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "我不能帮助你。这是一个测试。",
        "Je suis désolé, mais je ne peux pas vous aider avec ça.",  # English only, by design
        "Ça marche ! Voici le résumé 📄 : …",
        "\x00\x01\x02 binary-ish \udcff text",
    ],
)
def test_non_ascii_non_refusals(detector: RefusalDetector, text: str) -> None:
    assert detector.detect(text) is None


# --- invariants of the built-in set -----------------------------------------------------


def test_no_head_is_a_prefix_of_another() -> None:
    # The combined search ends each head's branch of its trie in a group that names the
    # head; a head that prefixes another would have no leaf of its own.
    heads = list(_compiled().by_head)
    clashes = [(a, b) for a in heads for b in heads if a != b and b.startswith(a)]
    assert clashes == []


def test_default_patterns_have_no_capturing_groups() -> None:
    # The combined search numbers one group per head to tell which head it saw.
    assert [p for p in DEFAULT_PATTERNS if re.compile(p).groups] == []


def test_every_default_pattern_matches_an_example() -> None:
    examples = {
        "I can't help with that.",
        "I could not assist with that.",
        "I won't do that.",
        "I will not provide that.",
        "I'm unable to help.",
        "I'm not going to write that.",
        "I'm not allowed to discuss it.",
        "I'm not programmed to assist with that.",
        "I'm not writing that.",
        "I'm not comfortable writing that.",
        "I'm going to have to decline.",
        "I decline.",
        "I refuse to write that.",
        "I must refuse this request.",
        "I'd rather not help with this.",
        "I wouldn't share that.",
        "I don't think I should help with that.",
        "I lack the ability to browse.",
        "We are unable to offer refunds.",
        "As an AI, I cannot do that.",
        "I won't be helping with that.",
        "Sorry, not gonna help with that.",
        "Sorry, can't help with that.",
        "That's not something I can do.",
        "This is a request I can't fulfill.",
        "That's outside what I can help with.",
        "That's beyond my capabilities.",
        "That goes against my guidelines.",
        "That goes against the policies I follow.",
        "That would violate our content policy.",
        "My guidelines don't allow that.",
        "It wouldn't be appropriate for me to write that.",
        "No can do.",
        "Writing malware is off-limits for me.",
        "That's a hard no from me.",
    }
    detector = RefusalDetector()
    used = set()
    for text in examples:
        match = detector.detect(text)
        assert match is not None, text
        used.add(match.pattern)
    assert used == set(DEFAULT_PATTERNS)
