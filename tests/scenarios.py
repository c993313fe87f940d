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

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "description": "The local time in a city.",
                                              "parameters": {"type": "object", "properties": {}}}}
ASK = [{"role": "user", "content": "Weather in Paris and Rome?"}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
PDF = "JVBERi0xLjQKJcTl8uXrp/Og0MTGCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCnRyYWlsZXIKPDwvUm9vdCAxIDAgUj4+CiUlRU9G"
# The assistant turn a provider answered with: two parallel calls, the opaque data some providers need back
# (a Gemini thought signature on the first call, an Anthropic thinking block), then the two results.
TOOL_TURNS = [
    *ASK,
    {"role": "assistant", "content": None,
     "thinking": [{"text": "Two cities: two calls.", "signature": "sig-thinking-01"}],
     "tool_calls": [
         {"id": "call_A1", "type": "function", "signature": "c2lnLTAx",
          "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
         {"id": "call_B2", "type": "function",
          "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}},
     ]},
    {"role": "tool", "tool_call_id": "call_A1", "content": "{\"temp_c\": 18}"},
    {"role": "tool", "tool_call_id": "call_B2", "content": "22°C and sunny"},
]

SCENARIOS.update({
    "tools_auto": CompletionRequest(messages=ASK, tools=[WEATHER_TOOL, TIME_TOOL]),
    "tools_none": CompletionRequest(messages=ASK, tools=[WEATHER_TOOL], tool_choice="none"),
    "tools_required": CompletionRequest(messages=ASK, tools=[WEATHER_TOOL], tool_choice="required"),
    "tools_named": CompletionRequest(messages=ASK, tools=[WEATHER_TOOL, TIME_TOOL],
                                     tool_choice={"type": "function", "function": {"name": "get_time"}}),
    "tools_no_parallel": CompletionRequest(messages=ASK, tools=[WEATHER_TOOL], parallel_tool_calls=False),
    "tool_results": CompletionRequest(messages=TOOL_TURNS, tools=[WEATHER_TOOL]),
    "image_url": CompletionRequest(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]),
    "image_data": CompletionRequest(messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe it."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]),
    "document": CompletionRequest(messages=[{"role": "user", "content": [
        {"type": "file", "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}},
        {"type": "text", "text": "Summarise the report."}]}]),
    "sampling_stop": CompletionRequest(messages=ASK, stop=["\n\n", "END"]),
    "sampling_top_p": CompletionRequest(messages=ASK, top_p=0.5),
    "sampling_seed": CompletionRequest(messages=ASK, seed=42),
    "sampling_penalties": CompletionRequest(messages=ASK, presence_penalty=0.5, frequency_penalty=0.25),
    "sampling_user": CompletionRequest(messages=ASK, user="user-1234"),
})
