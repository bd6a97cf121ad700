"""The default redactor: what it masks, what it leaves alone, and that its prefilters never
change the result (checked against the same patterns run without them)."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmpulse._exceptions import ConfigError
from llmpulse._redact import _redact_unfiltered, default_redact, resolve_redactor

EMAIL, PHONE, CARD, KEY = "[REDACTED_EMAIL]", "[REDACTED_PHONE]", "[REDACTED_CARD]", "[REDACTED_KEY]"

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # emails
        ("write to jane.doe@example.com today", f"write to {EMAIL} today"),
        ("a.b+tag@mail.co.uk, x_y%z@sub-domain.example.org.", f"{EMAIL}, {EMAIL}."),
        ("<bob@example.com>", f"<{EMAIL}>"),
        # phone numbers
        ("call +44 20 7946 0958 now", f"call {PHONE} now"),
        ("call +1-202-555-0143", f"call {PHONE}"),
        ("call +12025550143.", f"call {PHONE}."),
        ("call +44 (0)20 7946 0958", f"call {PHONE}"),
        ("call +33 6 12 34 56 78", f"call {PHONE}"),
        ("call (202) 555-0143", f"call {PHONE}"),
        ("call 202-555-0143 or 202.555.0143", f"call {PHONE} or {PHONE}"),
        ("Tel: 0151 12345678", f"Tel: {PHONE}"),
        ("Tel: 020 7946 0958", f"Tel: {PHONE}"),
        ("Tel: 030-1234567", f"Tel: {PHONE}"),
        ("Tel: 06 12 34 56 78", f"Tel: {PHONE}"),
        ("Tel: 06.12.34.56.78", f"Tel: {PHONE}"),
        # payment cards (Luhn-valid test numbers)
        ("card 4111 1111 1111 1111 exp 12/25", f"card {CARD} exp 12/25"),
        ("card 4111-1111-1111-1111", f"card {CARD}"),
        ("card 4111111111111111.", f"card {CARD}."),
        ("mc 5555555555554444 amex 3782 822463 10005", f"mc {CARD} amex {CARD}"),
        ("visa13 4222222222222", f"visa13 {CARD}"),
        ("19 digits 6011 0009 9013 9424 123", f"19 digits {CARD} 123"),
        ("qty 2 4111 1111 1111 1111", f"qty 2 {CARD}"),
        ("card:4111111111111111", f"card:{CARD}"),
        # keys and secrets
        ("key sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL", f"key {KEY}"),
        ("key=sk-proj-Ab3dEfGh1jKlMnOpQrStUvWx_yz-0123456789", f"key={KEY}"),
        ("sk-ant-api03-AbC123def456GHI789jklMNO-pqr_STUvwx", KEY),
        ("AKIAIOSFODNN7EXAMPLE and ASIAY34FZKBOKMUTVV7A", f"{KEY} and {KEY}"),
        ("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", KEY),
        ("gho_16C7e42F292c6912E7710c838347Ae178B4a", KEY),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF", KEY),
        ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", KEY),
        ("xoxp-1234-5678-abcdef", KEY),
        ("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", KEY),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc rk_live_51Habcdefghij", f"stripe {KEY} {KEY}"),
        (f"token {JWT}", f"token {KEY}"),
        ("Authorization: Bearer abc123.def456-ghi789", f"Authorization: Bearer {KEY}"),
        ("authorization: bearer 9f8e7d6c5b4a3f2e1d0c", f"authorization: bearer {KEY}"),
        (f"Authorization: Bearer {JWT}", f"Authorization: Bearer {KEY}"),
        # several kinds at once, unicode around them
        (
            "héllo — mail jane@example.com, card 4111 1111 1111 1111, phone +44 20 7946 0958 ✓",
            f"héllo — mail {EMAIL}, card {CARD}, phone {PHONE} ✓",
        ),
    ],
)
def test_masks(text: str, expected: str) -> None:
    assert default_redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "In 2024 we grew 35% to $1,234,567.89 (€1.234.567,89).",
        "The meeting is on 2024-01-15 at 10:30:00, or 2024-01-15T10:30:00Z, or 15/01/2024, or 15.01.2024.",
        "Upgrade from Python 3.11.7 to 3.12.1; node v20.11.0; build 20240115.",
        "Your order 12345 shipped; ticket #987654; invoice INV-2024-00042; page 5 of 12.",
        "ids 123e4567-e89b-12d3-a456-426614174000 and 550e8400-e29b-41d4-a716-446655440000",
        "commit 3f2a9c1e4b5d6f7081928374655647382910abcd and da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "Skills: ask-me-anything, task_list, risk-free, desk-lamp, sk-learn-compatible-estimators.",
        "The bearer of bad news; Bearer instruments are popular. bearer: none. Bearer 2024-01-15, bearer ab12",
        "Not a card: 4111 1111 1111 1112 (Luhn fails) and 1234567890123456789012 (too long).",
        "ip 192.168.1.1, port 8080, 10.0.0.254:443, latency 123.456 ms, pi 3.14159265358979",
        "score +5 points, +3.5%, temperature -12, offset +05:30, tz +0000",
        "user@localhost is not an email, nor is @mention or a@b.",
        "eyJ alone, AKIA short, ghp_short, xoxb-x, AIza-tiny, sk-short1",
        "",
        "    ",
    ],
)
def test_leaves_alone(text: str) -> None:
    assert default_redact(text) == text


def test_nothing_to_mask_returns_the_same_object() -> None:
    text = "a plain prompt with a year, 2024, and no secrets at all " * 40
    assert default_redact(text) is text


def test_luhn_is_required_for_cards() -> None:
    assert default_redact("4111 1111 1111 1111") == CARD
    assert default_redact("4111 1111 1111 1112") == "4111 1111 1111 1112"


def test_cards_glued_to_words_or_numbers_are_not_cards() -> None:
    assert default_redact("ref4111111111111111") == "ref4111111111111111"
    assert default_redact("0.4111111111111111") == "0.4111111111111111"


def test_international_numbers_need_8_to_15_digits() -> None:
    assert default_redact("+44 20 7946") == PHONE
    assert default_redact("+44 20 794") == "+44 20 794"
    assert default_redact("+1234567890123456") == "+1234567890123456"
    assert default_redact("score +5 2024 2024") == "score +5 2024 2024"  # no country code 5


@pytest.mark.parametrize(
    "text",
    [
        "mail jane@example.com, card 4111 1111 1111 1111, call +1-202-555-0143",
        f"Authorization: Bearer {JWT} and sk-proj-Ab3dEfGh1jKlMnOpQrStUvWx_yz-0123456789",
        "+441212345678 5555555555554444 and 0958(0151)+441212345678",
        "[REDACTED_PHONE]+44822463 4111111111111111",
        "a" * 50 + "-4111111111111111-bbbbb@example.com",  # too long a local part, until the card goes
    ],
)
def test_idempotent(text: str) -> None:
    once = default_redact(text)
    assert default_redact(once) == once


def test_emails_with_over_long_parts_are_not_emails() -> None:
    ok_domain = "a" * 251 + ".com"  # 255 characters
    assert default_redact(f"x@{ok_domain}") == EMAIL
    long_domain = "a" * 252 + ".com"
    assert default_redact(f"x@{long_domain}") == f"x@{long_domain}"
    assert default_redact("a" * 64 + "@example.com") == EMAIL
    assert default_redact("a" * 65 + "@example.com") == "a" * 65 + "@example.com"


# --- properties -------------------------------------------------------------------------

# Pieces that sit on every boundary the patterns and their prefilters care about.
PIECES = [
    *"0123456789 -+.()/,]@_\n\taAeJkxé",
    "4111", "1111", "12", "06", "+44", "(0)", "202", "555", "0143", "0151", "12345678", "7946",
    "5555555555554444", "378282246310005", "3782", "822463", "10005", "2024-01-15", "3.11.7",
    "sk-", "sk-proj-", "abcdefghij1234567890", "AKIA", "IOSFODNN7EXAMPLE", "eyJhbGciOiJIUzI1NiJ9",
    "eyJzdWIiOiIxMjM0", "bob", "example.com", "Bearer ", "bearer\t", "tok3n12345", "ghp_", "xoxb-",
]  # fmt: skip

boundary_text = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(boundary_text, st.text(max_size=200)))
@example("+441212345678 5555555555554444.")
@example("é+44794634111+44822463(555822463")
def test_prefilters_never_change_the_result_and_redaction_is_idempotent(text: str) -> None:
    once = default_redact(text)
    assert once == _redact_unfiltered(text)
    assert default_redact(once) == once


SAFE_WORDS = [
    "the", "order", "skill", "ask-", "task_list", "risk-free", "of", "news",
    "2024", "2024-01-15", "10:30", "3.11.7", "$1,234.56", "12345", "#42", "v2", "Q3", "5%",
    "123e4567-e89b-12d3-a456-426614174000", "3f2a9c1e4b5d6f7081928374655647382910abcd",
    "café", "naïve", "日本語", "😀", "sk-learn", "eyJ", "AKIA", "+5", "x@y", "@user",
]  # fmt: skip
# No "Bearer": what follows it may rightly be taken for a token (a UUID is one).
SEPARATORS = [" ", ", ", ". ", "\n", " - ", "; "]
safe_text = st.lists(st.tuples(st.sampled_from(SAFE_WORDS), st.sampled_from(SEPARATORS)), max_size=60).map(
    lambda pairs: "".join(word + sep for word, sep in pairs)
)


@settings(max_examples=300, deadline=None)
@given(safe_text)
def test_text_with_nothing_to_mask_is_never_changed_or_grown(text: str) -> None:
    out = default_redact(text)
    assert len(out) <= len(text)
    assert out == text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_any_text(text: str) -> None:
    assert isinstance(default_redact(text), str)


def luhn_complete(body: list[int]) -> str:
    total = 0
    for i, digit in enumerate(reversed(body)):
        doubled = i % 2 == 0  # once the check digit is appended
        total += (digit * 2 - 9 if digit > 4 else digit * 2) if doubled else digit
    return "".join(map(str, body)) + str((10 - total % 10) % 10)


cards = st.lists(st.integers(0, 9), min_size=15, max_size=15).map(luhn_complete)
grouped_cards = st.tuples(cards, st.sampled_from(["", " ", "-"])).map(
    lambda c: c[1].join(c[0][i : i + 4] for i in range(0, 16, 4))
)
emails = st.tuples(
    st.text(string.ascii_lowercase + string.digits + "._+", min_size=1, max_size=20).filter(lambda s: s[0].isalnum()),
    st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=15),
    st.sampled_from(["com", "org", "co.uk", "io", "de"]),
).map(lambda p: f"{p[0]}@{p[1]}.{p[2]}")
token_chars = string.ascii_letters + string.digits
keys = st.one_of(
    st.text(token_chars, min_size=40, max_size=60).map(lambda s: f"sk-proj-{s}1"),
    st.text(token_chars + "_-", min_size=80, max_size=95).map(lambda s: f"sk-ant-api03-{s}9"),
    st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(lambda s: f"AKIA{s}"),
    st.text(token_chars, min_size=36, max_size=36).map(lambda s: f"ghp_{s}"),
    st.text(token_chars + "_", min_size=60, max_size=82).map(lambda s: f"github_pat_{s}"),
    st.text(string.digits, min_size=10, max_size=13).map(lambda s: f"xoxb-{s}-{s}-abcDEF"),
    st.text(token_chars + "_-", min_size=35, max_size=35).map(lambda s: f"AIza{s}"),
    st.text(token_chars, min_size=24, max_size=24).map(lambda s: f"sk_live_{s}"),
)
surroundings = st.sampled_from(["", "my ", "see: ", "(", "key=", "\n", "«", "mail to "])
endings = st.sampled_from(["", " ", ".", ", thanks", ")", "\n", "!", " — ok"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(emails, cards, grouped_cards, keys), surroundings, endings, safe_text)
def test_secrets_never_survive(secret: str, before: str, after: str, filler: str) -> None:
    out = default_redact(f"{filler}\n{before}{secret}{after} {filler}")
    assert secret not in out
    if re.fullmatch(r"[\d -]+", secret):  # a card: not even its digits in another grouping
        assert re.sub(r"\D", "", secret) not in re.sub(r"\D", "", out)


# --- resolve_redactor -------------------------------------------------------------------


def test_resolve_redactor() -> None:
    def mine(text: str) -> str:
        return text.upper()

    assert resolve_redactor(True) is default_redact
    assert resolve_redactor(False) is None
    assert resolve_redactor(None) is None
    assert resolve_redactor(mine) is mine


@pytest.mark.parametrize("bad", ["yes", 1, 0, b"x", ["email"], 3.5])
def test_resolve_redactor_rejects_anything_else_naming_the_option(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"^capture\.redact must be True, False, None or a function str -> str, got "):
        resolve_redactor(bad, "capture.redact")
    with pytest.raises(ConfigError, match=r"^redact must be"):
        resolve_redactor(bad)


def test_resolve_redactor_refuses_async_functions() -> None:
    async def mask(text: str) -> str:
        return text

    with pytest.raises(ConfigError, match="redact must be a plain function str -> str; async functions"):
        resolve_redactor(mask)  # type: ignore[arg-type]
