"""A small support chatbot on FastAPI and the OpenAI client, observed by llmpulse.

The two llmpulse lines are ``llmpulse.init(...)`` and ``llmpulse.instrument_openai()``; the
rest is an ordinary app. Every reply is checked by two cheap assertions (the bot's style
guide: a casual tone that starts lowercase, and no "As an AI" disclaimers), and each
request labels its model call with the prompt version, user and session through
``llmpulse.attributes``. Run it against a collector (``make run`` in the repo root)::

    OPENAI_API_KEY=sk-... uvicorn app:app --port 8000     # or OPENAI_BASE_URL=<a fake or proxy>
    curl -s localhost:8000/chat -H 'content-type: application/json' -d '{"message": "hi", "user_id": "u1"}'

then look at http://127.0.0.1:4318/api/stats?group_by=model,prompt_version and /metrics.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import openai
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

import llmpulse
from llmpulse import check

llmpulse.init(
    service="support-chatbot",
    environment=os.environ.get("APP_ENV", "dev"),
    assertions=[
        check.starts_lowercase(name="casual_tone"),
        check.not_contains("As an AI", name="no_ai_disclaimer"),
    ],
)
llmpulse.instrument_openai()

MODEL = os.environ.get("CHATBOT_MODEL", "gpt-4o-mini")
SYSTEM = llmpulse.Prompt(
    "support-system",
    "you are the support bot of a bike shop. answer in one or two casual sentences, lowercase, no disclaimers.",
)

app = FastAPI(title="support chatbot (llmpulse example)")
client = openai.OpenAI()  # OPENAI_API_KEY / OPENAI_BASE_URL from the environment
aclient = openai.AsyncOpenAI()


class ChatIn(BaseModel):
    message: str = Field(min_length=1, max_length=4000)
    user_id: str | None = None
    session_id: str | None = None


class ChatOut(BaseModel):
    reply: str
    trace_id: str | None


def _messages(body: ChatIn) -> list[Any]:
    return [{"role": "system", "content": SYSTEM.template}, {"role": "user", "content": body.message}]


@app.post("/chat")
def chat(body: ChatIn) -> ChatOut:
    # The span groups the request's work into one trace whose id the client can send feedback for.
    with (
        llmpulse.span("chat request"),
        llmpulse.attributes(prompt=SYSTEM, user_id=body.user_id, session_id=body.session_id, feature="chat"),
    ):
        completion = client.chat.completions.create(model=MODEL, messages=_messages(body))
        trace_id = llmpulse.current_trace_id()
    return ChatOut(reply=completion.choices[0].message.content or "", trace_id=trace_id)


@app.post("/chat/stream")
async def chat_stream(body: ChatIn) -> StreamingResponse:
    async def tokens() -> AsyncIterator[str]:
        with llmpulse.attributes(prompt=SYSTEM, user_id=body.user_id, session_id=body.session_id, feature="chat"):
            stream = await aclient.chat.completions.create(
                model=MODEL,
                messages=_messages(body),
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

    return StreamingResponse(tokens(), media_type="text/plain")


@app.post("/feedback")
def feedback(trace_id: str, thumbs_up: bool) -> dict[str, str]:
    llmpulse.feedback(trace_id, "thumbs_up", 1.0 if thumbs_up else 0.0)
    return {"status": "ok"}
