"""The provider-file format: pydantic models that validate one YAML file.

Every model rejects unknown keys, so a typo in a provider file is an error with
its key path, never a silently ignored setting. A "path" value is a JSONPath
expression, or a list of them tried in order (the first that finds a non-null
value wins).
"""

from __future__ import annotations

import datetime
import itertools
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import ErrorKind

PathSpec = str | list[str]
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SamplingOption = Literal["stop", "top_p", "seed", "presence_penalty", "frequency_penalty", "user"]
SAMPLING_OPTIONS: tuple[str, ...] = ("stop", "top_p", "seed", "presence_penalty", "frequency_penalty", "user")
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "other"]


class Capabilities(_Strict):
    """What a model can take. A request with more fails before anything is sent (`invalid_request`)."""

    tools: bool | None = Field(default=None, description="Function tools and tool results.")
    parallel_tool_calls: bool | None = Field(
        default=None, description="Several tool calls in one reply, and the `parallel_tool_calls` switch.",
    )
    images: bool | None = Field(default=None, description="Image parts given as data (a `data:` URL).")
    image_urls: bool | None = Field(default=None, description="Image parts given by https URL (default: as `images`).")
    documents: bool | None = Field(default=None, description="Document (PDF) file parts given as data.")
    document_urls: bool | None = Field(default=None, description="Document parts given by URL (default: no).")
    json_schema: bool | None = Field(default=None, description="`output_schema` (JSON output).")
    sampling: list[SamplingOption] | None = Field(
        default=None, description="The common sampling options the API takes: stop, top_p, seed, presence_penalty, "
                                  "frequency_penalty, user.",
    )


class ModelInfo(_Strict):
    """One model the provider serves."""

    id: str = Field(description="The model id as the API expects it (what the body template gets as `model`).")
    kind: Literal["chat", "embedding"] = Field(
        default="chat", description="`chat` (completions) or `embedding` (vectors, through the file's `embeddings`).",
    )
    aliases: list[str] = Field(default=[], description="Other names that resolve to this id, such as dated snapshots.")
    context_window: int | None = Field(
        default=None, gt=0, description="Most tokens (input plus output) the model accepts; informational.",
    )
    max_output_tokens: int | None = Field(
        default=None, gt=0, description="Most output tokens the model produces in one reply; informational.",
    )
    description: str | None = Field(default=None, description="A short note for people reading the model list.")
    options: dict[str, Any] = Field(
        default={}, description="Values of declared `options` for this model only (name to value), over their "
                                "defaults.",
    )
    capabilities: Capabilities = Field(
        default=Capabilities(), description="What this model can take, where it differs from the provider's "
                                            "`capabilities`.",
    )
    deprecated: datetime.date | None = Field(
        default=None, description="When the provider announced the model's end (its deprecation notice). Calls "
                                  "still work, with a warning on the response.",
    )
    retired: datetime.date | None = Field(
        default=None, description="The day the provider stops serving the model (00:00 UTC). From then on a call "
                                  "fails before anything is sent (`not_found`), unless `retired_calls` is `warn` "
                                  "or the setting `allow_retired` is on.",
    )
    retired_calls: Literal["fail", "warn"] = Field(
        default="fail", description="What a call does once the model is retired: `fail` when the provider removed "
                                    "it; `warn` when the provider still answers (with its replacement, say) and the "
                                    "call should go out with a warning.",
    )
    replacement: str | None = Field(
        default=None, description="The model the provider recommends instead; named in the warning and the error.",
    )
    notice: str | None = Field(default=None, description="The provider's notice (URL) that gives the dates.")
    prompt_caching: bool | None = Field(
        default=None, description="`false`: the model never reads from a prompt cache, so `genai check` does not "
                                  "ask for a `cached_input` price (it does for models of a provider whose replies "
                                  "report cached tokens).",
    )

    @model_validator(mode="after")
    def _dates_in_order(self) -> ModelInfo:
        if self.deprecated is not None and self.retired is not None and self.retired < self.deprecated:
            raise ValueError("'retired' is before 'deprecated'")
        return self

    def lifecycle(self, today: datetime.date) -> str | None:
        """``retired``, ``deprecated`` or ``None`` (current) on a day."""
        if self.retired is not None and today >= self.retired:
            return "retired"
        if self.deprecated is not None and today >= self.deprecated:
            return "deprecated"
        return None


OptionType = Literal["string", "integer", "number", "boolean", "object", "array"]
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "object": (dict,),
    "array": (list,),
}


def option_value_problem(option: OptionSpec, value: Any) -> str | None:
    """Why a value does not fit a declared option, or ``None`` when it does (``null`` always fits)."""
    if value is None:
        return None
    kinds = _OPTION_TYPES[option.type]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        return f"must be of type {option.type}, got {type(value).__name__} {value!r}"
    if option.choices is not None and value not in option.choices:
        return f"must be one of {', '.join(map(repr, option.choices))}, got {value!r}"
    return None


