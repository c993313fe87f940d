"""Generated documentation: the provider-file JSON Schema and the key reference.

Both are generated from the pydantic models in `engine.spec` (names, types,
defaults, descriptions), so they cannot drift from what the engine accepts:
tests compare ``schema/provider.schema.json`` and the generated part of
``docs/provider-format.md`` with what this module produces. Each section's
examples below are validated against its model (top-level examples are
resolved and compiled like real files) and must show every key of the section.
"""

from __future__ import annotations

import inspect
import json
import re
import types
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from ..errors import DocsError

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
BEGIN = "<!-- BEGIN GENERATED KEY REFERENCE (genai docs --write docs/provider-format.md) -->"
END = "<!-- END GENERATED KEY REFERENCE -->"

# The placeholder shown for the keys of a mapping field, by field name.
KEY_NAMES = {"pricing": "<model id>", "service_tiers": "<service tier>", "events": "<event type>",
             "kinds": "<error type>", "status_kinds": "<HTTP status>", "finish_reasons": "<the API's reason>",
             "roles": "<role>", "role_message": "<role>", "parts": "<part kind>", "choice": "<choice kind>",
             "options": "<option>"}

ERROR_KINDS = {
    "auth": "the key is missing or wrong, or lacks permission (401, 403)",
    "rate_limit": "too many requests, or the quota is used up (429)",
    "invalid_request": "the provider rejected the request (400, 413, 422)",
    "not_found": "unknown model or endpoint (404)",
    "server": "the provider failed or is overloaded (5xx)",
    "timeout": "no answer in time",
    "connection": "the connection failed, or the stream was cut off before its end marker",
    "invalid_response": "the answer could not be read (not JSON, no content where the file says)",
}

