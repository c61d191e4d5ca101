"""The OpenAI chat-completion wire format, both directions.

:func:`completion_body` turns an :class:`LMResponse` into the JSON the loopback
server sends; :func:`read_completion` reads what a client SDK parsed (an OpenAI
``ChatCompletion``, a LiteLLM ``ModelResponse``, or a plain dict) back into fields.

Two extensions ride in the assistant message, where OpenAI-compatible servers put
extras: ``reasoning_content`` (also read as ``reasoning``, as some providers name
it) and ``rlmine_metadata`` (the LMResponse metadata, so that the simulator's step
labels survive HTTP). Usage is passed only when known: a missing number stays None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recorder.lm.base import LMResponse
from recorder.lm.pricing import PriceTable
from recorder.lm.retry import MalformedResponseError, RetryLog

__all__ = ["METADATA_FIELD", "WireReply", "completion_body", "read_completion", "to_lm_response"]

METADATA_FIELD = "rlmine_metadata"
_REASONING_FIELDS = ("reasoning_content", "reasoning")


@dataclass(frozen=True, slots=True)
class WireReply:
    text: str
    model: str | None
    reasoning: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def completion_body(response: LMResponse, *, model: str, completion_id: str, created: int) -> dict[str, Any]:
    """The JSON body of a ``chat.completion`` answering with ``response``."""
    message: dict[str, Any] = {"role": "assistant", "content": response.text}
    if response.reasoning is not None:
        message["reasoning_content"] = response.reasoning
    if response.metadata:
        message[METADATA_FIELD] = response.metadata
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    usage: dict[str, int] = {}
    if response.tokens_in is not None:
        usage["prompt_tokens"] = response.tokens_in
    if response.tokens_out is not None:
        usage["completion_tokens"] = response.tokens_out
    if response.tokens_in is not None and response.tokens_out is not None:
        usage["total_tokens"] = response.tokens_in + response.tokens_out
    if usage:
        body["usage"] = usage
    return body


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    value = getattr(obj, name, None)
    if value is None:
        extra = getattr(obj, "model_extra", None)  # pydantic models keep unknown fields here
        if isinstance(extra, dict):
            value = extra.get(name)
    return value


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(str(_get(part, "text") or "") for part in content)
    raise MalformedResponseError(f"message content is a {type(content).__name__}")


def read_completion(completion: Any) -> WireReply:
    """Fields of a parsed chat completion. Raises MalformedResponseError when it is not one."""
    choices = _get(completion, "choices")
    if not isinstance(choices, list | tuple) or not choices:
        raise MalformedResponseError(f"no choices in the response ({type(completion).__name__})")
    message = _get(choices[0], "message")
    if message is None:
        raise MalformedResponseError("the first choice has no message")
    reasoning = next(
        (v for v in (_get(message, n) for n in _REASONING_FIELDS) if isinstance(v, str) and v), None
    )
    metadata = _get(message, METADATA_FIELD)
    usage = _get(completion, "usage")
    model = _get(completion, "model")
    return WireReply(
        text=_text(_get(message, "content")),
        model=model if isinstance(model, str) and model else None,
        reasoning=reasoning,
        tokens_in=_count(_get(usage, "prompt_tokens")) if usage is not None else None,
        tokens_out=_count(_get(usage, "completion_tokens")) if usage is not None else None,
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
    )


def to_lm_response(
    reply: WireReply, record: RetryLog, *, requested_model: str, latency_s: float, prices: PriceTable
) -> LMResponse:
    """The LMResponse a network backend returns: usage as reported, cost from the table, retry log."""
    model = reply.model or requested_model
    cost = prices.cost(model, reply.tokens_in, reply.tokens_out)
    if cost is None:  # the provider may answer with a name the table lacks (an alias, a snapshot)
        cost = prices.cost(requested_model, reply.tokens_in, reply.tokens_out)
    metadata: dict[str, Any] = {
        **reply.metadata,
        "retries": record.retries,
        "http_status_history": record.http_status_history,
    }
    if record.reasons:
        metadata["retry_reasons"] = record.reasons
    return LMResponse(
        text=reply.text,
        model=model,
        reasoning=reply.reasoning,
        tokens_in=reply.tokens_in,
        tokens_out=reply.tokens_out,
        cost=cost,
        latency_s=latency_s,
        metadata=metadata,
    )