class OptionSpec(_Strict):
    """A knob a provider file offers its templates, its models and the files that extend it.

    Templates read it as ``options.<name>``; a model sets it with ``options: {name: value}``; a file that
    extends this one changes its default with ``options: {name: {default: value}}``.
    """

    type: OptionType = Field(description="`string`, `integer`, `number`, `boolean`, `object` or `array`.")
    default: Any = Field(default=None, description="The value when neither the model nor a child file sets one.")
    description: str = Field(description="What the option does; shown in `genai providers show` and the docs.")
    choices: list[Any] | None = Field(default=None, description="The only values allowed, when listed.")

    @model_validator(mode="after")
    def _default_fits(self) -> OptionSpec:
        if (problem := option_value_problem(self, self.default)) is not None:
            raise ValueError(f"default {problem.removeprefix('must be ')}")
        return self


class ConfigVar(_Strict):
    """A per-provider setting (e.g. Azure's resource name), read from env or settings."""

    description: str | None = Field(
        default=None, description="What the value is; shown in the error when a required value is missing.",
    )
    env: list[str] = Field(default=[], description="Env variables read for the value, after `GENAI_<PROVIDER>_<KEY>`.")
    default: str | None = Field(default=None, description="The value used when none is set.")
    required: bool = Field(default=False, description="Fail before any call when no value is set.")
    secret: bool = Field(
        default=False, description="The value is a credential: redacted wherever it appears (requests shown by "
                                   "`genai render`, errors, logs, raw responses), like the API key.",
    )


class AuthSpec(_Strict):
    """How the API key is sent: in a header, a query parameter, by a Python hook, or not at all."""

    type: Literal["header", "query", "hook", "none"] = Field(
        default="header",
        description="`header`: the key goes in a header; `query`: in a query parameter; `hook`: a Python hook "
                    "gives the headers (or query values) of each request, such as an OAuth2 access token it "
                    "refreshes; `none`: no key.",
    )
    hook: Annotated[str | None, Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="`module:Class` of the auth hook (type `hook`), imported when the provider is first used; see "
                    "docs/python-backends.md. It reads its settings from the file's `config`.",
    )] = None
    header: str = Field(
        default="Authorization", description="The header that carries the key (type `header`); for a hook, the "
                                             "header it sets, shown as `***` where requests are shown.",
    )
    value: str = Field(
        default="Bearer {{ api_key }}",
        description="Text template of the header or query value; `{{ api_key }}` is the key.",
    )
    query_param: str | None = Field(
        default=None, description="The query parameter that carries the key (type `query`).",
    )
    env: list[str] = Field(
        default=[],
        description="Env variables that may hold the key, read after `GENAI_<PROVIDER>_API_KEY`; never inherited.",
    )
    optional: bool = Field(
        default=False, description="Send no key when none is set instead of failing (servers where a key is optional).",
    )

    @model_validator(mode="after")
    def _query_needs_param(self) -> AuthSpec:
        if self.type == "query" and not self.query_param:
            raise ValueError("auth.type 'query' needs auth.query_param (e.g. 'key')")
        if self.type == "hook" and not self.hook:
            raise ValueError("auth.type 'hook' needs auth.hook ('module:Class')")
        return self


PartKind = Literal["text", "image", "image_url", "document", "document_url", "tool_call", "tool_result", "reasoning",
                   "redacted_reasoning"]


class MessagesSpec(_Strict):
    """How the unified (OpenAI-shaped) messages become the API's: the body template gets them as `messages`.

    Without `message` they keep OpenAI's shape. A *shape* is YAML whose `$name` strings are filled in; a key
    that comes out null is left out. A part whose kind has no shape under `parts` is refused before sending.
    """

    system: Literal["keep", "separate"] = Field(
        default="keep", description="`separate`: system and developer messages leave the list and their text is "
                                    "the template variable `system`; `keep`: they stay.",
    )
    roles: dict[str, str] = Field(default={}, description="Role renames, such as `{assistant: model, tool: user}`.")
    tool_results: Literal["separate", "merge"] = Field(
        default="separate", description="`merge`: consecutive tool results become one message (Anthropic, Gemini).",
    )
    merge_roles: bool = Field(
        default=False, description="Consecutive messages of one (renamed) role become one, their parts joined.",
    )
    calls: Literal["field", "parts", "items"] = Field(
        default="field", description="Where an assistant's tool calls go: the message's `$tool_calls`, among "
                                     "its `$parts`, or (`items`) each an entry of the list of its own, after the "
                                     "message (APIs whose conversation is a flat list of typed items).",
    )
    reasoning: Literal["parts", "items"] = Field(
        default="parts", description="Where replayed reasoning goes: first among the message's `$parts`, or "
                                     "(`items`) each block an entry of the list of its own, before the message. A "
                                     "message left with nothing once its calls and reasoning are items is not "
                                     "written.",
    )
    message: Any = Field(
        default=None, description="The shape of one message. Variables: `$role`, `$content` (the text when the "
                                  "message is plain text, else `$parts`), `$parts`, `$text`, `$tool_calls`, "
                                  "`$tool_call_id`, `$name` (of the call a tool result answers), `$images` "
                                  "(their base64 data), `$message` (the unified message).",
    )
    role_message: dict[str, Any] = Field(
        default={}, description="A message shape for one unified role (`tool`, `assistant`, ...), instead of "
                                "`message`.",
    )
    parts: dict[PartKind, Any] = Field(
        default={}, description="The shape of each kind of part. `text`: `$text`. `image` (data) and `image_url`: "
                                "`$data` (base64), `$url`, `$media_type`, `$format` (`png`), `$detail`. "
                                "`document`, `document_url`: the same plus `$filename`, `$name`. `tool_call`: "
                                "`$id`, `$name`, `$arguments` (JSON text), `$args` (its object), `$signature`. "
                                "`tool_result`: `$id`, `$name`, `$content` (text), `$value` (parsed when JSON), "
                                "`$object` (`$value`, or `{output: $value}`), `$is_error`. `reasoning` (a block "
                                "with text) and `redacted_reasoning` (a block with opaque data): `$text`, "
                                "`$signature`, `$redacted`, `$id`. Images and documents given as data also have "
                                "`$data_url`.",
    )
    call_id_length: int | None = Field(
        default=None, gt=0, description="The API takes tool call ids of exactly this many letters and digits: "
                                        "other ids are mapped to such ids, the same way for a call and its result.",
    )