# Examples by section model. Each is a YAML snippet at its full nesting; together they show every key.
EXAMPLES: dict[str, list[str]] = {
    "ProviderSpec": [
        """\
# An OpenAI-compatible service: inherit request, response, errors and stream from openai.yaml.
name: acme
extends: openai
description: Acme AI, OpenAI-compatible
docs_url: https://docs.acme.example/api
checked: 2026-11-25
base_url: https://api.acme.example/v1
default_model: acme-large
models:
  - {id: acme-large, context_window: 131072}
auth:
  env: [ACME_API_KEY]
options:
  max_tokens_field: {default: max_tokens}   # an option openai.yaml declares for its body template
pricing:
  acme-large: {input: 0.50, output: 1.50}
capabilities: {tools: true, images: true, sampling: [stop, top_p, seed]}
finish_reasons: {eos: stop}   # this API's own word for a natural stop
""",
        """\
# A server with its own JSON format, on a machine of your own.
name: lab
description: The lab's model server
base_url: "http://{{ config.host }}:8080"
local: true
config:
  host: {description: host name of the lab server, env: [LAB_HOST], default: localhost}
default_model: lab-7b
models: [{id: lab-7b}]
request:
  path: /v1/generate
  body: |
    {{ {"model": model, "messages": messages, "stream": stream, "max_new_tokens": max_tokens}
       | drop_none | merge(extra) | tojson }}
response:
  content: $.output.text
  input_tokens: $.usage.input
  output_tokens: $.usage.output
errors:
  message: $.error.message
stream:
  format: ndjson
  chunk: {delta: $.delta, end: $.done}
""",
        """\
# An API that takes one prompt string: the conversation in the model's own chat template.
name: promptapi
description: A text-generation server
base_url: http://localhost:8080
local: true
chat_templates:
  plain: "{% for m in messages %}{{ m.role }}: {{ m.content }}\\n{% endfor %}assistant:"
request:
  path: /generate
  body: '{{ {"inputs": messages | chat_template("plain"), "stream": stream} | tojson }}'
response:
  content: $.generated_text
""",
        """\
# An embeddings-only API: no request or response section, only embeddings.
name: vectors
description: A text-embedding service
base_url: https://api.vectors.example/v1
models: [{id: vec-1, kind: embedding}]
auth: {env: [VECTORS_API_KEY]}
embeddings:
  path: /embeddings
  default_model: vec-1
  max_batch: 256
  body: '{{ {"model": model, "input": inputs} | tojson }}'
  response: {vectors: "$.data[*].embedding", input_tokens: $.usage.total_tokens}
pricing:
  vec-1: {input: 0.05, output: 0}
""",
        """\
# Calls made by a Python class instead of an HTTP template (see engine/backend.py).
name: acme-sdk
description: Acme through its Python SDK
backend: acme_genai.backend:AcmeBackend
""",
    ],
    "EmbeddingsSpec": [
        """\
embeddings:   # OpenAI: up to 2048 texts a request, shorter vectors on request
  path: /embeddings
  default_model: text-embedding-3-small
  max_batch: 2048
  takes: [dimensions, user]
  body: |
    {{ {"model": model, "input": inputs, "dimensions": dimensions, "encoding_format": "float", "user": user}
       | drop_none | merge(extra) | tojson }}
  response:
    vectors: $.data[*].embedding
    index: $.data[*].index
    model: $.model
    input_tokens: $.usage.prompt_tokens
""",
        """\
embeddings:   # a different root and a bare array of vectors (Hugging Face feature extraction)
  base_url: https://router.huggingface.co/hf-inference
  method: POST
  query: {wait_for_model: "true"}
  path: "/models/{{ model | raw_path }}/pipeline/feature-extraction"
  default_model: sentence-transformers/all-MiniLM-L6-v2
  max_batch: 32
  model_max_batch: {some-org/large-model: 8}
  body: '{{ {"inputs": inputs} | tojson }}'
  response:
    vectors: $[*]
""",
    ],
    "EmbeddingsResponseSpec": [
        """\
embeddings:
  response:   # Cohere v2 embed: the vectors under embeddings.float, billed tokens in meta
    vectors: $.embeddings.float[*]
    input_tokens: $.meta.billed_units.input_tokens
""",
        """\
embeddings:
  response:   # Vertex AI :predict: a token count per vector, summed; OpenAI-style items say their input
    vectors: $.predictions[*].embeddings.values
    index: $.predictions[*].index
    model: $.model
    input_tokens: $.predictions[*].embeddings.statistics.token_count
""",
    ],
    "ModelInfo": [
        """\
models:
  - id: claude-sonnet-4-5
    aliases: [claude-sonnet-4-5-20250929]
    context_window: 200000
    max_output_tokens: 64000
    description: balanced speed and quality
  # A reasoning model that rejects temperature: the shared template reads options.temperature.
  - {id: o3, context_window: 200000, options: {temperature: false}, capabilities: {sampling: [seed, user]}}
  - {id: text-embedding-3-small, kind: embedding, context_window: 8191}   # through the file's embeddings
  # Its provider's deprecation notice: calls warn from `deprecated` and fail from `retired` on.
  - {id: gpt-5, deprecated: 2026-06-11, retired: 2026-12-11, replacement: gpt-6.1-sol,
     notice: "https://developers.openai.com/api/docs/deprecations"}
  # Shut down, but the provider still answers the id (with its replacement): calls go out with a warning.
  - {id: gemini-2.5-pro, retired: 2026-12-01, retired_calls: warn, replacement: gemini-3.8-flash}
  # A model that never reads a prompt cache: `genai check` asks for no cached_input price.
  - {id: llama-3.1-8b-instant, prompt_caching: false}
""",
    ],
    "OptionSpec": [
        """\
options:   # declared by a base file; its templates read options.max_tokens_field
  max_tokens_field:
    type: string
    choices: [max_completion_tokens, max_tokens]
    default: max_completion_tokens
    description: The body field that carries max_tokens.
""",
    ],
    "Capabilities": [
        """\
capabilities:   # what the provider's models take; a model may say otherwise under models[].capabilities
  tools: true
  parallel_tool_calls: true
  images: true
  image_urls: false          # images only as data
  documents: true
  document_urls: false
  json_schema: true
  sampling: [stop, top_p, seed, presence_penalty, frequency_penalty, user]
""",
    ],
    "MessagesSpec": [
        """\
request:
  messages:   # Anthropic-style content blocks
    system: separate
    roles: {tool: user}
    tool_results: merge
    merge_roles: true
    calls: parts
    message: {role: $role, content: $content}
    parts:
      text: {type: text, text: $text}
      image: {type: image, source: {type: base64, media_type: $media_type, data: $data}}
      image_url: {type: image, source: {type: url, url: $url}}
      document: {type: document, source: {type: base64, media_type: $media_type, data: $data}}
      document_url: {type: document, source: {type: url, url: $url}}
      tool_call: {type: tool_use, id: $id, name: $name, input: $args}
      tool_result: {type: tool_result, tool_use_id: $id, content: $content, is_error: $is_error}
      reasoning: {type: thinking, thinking: $text, signature: $signature}
      redacted_reasoning: {type: redacted_thinking, data: $redacted}
""",
        """\
request:
  messages:   # OpenAI's shape, but plain-text content, images as base64 strings and a named tool role
    message: {role: $role, content: $text, images: $images, tool_calls: $tool_calls}
    role_message:
      tool: {role: tool, content: $content, tool_name: $name}
    parts:
      text: {text: $text}
      image: $data
      tool_call: {function: {name: $name, arguments: $args}}
      tool_result: $content
    call_id_length: 9
""",
        """\
request:
  messages:   # a flat list of typed items (OpenAI Responses): calls and reasoning are items of their own
    system: separate
    calls: items
    reasoning: items
    message: {type: message, role: $role, content: $content}
    role_message:
      assistant: {type: message, role: assistant, content: $text}
      tool: {type: function_call_output, call_id: $tool_call_id, output: $content}
    parts:
      text: {type: input_text, text: $text}
      image: {type: input_image, image_url: $data_url, detail: {$first: [$detail, auto]}}   # a default
      tool_call: {type: function_call, call_id: $id, name: $name, arguments: $arguments}
      tool_result: {type: function_call_output, call_id: $id, output: $content}
      # only blocks with an id (this API's own) are sent; a summary part only when there is text
      redacted_reasoning: {$when: $id, type: reasoning, id: $id, encrypted_content: $redacted,
                           summary: [{$when: $text, type: summary_text, text: $text}]}
""",
    ],
    "ToolsSpec": [
        """\
request:
  tools:   # Gemini: function declarations, and a functionCallingConfig per tool_choice
    tool: {name: $name, description: $description, parametersJsonSchema: $parameters}
    choice:
      auto: {functionCallingConfig: {mode: AUTO}}
      none: {functionCallingConfig: {mode: NONE}}
      required: {functionCallingConfig: {mode: ANY}}
      named: {functionCallingConfig: {mode: ANY, allowedFunctionNames: [$name]}}
""",
        """\
request:
  tools:   # flat function tools; strict is false unless the caller set it (this API's default is true)
    tool: {type: function, name: $name, description: $description, parameters: $parameters,
           strict: {$first: [$strict, false]}}
    choice: {auto: auto, none: none, required: required, named: {type: function, name: $name}}
""",
    ],
    "AuthSpec": [
        """\
auth:
  type: header
  header: x-api-key
  value: "{{ api_key }}"
  env: [ANTHROPIC_API_KEY]
""",
        """\
auth:   # an OAuth2 access token from a Python hook (refreshed before it expires)
  type: hook
  hook: engine.auth_google:GoogleAuth
  header: Authorization
""",
        """\
auth:   # the key in the URL, ?key=...; a local server where the key is optional
  type: query
  query_param: key
  value: "{{ api_key }}"
  optional: true
""",
    ],
    "ConfigVar": [
        """\
config:
  resource:
    description: the Azure OpenAI resource name, as in https://<resource>.openai.azure.com
    env: [AZURE_OPENAI_RESOURCE]
    required: true
  api_version:
    default: "2024-10-21"
  deployment_token:   # a credential besides the API key: masked wherever it appears
    env: [ACME_DEPLOYMENT_TOKEN]
    secret: true
""",
    ],
    "RequestSpec": [
        """\
request:   # Azure OpenAI style: the model in the path, a version in the query
  method: POST
  path: /openai/deployments/{{ model }}/chat/completions
  query:
    api-version: "{{ config.api_version }}"
  headers:
    x-ms-useragent: genai-engine
  body: |
    {{ {"messages": messages, "temperature": temperature, "max_tokens": max_tokens,
        "stream": true if stream else none} | drop_none | merge(extra) | tojson }}
""",
        """\
request:   # the messages and tools written in the API's own shape (see their sections)
  path: /chat
  messages: {system: separate}
  tools: {tool: {name: $name, input_schema: $parameters}}
  body: '{{ {"model": model, "system": system, "messages": messages, "tools": tools} | drop_none | tojson }}'
""",
        """\
request:   # Gemini style: another path and query parameter for streams
  path: /models/{{ model }}:generateContent
  stream_path: /models/{{ model }}:streamGenerateContent
  stream_query: {alt: sse}
  body: |
    {{ {"contents": messages | without_system | text_parts(roles={"assistant": "model"}),
        "generationConfig": {"temperature": temperature, "maxOutputTokens": max_tokens} | drop_none}
       | tojson }}
""",
    ],
    "ResponseSpec": [
        """\
response:   # OpenAI Chat Completions
  content: $.choices[0].message.content
  reasoning: $.choices[0].message.reasoning_content
  model: $.model
  finish_reason: $.choices[0].finish_reason
  input_tokens: $.usage.prompt_tokens
  output_tokens: $.usage.completion_tokens
  cached_input_tokens: $.usage.prompt_tokens_details.cached_tokens
  reasoning_tokens: $.usage.completion_tokens_details.reasoning_tokens
  service_tier: $.service_tier   # default, flex or priority: a price may bill them apart
  output_includes_reasoning: true
""",
        """\
response:   # Anthropic Messages: text blocks joined, else a forced tool's input as JSON text
  content: ["$.content[*].text", "$.content[*].input"]
  cache_write_tokens: $.usage.cache_creation_input_tokens
  cache_write_1h_tokens: $.usage.cache_creation.ephemeral_1h_input_tokens   # the one-hour part of the writes
  input_includes_cached: false   # its input_tokens leaves out cache reads and writes
""",
        """\
response:   # an API that leaves zero counts out of its usage object
  content: $.text
  cached_input_tokens: $.usage.cached_tokens
  usage_omits_zeros: true
""",
        """response:   # OpenRouter bills in USD and says how much: that figure is the cost
  content: $.choices[0].message.content
  cost: $.usage.cost
""",
        """\
response:   # Anthropic: tool_use blocks are the calls; thinking blocks go back on the next turn
  content: "$.content[?(@.type == 'text')].text"
  tool_calls: {each: "$.content[?(@.type == 'tool_use')]", id: $.id, name: $.name, arguments: $.input}
  thinking: {each: "$.content[*]", text: $.thinking, signature: $.signature, redacted: $.data}
""",
    ],
    "ToolCallSpec": [
        """\
response:
  content: $.choices[0].message.content
  tool_calls:   # OpenAI: arguments are JSON text
    each: $.choices[0].message.tool_calls[*]
    id: $.id
    name: $.function.name
    arguments: $.function.arguments
""",
        """\
stream:
  format: sse
  done: "[DONE]"
  chunk:
    tool_call:   # pieces by index: the first names the call, the others add to its arguments
      each: $.choices[0].delta.tool_calls[*]
      index: $.index
      id: $.id
      name: $.function.name
      arguments: $.function.arguments
""",
        """\
response:
  content: "$.candidates[0].content.parts[*].text"
  tool_calls:   # Gemini: arguments are an object; the signature goes back with the call
    each: "$.candidates[0].content.parts[?(@.functionCall)]"
    name: $.functionCall.name
    arguments: $.functionCall.args
    signature: $.thoughtSignature
""",
    ],
    "ThinkingSpec": [
        """\
response:
  content: "$.content[?(@.type == 'text')].text"
  thinking:   # every block with reasoning text or redacted data, kept to send back
    each: $.content[*]
    text: $.thinking
    signature: $.signature
    redacted: $.data
""",
        """\
stream:
  format: ndjson
  chunk:
    end: $.done
    thinking:   # pieces of one block share its index
      index: $.block
      text: $.thinking_delta
      signature: $.signature
""",
        """\
response:
  content: "$.output[*].content[?(@.type == 'output_text')].text"
  thinking:   # OpenAI Responses: reasoning items, sent back with their id and encrypted content
    each: "$.output[?(@.type == 'reasoning')]"
    id: $.id
    text: $.summary[*].text   # the summary parts, joined
    redacted: $.encrypted_content
""",
    ],
    "ErrorSpec": [
        """\
errors:
  message: $.error.message
  type: [$.error.code, $.error.type]
  kinds:
    invalid_api_key: auth
    insufficient_quota: rate_limit
    model_not_found: not_found
  status_kinds:
    498: auth   # this API's own status for an expired token
  message_kinds:
    "Incorrect API key": auth   # an API that answers a wrong key with a plain 400
""",
        """\
errors:   # an envelope API: a 200 can say it failed; integer codes; the request id in a header
  message: $.errors[0].message
  type: $.errors[0].code
  request_id: [header:cf-ray, $.request_id]
  when:
    - {path: $.success, equals: false}
  kinds:
    10000: auth
""",
    ],
    "Condition": [
        """\
errors:
  when:
    - {path: $.success, equals: false}
    - {path: $.status, not_equals: ok}
    - {path: $.error, present: true}
    - {path: $.result, truthy: false}
""",
    ],
    "StreamSpec": [
        """\
stream:   # OpenAI: every event has the same shape; a [DONE] line ends the stream
  format: sse
  done: "[DONE]"
  chunk:
    delta: $.choices[0].delta.content
""",
        """\
stream:   # events told apart by a field of their JSON (the SSE event: line, when present, wins)
  format: sse
  event_type: $.type
  events:
    content_block_delta: {delta: $.delta.text}
    message_stop: {end: true}
""",
    ],
    "StreamRule": [
        """\
stream:
  format: sse
  done: "[DONE]"
  chunk:   # OpenAI
    delta: $.choices[0].delta.content
    reasoning_delta: $.choices[0].delta.reasoning_content
    model: $.model
    finish_reason: $.choices[0].finish_reason
    input_tokens: $.usage.prompt_tokens
    output_tokens: $.usage.completion_tokens
    cached_input_tokens: $.usage.prompt_tokens_details.cached_tokens
    reasoning_tokens: $.usage.completion_tokens_details.reasoning_tokens
    error_message: $.error.message
    error_type: [$.error.code, $.error.type]
    service_tier: $.service_tier
    cost: $.usage.cost   # OpenRouter's billed cost, in its last chunk
""",
        """\
stream:
  format: sse
  events:   # Anthropic
    message_delta:
      finish_reason: $.delta.stop_reason
      output_tokens: $.usage.output_tokens
      cache_write_tokens: $.usage.cache_creation_input_tokens
      cache_write_1h_tokens: $.usage.cache_creation.ephemeral_1h_input_tokens
    message_stop: {end: true}
    error: {error: true, error_message: $.error.message, error_type: $.error.type}
    content_block_start:
      tool_call: {index: $.index, id: $.content_block.id, name: $.content_block.name}
    content_block_delta:
      tool_call: {index: $.index, arguments: $.delta.partial_json}
      thinking: {index: $.index, text: $.delta.thinking, signature: $.delta.signature}
""",
        """\
stream:
  format: ndjson
  chunk:   # Ollama: the last line has "done": true
    delta: $.message.content
    end: $.done
""",
        """\
stream:
  format: sse
  chunk:   # text-generation servers: special tokens are not text; only the last event's generated_text is not null
    delta: $.token.text
    when: {path: $.token.special, equals: false}
    end: {path: $.generated_text, not_equals: null}   # ends on "" too, where truthiness would not
""",
    ],
    "Price": [
        """\
pricing:
  claude-sonnet-4-6:
    input: 3.00
    output: 15.00
    cached_input: 0.30
    cache_write: 3.75      # a five-minute cache write
    cache_write_1h: 6.00   # a one-hour cache write
    service_tiers:
      batch: {multiplier: 0.5}
    source: https://platform.claude.com/docs/en/about-claude/pricing
    date: 2026-12-01
""",
        """\
pricing:
  gemini-3.7-flash:   # a launch price, then the list price: one entry per period
    - {input: 0.75, cached_input: 0.075, output: 3.75, until: 2026-12-31}
    - {input: 1.50, cached_input: 0.15, output: 7.50, from: 2027-01-01}
  gemini-embedding-001: {input: 0.15}   # an embedding model: input only
""",
        """\
pricing:
  gemini-3.1-pro-preview:   # prompts of more than 200k tokens cost more, all of their tokens
    input: 2.00
    cached_input: 0.20
    output: 12.00
    tiers:
      - {above: 200000, input: 4.00, cached_input: 0.40, output: 18.00}
  deepseek-flash:   # off-peak by default; peak on weekday hours (UTC)
    input: 0.15
    cached_input: 0.003
    output: 0.60
    windows:
      - {days: [mon, tue, wed, thu, fri], hours: ["01:00-04:00", "06:00-10:00"], input: 0.30,
         cached_input: 0.006, output: 1.20}
""",
    ],
    "PriceTier": [
        """\
pricing:
  grok-4.3:   # xAI: a prompt that reaches 200k tokens
    input: 1.25
    cached_input: 0.20
    output: 2.50
    tiers: [{at_least: 200000, input: 2.50, cached_input: 0.40, output: 5.00}]
  claude-haiku-5-5:
    input: 0.10
    output: 0.50
    cached_input: 0.01
    cache_write: 0.125
    cache_write_1h: 0.20
    tiers:
      - {above: 100000, input: 0.50, output: 2.50, cached_input: 0.05, cache_write: 0.625, cache_write_1h: 1.00}
""",
    ],
    "PriceWindow": [
        """\
pricing:
  night-model:
    input: 1.00
    output: 4.00
    windows:
      - {days: [sat, sun], input: 0.50, output: 2.00}   # all day on weekends
      - {hours: ["00:00-06:00"], input: 0.50, cached_input: 0.05, cache_write: 0.50, cache_write_1h: 0.50,
         output: 2.00}
""",
    ],
    "ServiceTierPrice": [
        """\
pricing:
  gpt-5.5:
    input: 5.00
    cached_input: 0.50
    output: 30.00
    tiers: [{above: 272000, input: 10.00, cached_input: 1.00, output: 45.00}]
    service_tiers:
      flex: {multiplier: 0.5}          # half of every rate, long prompts included
      priority:                        # rates of its own; no long-context tier
        {input: 12.50, cached_input: 1.25, output: 75.00}
  gpt-6-sol:
    input: 2.00
    output: 10.00
    service_tiers:
      priority:
        input: 4.00
        output: 20.00
        cached_input: 0.40
        cache_write: 5.00
        cache_write_1h: 5.00
        tiers: [{above: 272000, input: 8.00, cached_input: 0.80, cache_write: 10.00, output: 30.00}]
""",
    ],
}


