"""The shared request scenarios every provider's rendering is pinned on (golden files)."""

from __future__ import annotations

from engine import CompletionRequest

SCHEMA = {
    "title": "CityInfo",
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}

SCENARIOS: dict[str, CompletionRequest] = {
    "simple": CompletionRequest(messages=[{"role": "user", "content": "Say hello."}]),
    "system_multiturn": CompletionRequest(
        messages=[
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And {{ 7*7 }}? Answer \"quoted\" — ünïcödé."},
        ],
        temperature=0.2,
        max_tokens=64,
    ),
    "streaming": CompletionRequest(messages=[{"role": "user", "content": "Count to three."}], stream=True,
                                   max_tokens=32),
    "json_schema": CompletionRequest(messages=[{"role": "user", "content": "Largest city in France?"}],
                                     output_schema=SCHEMA),
    "extra_params": CompletionRequest(messages=[{"role": "user", "content": "Hi"}],
                                      extra={"top_p": 0.9, "seed": 42}),
}