class ToolsSpec(_Strict):
    """How the unified tools and `tool_choice` become the API's: the body template gets `tools`, `tool_choice`.

    Without it they pass in OpenAI's shape.
    """

    tool: Any = Field(description="The shape of one tool: `$name`, `$description`, `$parameters` (its JSON "
                                  "Schema), `$strict`, `$function`.")
    choice: dict[Literal["auto", "none", "required", "named"], Any] = Field(
        default={}, description="The shape of each kind of `tool_choice`; `$name` is the named tool, `$no_parallel` "
                                "is true when the caller set `parallel_tool_calls: false`. Without an `auto` shape "
                                "nothing is sent for auto; without a `none` shape the tools are left out; any other "
                                "kind without a shape is refused.",
    )


class RequestSpec(_Strict):
    """The HTTP request: method, path and query templates, static headers, Jinja body template."""

    method: Literal["GET", "POST", "PUT", "PATCH"] = Field(default="POST", description="The HTTP method.")
    path: str = Field(description="Path template appended to `base_url`; values are percent-encoded.")
    stream_path: str | None = Field(
        default=None, description="Path template for streamed calls, when it differs from `path`.",
    )
    query: dict[str, str] = Field(default={}, description="Query parameters: name to text template.")
    stream_query: dict[str, str] = Field(default={}, description="Extra query parameters for streamed calls only.")
    headers: dict[str, str] = Field(
        default={}, description="Extra headers: name to text template (`content-type: application/json` is added).",
    )
    body: str | None = Field(
        default=None, description="Jinja template of the JSON body; every value must go through `| tojson`.",
    )
    messages: MessagesSpec | None = Field(
        default=None, description="How unified messages are written in this API's shape (else OpenAI's).",
    )
    tools: ToolsSpec | None = Field(
        default=None, description="How unified tools and `tool_choice` are written (else OpenAI's shape).",
    )


class ItemsSpec(_Strict):
    """Items found in a body or event: `each` selects them, the other paths are read inside each one."""

    each: PathSpec | None = Field(
        default=None, description="Path of the items (every match is one); without it, the event itself is one.",
    )
    index: PathSpec | None = Field(
        default=None, description="Path of the item's index: items with one index are pieces of one item.",
    )


class ToolCallSpec(ItemsSpec):
    """Where tool calls are: each item is one call (or, in a stream, a piece of one)."""

    id: PathSpec | None = Field(default=None, description="Path of the call's id (one is made when absent).")
    name: PathSpec | None = Field(default=None, description="Path of the function name.")
    arguments: PathSpec | None = Field(
        default=None, description="Path of the arguments: JSON text (in a stream, a piece to append) or an object.",
    )
    signature: PathSpec | None = Field(
        default=None, description="Path of opaque data the API needs back with the call on the next turn.",
    )


class ThinkingSpec(ItemsSpec):
    """Where reasoning blocks the API needs replayed are (text with a signature, or redacted data)."""

    text: PathSpec | None = Field(
        default=None, description="Path of the block's reasoning text; several matches are joined.",
    )
    signature: PathSpec | None = Field(default=None, description="Path of the block's signature.")
    redacted: PathSpec | None = Field(default=None, description="Path of a redacted block's opaque data.")
    id: PathSpec | None = Field(
        default=None, description="Path of the block's id, for an API that wants it back with the block (`$id` "
                                  "in the reasoning shapes).",
    )


class _ReplyFields(_Strict):
    """Fields a response body and a stream event both may carry. In a stream the last value reported wins."""

    model: PathSpec | None = Field(default=None, description="Path of the model that answered.")
    finish_reason: PathSpec | None = Field(default=None, description="Path of the reason the reply ended.")
    input_tokens: PathSpec | None = Field(default=None, description="Path of the input token count.")
    output_tokens: PathSpec | None = Field(default=None, description="Path of the output token count.")
    cached_input_tokens: PathSpec | None = Field(
        default=None, description="Path of the input tokens read from the prompt cache.",
    )
    cache_write_tokens: PathSpec | None = Field(
        default=None, description="Path of the input tokens written to the prompt cache.",
    )
    reasoning_tokens: PathSpec | None = Field(default=None, description="Path of the reasoning token count.")
    cache_write_1h_tokens: PathSpec | None = Field(
        default=None, description="Path of the input tokens written to the cache with a one-hour lifetime, a part "
                                  "of `cache_write_tokens` that a price may bill apart (`cache_write_1h`).",
    )
    service_tier: PathSpec | None = Field(
        default=None, description="Path of the service tier the provider says served the call (`flex`, "
                                  "`priority`, ...); a price may bill it apart (`service_tiers`).",
    )
    cost: PathSpec | None = Field(
        default=None, description="Path of the call's cost in USD as the provider bills it; used instead of the "
                                  "price table when present (e.g. OpenRouter's usage.cost).",
    )