# -- JSON Schema ----------------------------------------------------------------------------------------


def provider_schema() -> dict[str, Any]:
    """The JSON Schema of a provider file, with its dialect named for editors."""
    from ..spec import json_schema

    return {"$schema": SCHEMA_DIALECT, **json_schema()}


def schema_text() -> str:
    """The schema as written to ``schema/provider.schema.json``."""
    return json.dumps(provider_schema(), indent=2, ensure_ascii=False) + "\n"


# -- key reference --------------------------------------------------------------------------------------


Step = str  # a field name, "[]" for the items of a list, "*" for the values of a mapping


@dataclass
class Section:
    """One model of the format and the key paths where it appears."""

    model: type[BaseModel]
    paths: list[tuple[Step, ...]] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return "-".join(s for s in self.paths[0] if s not in ("[]", "*")) or "top-level"

    def title(self, path: tuple[Step, ...]) -> str:
        text = ""
        for i, step in enumerate(path):
            if step == "[]":
                text += "[]"
            elif step == "*":
                text += "." + KEY_NAMES.get(path[i - 1], "<name>")
            else:
                text += ("." if text else "") + step
        return text

    @property
    def heading(self) -> str:
        if not self.paths[0]:
            return "Top level"
        return " and ".join(f"`{self.title(p)}`" for p in self.paths)


