"""``llmpulse.attributes()``: per-call extras on the LLM spans created inside the block."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from responses import openai_completion

import llmpulse
from llmpulse import check, testing

PROMPT = llmpulse.Prompt("support", "be casual")


@llmpulse.llm(provider="openai", model="gpt-4o-mini")
def reply(text: str) -> dict[str, Any]:
    return openai_completion(text)


def test_values_and_assertions_reach_llm_spans_only() -> None:
    with testing.capture(assertions=[check.max_length(1000)]) as spans:
        with (
            llmpulse.span("request"),
            llmpulse.attributes(
                prompt=PROMPT,
                user_id="u-1",
                session_id="s-1",
                feature="chat",
                metadata={"tier": "pro", "retries": 2},
                assertions=[check.starts_lowercase(name="casual_tone")],
            ),
        ):
            reply("Hello there")
        reply("outside the block")
    inside, outside = spans.llm_spans()
    attrs = inside.attributes
    assert attrs["gen_ai.prompt.name"] == "support"
    assert attrs["llmpulse.prompt.version"] == PROMPT.version
    assert attrs["user.id"] == "u-1"
    assert attrs["session.id"] == "s-1"
    assert attrs["llmpulse.feature"] == "chat"
    assert attrs["llmpulse.metadata.tier"] == "pro"
    assert attrs["llmpulse.metadata.retries"] == 2
    assert testing.evaluations(inside) == {"max_length": "pass", "casual_tone": "fail"}
    assert "user.id" not in outside.attributes
    assert testing.evaluations(outside) == {"max_length": "pass"}
    (request,) = [s for s in spans.spans if s.name == "request"]
    assert "user.id" not in request.attributes  # only LLM spans take them


def test_blocks_nest_inner_values_win_and_assertions_add_up() -> None:
    outer = llmpulse.attributes(user_id="outer", feature="a", assertions=[check.max_length(5, name="short")])
    with testing.capture() as spans, outer:
        with llmpulse.attributes(user_id="inner", assertions=[check.starts_lowercase()]):
            reply("hello world")
        with llmpulse.attributes(assertions=[check.max_length(100, name="short")]):
            reply("hello world")
        reply("x")
    first, second, third = spans.llm_spans()
    assert first.attributes["user.id"] == "inner"
    assert first.attributes["llmpulse.feature"] == "a"
    assert testing.evaluations(first) == {"short": "fail", "starts_lowercase": "pass"}
    assert testing.evaluations(second) == {"short": "pass"}  # the inner check of that name replaced the outer one
    assert third.attributes["user.id"] == "outer"


def test_a_prompt_from_the_block_wins_over_the_decorators() -> None:
    other = llmpulse.Prompt("other", "x")

    @llmpulse.llm(provider="openai", model="gpt-4o-mini", prompt=other)
    def labelled() -> dict[str, Any]:
        return openai_completion("hi")

    with testing.capture() as spans:
        labelled()
        with llmpulse.attributes(prompt=PROMPT):
            labelled()
    plain, overridden = spans.llm_spans()
    assert plain.attributes["gen_ai.prompt.name"] == "other"
    assert overridden.attributes["gen_ai.prompt.name"] == "support"


async def test_values_follow_awaits_and_stay_apart_between_tasks() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    async def areply(text: str) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return openai_completion(text)

    async def as_user(user: str) -> None:
        with llmpulse.attributes(user_id=user):
            await areply("hi")

    with testing.capture(deterministic=False) as spans:
        await asyncio.gather(*(as_user(f"u{i}") for i in range(5)))
    assert sorted(s.attributes["user.id"] for s in spans.llm_spans()) == [f"u{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"prompt": "support"}, "must be an llmpulse.Prompt"),
        ({"user_id": 42}, "attributes(user_id=...) must be a non-empty string"),
        ({"session_id": ""}, "attributes(session_id=...) must be a non-empty string"),
        ({"assertions": "starts_lowercase"}, "attributes(assertions=...) must be a Check"),
        ({"metadata": {"k": [1]}}, "must be a str, int, float or bool"),
    ],
)
def test_bad_values_raise_config_error_naming_the_option(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(llmpulse.ConfigError) as info, llmpulse.attributes(**kwargs):
        pass
    assert words in str(info.value)