EmbeddingOption = Literal["dimensions", "input_type", "user"]


class EmbeddingsResponseSpec(_Strict):
    """Where the vectors and usage are in an embeddings response."""

    vectors: PathSpec = Field(description="Path of the vectors: each match is one input's vector (a list of "
                                          "numbers), in the order of the inputs unless `index` says otherwise.")
    index: PathSpec | None = Field(
        default=None, description="Path, matched alongside `vectors`, of each vector's input index (for APIs whose "
                                  "items say which input they answer).",
    )
    model: PathSpec | None = Field(default=None, description="Path of the model that answered.")
    input_tokens: PathSpec | None = Field(
        default=None, description="Path of the input token count; several matches (a count per input) are summed.",
    )


class EmbeddingsSpec(_Strict):
    """The embeddings operation: turning texts into vectors, next to chat in the same file (same base URL, auth,
    config and errors)."""

    base_url: str | None = Field(
        default=None, description="Text template of the API root for embeddings, where it is not `base_url`; an "
                                  "override of the provider's base URL (`GENAI_<PROVIDER>_BASE_URL`) applies to both.",
    )
    path: str = Field(description="Path template appended to the base URL; values are percent-encoded.")
    method: Literal["POST", "GET", "PUT"] = Field(default="POST", description="HTTP method.")
    query: dict[str, str] = Field(default={}, description="Query parameters: name to text template.")
    body: str = Field(
        description="Body template; renders JSON. It gets `inputs` (the texts of one batch), `model`, `dimensions`, "
                    "`input_type` (`query`, `document`, `classification`, `clustering` or none), `user`, `extra`, "
                    "`options` and `config`.",
    )
    default_model: str | None = Field(
        default=None, description="The embedding model used when a call names only the provider.",
    )
    max_batch: int = Field(
        default=1, ge=1, le=100_000,
        description="Most inputs in one request: longer lists are split into batches and sent concurrently.",
    )
    model_max_batch: dict[str, Annotated[int, Field(ge=1, le=100_000)]] = Field(
        default={}, description="Models whose batch limit differs from `max_batch` (model id to most inputs).",
    )
    takes: list[EmbeddingOption] = Field(
        default=[], description="The options the API takes (`dimensions`: shorter vectors; `input_type`; `user`); "
                                "a call with another is refused before anything is sent.",
    )
    response: EmbeddingsResponseSpec = Field(description="Where the vectors and usage are in a response body.")


class ResponseSpec(_ReplyFields):
    """Where each unified field is found in a non-streamed response body."""

    content: PathSpec = Field(description="Path of the reply text; several matches are joined.")
    reasoning: PathSpec | None = Field(
        default=None, description="Path of the model's reasoning text, when the API returns it.",
    )
    tool_calls: ToolCallSpec | None = Field(default=None, description="Where the tool calls of a reply are.")
    thinking: ThinkingSpec | None = Field(
        default=None, description="Where reasoning blocks are that must be sent back on the next turn.",
    )
    input_includes_cached: bool = Field(
        default=True, description="Whether the API's input count already includes cached and cache-write tokens.",
    )
    output_includes_reasoning: bool = Field(
        default=True, description="Whether the API's output count already includes reasoning tokens.",
    )
    usage_omits_zeros: bool = Field(
        default=False,
        description="The API leaves zero counts out: when any count is reported, a mapped count that is absent is 0.",
    )


class Condition(_Strict):
    """A test on a body or event: the value at `path` (or its presence) compared. Without a comparison it
    holds when the value is truthy."""

    path: PathSpec = Field(description="Path of the value tested (a JSONPath, or `header:<name>`).")
    equals: Any = Field(default=None, description="Holds when the value equals this (`10000` and `\"10000\"` "
                                                  "are equal).")
    not_equals: Any = Field(default=None, description="Holds when the value differs from this.")
    present: bool | None = Field(default=None, description="`true`: holds when the path finds anything, even "
                                                           "null or an empty string; `false`: when it finds nothing.")
    truthy: bool | None = Field(default=None, description="`true`: holds when the value is truthy; `false`: when "
                                                          "it is missing or falsy.")

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [name for name in ("equals", "not_equals", "present", "truthy") if name in self.model_fields_set]
        if len(tests) > 1:
            raise ValueError(f"a condition takes one test, got {', '.join(tests)}")
        return self