def sections() -> list[Section]:
    """Every model of the provider-file format, top level first, each nested model after its parent."""
    from ..spec import ProviderSpec

    found: dict[type[BaseModel], Section] = {}

    def visit(model: type[BaseModel], path: tuple[Step, ...]) -> None:
        if model in found:
            found[model].paths.append(path)
            return
        found[model] = Section(model, [path])
        for name, info in model.model_fields.items():
            for inner, suffix in _models_in(info.annotation):
                visit(inner, (*path, name, *suffix))

    visit(ProviderSpec, ())
    return list(found.values())


def _models_in(annotation: Any) -> list[tuple[type[BaseModel], tuple[Step, ...]]]:
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, ())]
    if origin in (Union, types.UnionType):
        return [found for arg in args for found in _models_in(arg)]
    if origin is list:
        return [(m, ("[]", *s)) for m, s in _models_in(args[0])]
    if origin is dict:
        return [(m, ("*", *s)) for m, s in _models_in(args[1])]
    return []


_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", Decimal: "number", date: "date",
           datetime: "date and time", Any: "any"}


def type_text(annotation: Any, owner: str = "", links: dict[type, Section] | None = None) -> str:
    """A short human description of a field type, e.g. ``path`` or ``mapping: <name> → string``."""
    links = links or {}
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if options == [str, list[str]]:
            return "path"
        return " or ".join(type_text(a, owner, links) for a in options)
    if origin is Literal:
        return " | ".join(f"`{value}`" for value in args)
    if origin is list:
        inner = type_text(args[0], owner, links)
        if inner.startswith("[mapping]"):
            return "list of [mappings]" + inner.removeprefix("[mapping]")
        return f"list of {inner}" if " " in inner else f"list of {inner}s"
    if origin is dict:
        if args[1] is Any:
            return "mapping"
        return f"mapping: `{KEY_NAMES.get(owner, '<name>')}` → {type_text(args[1], owner, links)}"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "[error kind](#error-kinds)"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        section = links.get(annotation)
        return f"[mapping](#{section.anchor})" if section else "mapping"
    return _SIMPLE.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _inline(value: Any) -> str:
    """A value as it would be written inline in a YAML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        plain = value and value.strip() == value and value[0] not in "{[&*!|>'\"%@`#,?:-"
        return value if plain else json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return str(value)


def default_text(info: Any) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "—"
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_defaults=True, mode="json")
    return f"`{_inline(value)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _objects(data: Any, path: tuple[Step, ...]) -> list[Any]:
    """Every value at a section path in an example."""
    values = [data]
    for step in path:
        following: list[Any] = []
        for value in values:
            if step == "[]" and isinstance(value, list):
                following += value
            elif step == "*" and isinstance(value, dict):
                following += value.values()
            elif isinstance(value, dict) and step in value:
                following.append(value[step])
        values = following
    return values


def _check_provider_example(data: dict[str, Any], text: str) -> None:
    """Load an example file like a real one: ``extends`` resolved against the bundled files, then compiled."""
    from ..compiled import compile_provider
    from ..loader import ProviderSource, bundled_path, discover, merged_data, resolve_chain
    from ..spec import ProviderSpec

    found = discover([bundled_path("providers.d")]).found
    source = ProviderSource(data["name"], Path(f"<example {data['name']}>"), data, text)
    found[source.name] = [*found.get(source.name, []), source]
    chain = resolve_chain(source.name, found)
    compile_provider(ProviderSpec.model_validate(merged_data(chain)), chain)


def check_examples(section: Section) -> list[str]:
    """Validate a section's examples; returns them. Raises `DocsError` if one is invalid or a key is missing."""
    import yaml

    from ..errors import ConfigError

    name = section.model.__name__
    texts = EXAMPLES.get(name, [])
    shown: set[str] = set()
    for text in texts:
        data = yaml.safe_load(text)
        objects = [obj for path in section.paths for obj in _objects(data, path)]
        if not objects:
            raise DocsError(f"an example of {name} has nothing at {section.heading}:\n{text}")
        for obj in objects:
            if isinstance(obj, list):  # a field that takes one or a list (a price's periods): its items are seen
                continue
            try:
                if not section.paths[0]:
                    _check_provider_example(obj, text)
                else:
                    section.model.model_validate(obj)
            except (ValueError, ConfigError) as exc:
                raise DocsError(f"an example of {name} is invalid: {exc}\n{text}") from exc
            shown.update(obj)
    keys = [info.alias or name for name, info in section.model.model_fields.items()]
    missing = [key for key in keys if key not in shown]
    if missing:
        raise DocsError(f"the examples of {name} (engine/cli/docs.py EXAMPLES) do not show: {', '.join(missing)}")
    return texts