class ErrorSpec(_Strict):
    """Where the message and type are found in an error body, and how types map to kinds."""

    message: PathSpec | None = Field(default=None, description="Path of the error message in an error body.")
    type: PathSpec | None = Field(default=None, description="Path of the error type or code in an error body.")
    request_id: PathSpec | None = Field(
        default=None, description="Path of the provider's request id (often a header: `header:x-request-id`), "
                                  "kept on every response, failed or not.",
    )
    when: list[Condition] = Field(
        default=[], description="Conditions on a 2xx body that mark the reply failed (an envelope such as "
                                "`{success: false}`); any one that holds fails it, with its kind from `type`. A 2xx "
                                "body with no content at `response.content` but an error `message` fails too.",
    )
    kinds: dict[str | int, ErrorKind] = Field(
        default={}, description="Error type or code to error kind; unlisted types fall back to the HTTP status. "
                                "Keys match the type as text, so `10000` and `\"10000\"` are one key.",
    )
    status_kinds: dict[int, ErrorKind] = Field(
        default={}, description="HTTP status to error kind, for statuses the API uses its own way (e.g. 498).",
    )
    message_kinds: dict[str, ErrorKind] = Field(
        default={}, description="Text found in an error message to error kind, for APIs that say what went "
                                "wrong only in words; checked after `kinds`, before `status_kinds`.",
    )


class StreamRule(_ReplyFields):
    """What one kind of stream event carries. Usage values: the last one reported wins."""

    delta: PathSpec | None = Field(
        default=None, description="Path of the text this event adds to the reply (only string values count).",
    )
    reasoning_delta: PathSpec | None = Field(
        default=None, description="Path of the reasoning text this event adds (only string values count).",
    )
    error_message: PathSpec | None = Field(
        default=None, description="Path of an error message; an event where it is found fails the call.",
    )
    error_type: PathSpec | None = Field(
        default=None, description="Path of the error type, mapped through `errors.kinds`.",
    )
    tool_call: ToolCallSpec | None = Field(
        default=None, description="Tool calls, or pieces of them, this event carries (pieces join by `index`).",
    )
    thinking: ThinkingSpec | None = Field(
        default=None, description="Pieces of reasoning blocks to replay (text and signature, joined by `index`).",
    )
    when: Condition | None = Field(
        default=None, description="The event's text, reasoning, tool call and thinking pieces count only when this "
                                  "holds (special tokens, a flag); usage, errors and `end` are read regardless.",
    )
    error: bool = Field(default=False, description="Every event of this kind is an error.")
    end: bool | str | Condition = Field(
        default=False,
        description="`true`: this event ends the stream; a path: the event ends it when the value there is truthy; "
                    "a condition (e.g. `{path: $.final, present: true}`): when it holds.",
    )


class StreamSpec(_Strict):
    """How a streamed response is framed and what each event means."""

    format: Literal["sse", "ndjson"] = Field(
        default="sse", description="`sse` (Server-Sent Events) or `ndjson` (one JSON object per line).",
    )
    done: str | None = Field(default=None, description="The data line that ends an SSE stream, such as `[DONE]`.")
    event_type: PathSpec | None = Field(
        default=None,
        description="Path of the event type inside each event, when the SSE `event:` line does not carry it.",
    )
    chunk: StreamRule | None = Field(
        default=None, description="The rule for every event that has no rule of its own in `events`.",
    )
    events: dict[str, StreamRule] = Field(
        default={}, description="Rules by event type (the SSE `event:` name or the value at `event_type`).",
    )

    @model_validator(mode="after")
    def _has_an_end(self) -> StreamSpec:
        rules = [*self.events.values(), *([self.chunk] if self.chunk else [])]
        if not rules:
            raise ValueError("a stream needs 'chunk' (the rule for every event) or per-type 'events'")
        if self.done is None and not any(rule.end for rule in rules):
            raise ValueError(
                "a stream needs an end marker: 'done' (e.g. '[DONE]') or a rule with 'end' "
                "(true, or a JSONPath that is truthy on the last event); otherwise a cut-off "
                "stream could not be told from a complete one"
            )
        return self


# Prices are USD per million tokens. Anything above this is a mistake (a price per billion, a misplaced point):
# the dearest model of any provider costs a few hundred.
MAX_PRICE = Decimal(10_000)
MAX_TOKENS_THRESHOLD = 10**10
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RATE_FIELDS: tuple[str, ...] = ("input", "output", "cached_input", "cache_write", "cache_write_1h")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def price_value(value: Any) -> Any:
    """A price as written, made exact: YAML gives floats, and str() keeps the written digits (0.59 stays 0.59)."""
    return str(value) if isinstance(value, float) else value


def check_price(value: Decimal | None) -> Decimal | None:
    if value is not None and not (value.is_finite() and 0 <= value <= MAX_PRICE):
        raise ValueError(f"a price is USD per million tokens, from 0 to {MAX_PRICE:,}; got {value}")
    return value


def hour_range(text: str) -> tuple[int, int]:
    """``"01:00-04:00"`` as seconds of the day, start included, end excluded; ``ValueError`` when malformed."""
    match = _HOURS.match(text)
    if not match:
        raise ValueError(f"hours are 'HH:MM-HH:MM' in UTC, such as '01:00-04:00'; got {text!r}")
    h1, m1, h2, m2 = map(int, match.groups())
    start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
    if end > 86400:
        raise ValueError(f"{text!r} ends after 24:00")
    if end <= start:
        raise ValueError(f"{text!r} ends before it starts: split a range past midnight in two, "
                         "'22:00-24:00' and '00:00-02:00' (with the next day's `days`)")
    return start, end


class _Rates(_Strict):
    input: Decimal | None = Field(default=None, description="USD per million uncached input tokens.")
    output: Decimal | None = Field(default=None, description="USD per million output tokens (reasoning included).")
    cached_input: Decimal | None = Field(
        default=None, description="USD per million input tokens read from the cache.",
    )
    cache_write: Decimal | None = Field(
        default=None, description="USD per million input tokens written to the cache (the default lifetime).",
    )
    cache_write_1h: Decimal | None = Field(
        default=None, description="USD per million input tokens written to the cache with a one-hour lifetime.",
    )

    @field_validator(*RATE_FIELDS, mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        return price_value(value)

    @field_validator(*RATE_FIELDS)
    @classmethod
    def _sane(cls, value: Decimal | None) -> Decimal | None:
        return check_price(value)

    def rates(self) -> dict[str, Decimal]:
        """The rates this entry sets."""
        return {name: value for name in RATE_FIELDS if (value := getattr(self, name)) is not None}


class PriceTier(_Rates):
    """The rates of a prompt past a size. The provider bills the whole request at them (a cliff): every input,
    cached and output token, not only the tokens past the threshold. The prompt size counts every input
    token, cache reads and writes included. Rates a tier leaves out stay as they are; of several tiers, the
    highest the prompt reaches applies. Give `above` or `at_least`, the rule the provider states."""

    above: int | None = Field(
        default=None, gt=0, le=MAX_TOKENS_THRESHOLD,
        description="The tier applies to a prompt of more than this many tokens (200,000 reaches it at 200,001).",
    )
    at_least: int | None = Field(
        default=None, gt=0, le=MAX_TOKENS_THRESHOLD,
        description="The tier applies to a prompt of at least this many tokens (200,000 reaches it at 200,000).",
    )

    @model_validator(mode="after")
    def _one_threshold(self) -> PriceTier:
        if (self.above is None) == (self.at_least is None):
            raise ValueError("a tier takes one threshold: 'above' (more than N prompt tokens) or 'at_least'")
        if not self.rates():
            raise ValueError("a tier needs at least one rate (input, output, cached_input, ...)")
        return self

    @property
    def threshold(self) -> int:
        """The smallest prompt that reaches the tier."""
        return self.above + 1 if self.above is not None else self.at_least  # type: ignore[return-value]


class PriceWindow(_Rates):
    """Rates during hours of the week, in UTC, chosen by the time the request started (off-peak or peak
    prices). The first window that holds applies; rates it leaves out stay as they are."""

    days: list[Weekday] = Field(
        default=list(WEEKDAYS), description="The UTC weekdays it holds on: mon, tue, wed, thu, fri, sat, sun.",
    )
    hours: list[str] = Field(
        default=["00:00-24:00"], description="UTC hours it holds in on those days, as 'HH:MM-HH:MM' (start "
                                             "included, end excluded; '24:00' ends a day). A range past "
                                             "midnight is written as two.",
    )

    @field_validator("hours")
    @classmethod
    def _hours(cls, hours: list[str]) -> list[str]:
        if not hours:
            raise ValueError("a window needs at least one range of hours")
        for text in hours:
            hour_range(text)
        return hours

    @model_validator(mode="after")
    def _has_rates(self) -> PriceWindow:
        if not self.days:
            raise ValueError("a window needs at least one day")
        if not self.rates():
            raise ValueError("a window needs at least one rate (input, output, cached_input, ...)")
        return self


class ServiceTierPrice(_Rates):
    """The price of a service tier the reply reports (`response.service_tier`, such as `flex` or `priority`).
    Either a `multiplier` of every rate (prompt-size tiers and windows included), or rates of its own (at
    least `input` and `output`, and its own `tiers` if it has any: the model's tiers and windows do not apply).
    A tier the reply names that is not listed costs the model's usual rates."""

    multiplier: Decimal | None = Field(
        default=None, gt=0, le=100, description="Every rate of the model times this (`0.5`: half price).",
    )
    tiers: list[PriceTier] = Field(default=[], description="Prompt-size tiers of this service tier's own rates.")

    @field_validator("multiplier", mode="before")
    @classmethod
    def _exact_multiplier(cls, value: Any) -> Any:
        return price_value(value)

    @model_validator(mode="after")
    def _multiplier_or_rates(self) -> ServiceTierPrice:
        if self.multiplier is not None:
            if self.rates() or self.tiers:
                raise ValueError("a service tier is a 'multiplier' or rates of its own, not both")
            if not self.multiplier.is_finite():
                raise ValueError("the multiplier must be a finite number")
        elif self.input is None or self.output is None:
            raise ValueError("a service tier needs a 'multiplier', or rates of its own with at least "
                             "'input' and 'output'")
        else:
            _check_tiers(self.tiers)
        return self


def _check_tiers(tiers: list[PriceTier]) -> None:
    thresholds = [tier.threshold for tier in tiers]
    if thresholds != sorted(set(thresholds)):
        raise ValueError("tiers go from the smallest threshold to the largest, each a different size")


Instant = datetime.date | datetime.datetime


def instant(value: Instant, end: bool = False) -> datetime.datetime:
    """A `from`/`until` value as an aware UTC instant: a date starts at 00:00 UTC; as an end (``until``) it
    includes its whole day, so its instant is 00:00 UTC the day after. A time without a zone is UTC."""
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value.astimezone(datetime.UTC)
    start = datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.UTC)
    return start + datetime.timedelta(days=1) if end else start