def _rst_to_md(text: str) -> str:
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _filters() -> list[str]:
    from ..templates import FILTERS

    lines = ["| Filter | What it gives |", "|---|---|"]
    for name, function in FILTERS.items():
        skip = 2 if getattr(function, "jinja_pass_arg", None) is not None else 1  # a context comes first
        params = list(inspect.signature(function).parameters.values())[skip:]
        shown = ", ".join(("*" if p.kind is p.VAR_POSITIONAL else "") + p.name
                          + ("" if p.default is p.empty else f"={p.default!r}") for p in params)
        usage = f"`x \\| {name}({shown})`" if params else f"`x \\| {name}`"
        summary = _rst_to_md(" ".join((function.__doc__ or "").strip().split("\n\n")[0].split()))
        lines.append(f"| {usage} | {_cell(summary)} |")
    return lines


def _error_kinds() -> list[str]:
    from ..errors import ErrorKind

    missing = [kind.value for kind in ErrorKind if kind.value not in ERROR_KINDS]
    if missing:
        raise DocsError(f"ERROR_KINDS in engine/cli/docs.py does not describe: {', '.join(missing)}")
    return [f"- `{kind.value}`: {ERROR_KINDS[kind.value]}" for kind in ErrorKind]


def reference() -> str:
    """The generated key reference (markdown), from the models in `engine.spec`."""
    found = sections()
    links = {section.model: section for section in found}
    out = [
        "Generated from the models in `engine/spec.py` by `genai docs`; do not edit by hand.",
        "",
        "A **path** is a JSONPath such as `$.choices[0].message.content`, or a list of them tried in "
        "order: the first that finds a non-null value wins. A **template** is Jinja text (see "
        "[Templates](#templates)). An editor that reads `schema/provider.schema.json` shows the same "
        "descriptions.",
        "",
        "Sections: " + ", ".join(f"[{section.heading}](#{section.anchor})" for section in found)
        + ", [template filters](#template-filters), [error kinds](#error-kinds).",
    ]
    for section in found:
        undocumented = [k for k, info in section.model.model_fields.items() if not info.description]
        if undocumented:
            raise DocsError(f"{section.model.__name__} fields without a description in engine/spec.py: "
                            f"{', '.join(undocumented)}")
        out += ["", f'<a id="{section.anchor}"></a>', "", f"### {section.heading}", ""]
        out += [_rst_to_md(inspect.cleandoc(section.model.__doc__ or "")), ""]
        out += ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
        for name, info in section.model.model_fields.items():
            kind = type_text(info.annotation, name, links)
            out.append(f"| `{info.alias or name}` | {_cell(kind)} | {_cell(default_text(info))} "
                       f"| {_cell(info.description or '')} |")
        for text in check_examples(section):
            out += ["", "```yaml", text.rstrip("\n"), "```"]
    out += ["", '<a id="template-filters"></a>', "", "### Template filters", "",
            "Every template can use these filters besides Jinja's own.", "", *_filters()]
    out += ["", '<a id="error-kinds"></a>', "", "### Error kinds", "",
            "A failed call reports one of these kinds, whatever the provider (`errors.kinds` maps a "
            "provider's error types to them; otherwise the HTTP status decides).", "", *_error_kinds()]
    return "\n".join(out) + "\n"