class Price(_Rates):
    """USD per million tokens for one model: its rates, and the rules that change them (prompt-size tiers,
    hours of the week, service tiers). A model whose price changes on a date lists one price per period,
    each with `from` and `until`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    input: Decimal = Field(description="USD per million uncached input tokens.")
    output: Decimal = Field(
        default=Decimal(0), description="USD per million output tokens (reasoning included). Embedding models "
                                        "are priced per input token: give `input` only.",
    )
    cached_input: Decimal | None = Field(
        default=None, description="USD per million input tokens read from the cache (default: `input`).",
    )
    cache_write: Decimal | None = Field(
        default=None, description="USD per million input tokens written to the cache, at the default lifetime "
                                  "(default: `input`).",
    )
    cache_write_1h: Decimal | None = Field(
        default=None, description="USD per million input tokens written to the cache with a one-hour lifetime, "
                                  "where the provider bills it apart and the reply reports it "
                                  "(`response.cache_write_1h_tokens`; default: `cache_write`).",
    )
    tiers: list[PriceTier] = Field(
        default=[], description="Rates for prompts past a size, smallest threshold first.",
    )
    windows: list[PriceWindow] = Field(
        default=[], description="Rates during hours of the week (UTC), such as off-peak prices.",
    )
    service_tiers: dict[str, ServiceTierPrice] = Field(
        default={}, description="Prices by the service tier the reply reports (`flex`, `priority`, `batch`).",
    )
    from_: Instant | None = Field(
        default=None, alias="from",
        description="The first day (00:00 UTC) or instant this price applies; before it, an earlier period's.",
    )
    until: Instant | None = Field(
        default=None, description="The last day this price applies (through 24:00 UTC), or the instant it ends.",
    )
    source: str | None = Field(default=None, description="Where the price was read.")
    date: datetime.date | None = Field(default=None, description="When the price was checked.")

    @model_validator(mode="after")
    def _rules(self) -> Price:
        _check_tiers(self.tiers)
        if self.tiers and self.windows:
            raise ValueError("a price has prompt-size 'tiers' or time 'windows', not both (no provider bills by "
                             "both at once)")
        if self.from_ is not None and self.until is not None and \
                instant(self.until, end=True) <= instant(self.from_):
            raise ValueError("'until' is before 'from'")
        return self

    @property
    def starts(self) -> datetime.datetime | None:
        return None if self.from_ is None else instant(self.from_)

    @property
    def ends(self) -> datetime.datetime | None:
        return None if self.until is None else instant(self.until, end=True)


def check_schedule(periods: list[Price]) -> list[Price]:
    """Periods of one model's price, sorted by start; raises ``ValueError`` when two overlap."""
    if len(periods) > 1:
        floor = datetime.datetime.min.replace(tzinfo=datetime.UTC)
        periods = sorted(periods, key=lambda p: p.starts or floor)
        for before, after in itertools.pairwise(periods):
            if before.ends is None or after.starts is None or before.ends > after.starts:
                raise ValueError("the periods of a price overlap: each but the last needs 'until', each but the "
                                 "first 'from', and a period starts after the one before it ends")
    return periods


PriceEntry = Price | list[Price]