def update_reference(text: str, generated: str | None = None) -> str:
    """The markdown text with the part between the BEGIN/END markers replaced by the reference."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise DocsError(f"the file has no generated part: add the lines\n{BEGIN}\n{END}")
    generated = reference() if generated is None else generated
    return text[:start + len(BEGIN)] + "\n" + generated + text[end:]


# -- the providers table ------------------------------------------------------------------------------
PROVIDERS_BEGIN = "<!-- BEGIN GENERATED PROVIDERS TABLE (genai docs --providers --write README.md) -->"
PROVIDERS_END = "<!-- END GENERATED PROVIDERS TABLE -->"


def _json_output(registry: Any, name: str) -> str:
    """Whether a JSON Schema given as ``output_schema`` reaches the provider, judged by rendering it."""
    from ..render import prepare, render, with_placeholders
    from ..types import CompletionRequest

    spec = registry.spec(name)
    if spec.backend is not None:
        return "by its backend"
    if spec.request is None:
        return "-"
    marker = "genai_docs_probe_field"
    request = CompletionRequest(messages=[{"role": "user", "content": "x"}], model=spec.default_model or "model",
                                output_schema={"type": "object", "properties": {marker: {"type": "string"}}})
    settings, _ = with_placeholders(spec, registry.settings, force=True)
    body = render(prepare(registry.compiled(name), settings), request).content.decode()
    if marker not in body:
        return "no"
    # Escaped quotes around the marker: the schema travels as text inside a message.
    return "JSON mode, schema in prompt" if f'\\"{marker}\\"' in body else "JSON Schema"


def providers_table(registry: Any) -> str:
    """The bundled providers as a markdown table, generated from their files and the price table."""
    lines = ["| provider | auth env variable | stream format | JSON output | takes | embeddings | priced models |",
             "|---|---|---|---|---|---|---|"]
    for name in registry.names():
        spec = registry.spec(name)
        if spec.auth.type == "none":
            auth = "none" if spec.backend is None else "AWS credential chain"
        elif spec.auth.type == "hook":
            auth = f"OAuth2 token (hook `{spec.auth.hook}`)"
        else:
            auth = ", ".join(f"`{e}`" for e in spec.auth.env) or f"`{spec.key_env[0]}`"
            auth += " (optional)" if spec.auth.optional else ""
        stream = "backend" if spec.backend is not None else spec.stream.format.upper() if spec.stream else "none"
        if spec.local:
            priced = "local (free)"
        else:
            prices = registry.prices.models(name, spec.pricing)
            ids = [m.id for m in spec.models]
            priced = f"{sum(1 for i in ids if i in prices)} of {len(ids)}" if ids else "none listed"
        takes = _takes(spec) if spec.request is not None or spec.backend is not None else "embeddings only"
        lines.append(f"| `{name}` | {auth} | {stream} | {_json_output(registry, name)} | {takes} | "
                     f"{_embeddings(spec)} | {priced} |")
    return "\n".join(lines) + "\n"


def _embeddings(spec: Any) -> str:
    """The provider's embeddings: its default model and batch size, or by its backend's models."""
    if spec.backend is not None:
        listed = [m.id for m in spec.models if m.kind == "embedding"]
        return f"{len(listed)} models (backend)" if listed else "no"
    embeddings = spec.embeddings
    if embeddings is None:
        return "no"
    default = f"`{embeddings.default_model}`" if embeddings.default_model else "your model"
    return f"{default}, {embeddings.max_batch} a request"


def _takes(spec: Any) -> str:
    """What a provider's models take, from its capabilities (``some`` when only some of its models do)."""
    default = spec.capabilities_for("")
    listed = [spec.capabilities_for(m.id) for m in spec.models]
    names = (("tools", "tools"), ("parallel_tool_calls", "parallel calls"), ("images", "images"),
             ("image_urls", "image URLs"), ("documents", "PDFs"), ("document_urls", "PDF URLs"))
    out = []
    for attribute, label in names:
        values = {getattr(c, attribute) for c in [default, *listed]} if listed else {getattr(default, attribute)}
        if values == {True}:
            out.append(label)
        elif True in values:
            out.append(f"{label} (some models)")
    return ", ".join(out) or "text"


def update_providers_table(text: str, table: str) -> str:
    """``text`` with the part between the providers-table markers replaced."""
    start, end = text.find(PROVIDERS_BEGIN), text.find(PROVIDERS_END)
    if start < 0 or end < start:
        raise DocsError(f"the file has no '{PROVIDERS_BEGIN}' ... '{PROVIDERS_END}' markers")
    return text[:start + len(PROVIDERS_BEGIN)] + "\n" + table + text[end:]