class ProviderSpec(_Strict):
    """One provider file, after ``extends`` is resolved."""

    name: Annotated[str, Field(
        pattern=NAME_PATTERN,
        description="The provider name, the first part of `provider/model`; lowercase letters, digits, `.`, `_`, `-`.",
    )]
    extends: str | None = Field(
        default=None,
        description="A provider whose keys this file inherits, except its identity (name, description, docs_url, "
                    "checked, models, default_model, pricing) and `auth.env`; set a key to `null` to remove it.",
    )
    description: str = Field(default="", description="One line saying what the provider is.")
    docs_url: str | None = Field(default=None, description="The API reference the file was written from.")
    checked: datetime.date | None = Field(
        default=None, description="When the file was last checked against that reference.",
    )
    base_url: str | None = Field(
        default=None,
        description="Text template of the API root (no trailing slash); `GENAI_<PROVIDER>_BASE_URL` overrides it.",
    )
    default_model: str | None = Field(default=None, description="The model used when a call names only the provider.")
    models: list[ModelInfo] = Field(
        default=[], description="The models the provider serves (calls may use other ids too).",
    )
    local: bool = Field(default=False, description="A server on your own machine: calls cost nothing.")
    auth: AuthSpec = Field(default=AuthSpec(type="none"), description="How the API key is sent.")
    config: dict[str, ConfigVar] = Field(
        default={}, description="Settings the templates read as `config.<name>`, such as a resource name.",
    )
    options: dict[str, OptionSpec] = Field(
        default={}, description="Knobs the templates read as `options.<name>`, declared with type, default and "
                                "description; models and files that extend this one set them.",
    )
    capabilities: Capabilities = Field(
        default=Capabilities(), description="What the provider's models can take, unless a model says otherwise "
                                            "(unlisted models get these). Unset: no tools, images or documents; "
                                            "JSON output and every sampling option.",
    )
    chat_templates: dict[str, str] = Field(
        default={}, description="Chat templates of your own for prompt-string APIs, used with "
                                "`messages | chat_template(\"<name>\")`: Jinja text given `messages` (OpenAI-shaped) "
                                "and `add_generation_prompt`; values are inserted as they are.",
    )
    finish_reasons: dict[str, FinishReason] = Field(
        default={}, description="The API's finish reasons to the unified ones (stop, length, tool_calls, "
                                "content_filter, other). OpenAI's own words need no entry; others map to `other`.",
    )
    request: RequestSpec | None = Field(default=None, description="The HTTP request a call sends.")
    response: ResponseSpec | None = Field(default=None, description="Where the unified fields are in a response body.")
    errors: ErrorSpec = Field(default=ErrorSpec(), description="How error bodies are read.")
    stream: StreamSpec | None = Field(
        default=None, description="How a streamed response is read; without it, a streamed call makes one plain call.",
    )
    embeddings: EmbeddingsSpec | None = Field(
        default=None, description="The embeddings operation (texts to vectors); without it, the provider has none.",
    )
    pricing: dict[str, PriceEntry] = Field(
        default={}, description="Prices by model id (a list for a price that changes on a date); the bundled and "
                                "the user pricing files take precedence, field by field.",
    )
    backend: Annotated[str | None, Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="`module:Class` of a Python backend that makes the calls instead of `request`.",
    )] = None

    @field_validator("pricing")
    @classmethod
    def _schedules(cls, pricing: dict[str, PriceEntry]) -> dict[str, PriceEntry]:
        return {model: check_schedule(entry) if isinstance(entry, list) else entry for model, entry in pricing.items()}

    @model_validator(mode="after")
    def _http_needs_request(self) -> ProviderSpec:
        if self.backend is None:
            needed = ("base_url", "request", "response") if self.embeddings is None or self.request is not None \
                or self.response is not None else ("base_url",)
            missing = [key for key in needed if getattr(self, key) is None]
            if missing:
                raise ValueError(f"an HTTP provider needs {', '.join(missing)} (or a Python 'backend'; a provider "
                                 "with only embeddings needs base_url and embeddings)")
            if self.request is not None and self.request.body is None and self.request.method != "GET":
                raise ValueError("request.body is required for a POST request")
        ids = [m.id for m in self.models]
        if self.default_model and ids and self.resolve_alias(self.default_model) not in ids:
            raise ValueError(f"default_model {self.default_model!r} is not one of the listed models")
        return self

    def options_for(self, model: str) -> dict[str, Any]:
        """Option values for a model: the declared defaults, overridden by the model's own values."""
        values = {name: option.default for name, option in self.options.items()}
        for info in self.models:
            if info.id == model and info.options:
                values.update(info.options)
        return values

    def problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Mistakes that span keys, as (key path, message): model option values that are not declared or do not
        fit their declaration."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        declared = ", ".join(sorted(self.options)) or "none"
        for i, info in enumerate(self.models):
            for name, value in info.options.items():
                where = ("models", i, "options", name)
                option = self.options.get(name)
                if option is None:
                    found.append((where, f"unknown option (declared options: {declared})"))
                elif (problem := option_value_problem(option, value)) is not None:
                    found.append((where, problem))
        return found

    def capabilities_for(self, model: str) -> ResolvedCapabilities:
        """What a model can take: its own capabilities over the provider's, over the defaults."""
        own = next((m.capabilities for m in self.models if m.id == model), None)
        merged = {**_DEFAULT_CAPABILITIES, **self.capabilities.model_dump(exclude_none=True),
                  **(own.model_dump(exclude_none=True) if own is not None else {})}
        if merged["image_urls"] is None:
            merged["image_urls"] = merged["images"]
        return ResolvedCapabilities(**merged)

    def resolve_alias(self, model: str) -> str:
        """The canonical model id for an alias (or the id itself)."""
        for info in self.models:
            if model == info.id or model in info.aliases:
                return info.id
        return model

    @property
    def key_env(self) -> list[str]:
        """Env variables that may hold the API key, in lookup order."""
        return [env_name(self.name, "API_KEY"), *self.auth.env]


_DEFAULT_CAPABILITIES: dict[str, Any] = {
    "tools": False, "parallel_tool_calls": False, "images": False, "image_urls": None, "documents": False,
    "document_urls": False, "json_schema": True, "sampling": list(SAMPLING_OPTIONS)}


@dataclass(frozen=True, slots=True)
class ResolvedCapabilities:
    tools: bool
    parallel_tool_calls: bool
    images: bool
    image_urls: bool
    documents: bool
    document_urls: bool
    json_schema: bool
    sampling: list[str]


def env_name(provider: str, key: str) -> str:
    """``GENAI_<PROVIDER>_<KEY>`` with the provider name upper-cased and made env-safe."""
    return f"GENAI_{re.sub(r'[^A-Za-z0-9]', '_', provider).upper()}_{key.upper()}"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a provider file (for editors and the YAML language server)."""
    return ProviderSpec.model_json_schema()
