"""A provider spec with its templates and JSONPath expressions compiled, once.

Compiling is where a bad template or JSONPath is found: the error names the
file, the key path and the line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorKind, JSONPathError, ProviderFileError
from .jsonpath import Extractor, plain_path, plain_reader
from .lifecycle import dated
from .loader import ProviderSource, locate, value_line
from .shapes import Filler, MessageShapes, ShapeError, ToolShapes, compile_shape
from .spec import Condition, ItemsSpec, ModelInfo, PathSpec, ProviderSpec, ResolvedCapabilities, StreamRule
from .templates import TemplateSyntaxError, compile_template, options_read, outputs_one_value

Render = Callable[[Mapping[str, Any]], str]

# The unified finish reasons are OpenAI's words; every provider file maps its own onto them.
OPENAI_FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
                         "content_filter": "content_filter", "function_call": "tool_calls"}

USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
                "cache_write_1h_tokens")
RULE_FIELDS = ("delta", "reasoning_delta", "model", "finish_reason", *USAGE_FIELDS, "cost", "service_tier",
               "error_message", "error_type")


_UNSET = object()
JOINED = ("text",)  # item fields whose matches are joined (a reasoning block's summary parts), not the first taken


@dataclass(slots=True)
class CompiledCondition:
    """A condition compiled: ``holds(data)`` tests the value at its path."""

    path: Extractor
    test: str  # equals, not_equals, present, truthy
    expected: Any = True

    def holds(self, data: Any) -> bool:
        if self.test == "present":
            return self.path.found(data) is self.expected
        value = self.path.value(data)
        if self.test == "truthy":
            return bool(value) is self.expected
        same = value == self.expected or (value is not None and self.expected is not None
                                           and not isinstance(value, dict | list) and str(value) == str(self.expected))
        return same if self.test == "equals" else not same


@dataclass(slots=True)
class CompiledItems:
    """An items spec (tool calls, reasoning blocks) compiled: ``each`` selects items, ``fields`` read each."""

    each: Extractor | None
    index: Extractor | None
    fields: tuple[tuple[str, Extractor], ...]
    # When every field is one plain path under one parent (``$.delta.thinking``, ``$.delta.signature``):
    # the parent's reader and each field's key, so that an event is read with one walk and a few gets.
    _parent: Any = None
    _keys: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        paths = [plain_path(extractor) for _, extractor in self.fields]
        if self.each is None and paths and all(p and type(p[-1]) is str for p in paths):
            parents = {p[:-1] for p in paths if p}
            if len(parents) == 1:
                self._parent = plain_reader(parents.pop())
                self._keys = tuple((name, p[-1]) for (name, _), p in zip(self.fields, paths, strict=True) if p)

    def items(self, data: Any) -> list[tuple[Any, dict[str, Any]]]:
        """``(index, {field: value})`` of each item found where at least one field is present."""
        if self._parent is not None:
            parent = self._parent(data)
            if not isinstance(parent, dict):
                return []
            values: dict[str, Any] | None = None
            for name, key in self._keys:
                value = parent.get(key)
                if value is not None:
                    if values is None:
                        values = {}
                    values[name] = value
            if values is None:
                return []
            return [(self.index.value(data) if self.index is not None else None, values)]
        if self.each is None:  # the event itself is the item (most stream events carry none of the fields)
            values = None  # (typed above)
            for name, extractor in self.fields:
                value = extractor.text(data) if name in JOINED else extractor.read(data)
                if value is not None:
                    if values is None:
                        values = {}
                    values[name] = value
            if values is None:
                return []
            return [(self.index.value(data) if self.index is not None else None, values)]
        each = self.each
        if each.probe is not None and each.probe(data) is None:  # the usual stream event: no items at all
            return []
        found = each.all(data)
        out = []
        for item in found:
            values = {name: value for name, extractor in self.fields
                      if (value := extractor.text(item) if name in JOINED else extractor.value(item)) is not None}
            if values:
                out.append((self.index.value(item) if self.index is not None else None, values))
        return out


@dataclass(slots=True)
class CompiledRule:
    """A stream rule with its paths compiled; ``fields`` holds only the keys the rule sets."""

    fields: tuple[tuple[str, Extractor], ...]
    # The same fields grouped by the top-level key their paths start with, so that one check
    # skips a group whose key is absent or null (OpenAI's "usage": null on every content chunk).
    groups: tuple[tuple[str | None, tuple[tuple[str, Extractor], ...]], ...]
    delta: Extractor | None
    reasoning_delta: Extractor | None
    error: bool
    end: bool
    end_when: CompiledCondition | None
    tool_call: CompiledItems | None = None
    thinking: CompiledItems | None = None
    when: CompiledCondition | None = None


@dataclass(slots=True)
class CompiledStream:
    format: str
    done: str | None
    event_type: Extractor | None
    chunk: CompiledRule | None
    events: dict[str, CompiledRule]
    reads_headers: bool = False  # some stream rule reads a response header


@dataclass(slots=True)
class CompiledEmbeddings:
    """The embeddings operation, compiled."""

    base_url: Render | None
    path: Render
    query: dict[str, Render]
    body: Render
    body_is_json: bool
    vectors: Extractor
    index: Extractor | None
    model: Extractor | None
    input_tokens: Extractor | None


@dataclass(slots=True)
class CompiledProvider:
    """Everything a call needs from the provider file, ready to run."""

    spec: ProviderSpec
    file: str
    chain: Sequence[ProviderSource] = field(repr=False)
    base_url: Render | None = None
    path: Render | None = None
    stream_path: Render | None = None
    query: dict[str, Render] = field(default_factory=dict)
    stream_query: dict[str, Render] = field(default_factory=dict)
    headers: dict[str, Render] = field(default_factory=dict)
    auth_value: Render | None = None
    body: Render | None = None
    body_is_json: bool = False  # the body template prints one tojson value: its output needs no check
    response: dict[str, Extractor] = field(default_factory=dict)
    error_message: Extractor | None = None
    error_type: Extractor | None = None
    request_id: Extractor | None = None
    failed_when: list[CompiledCondition] = field(default_factory=list)
    error_kinds: dict[str, ErrorKind] = field(default_factory=dict)  # errors.kinds with its keys as text
    reads_headers: bool = False  # some path reads a response header
    stream: CompiledStream | None = None
    embeddings: CompiledEmbeddings | None = None
    options: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: MessageShapes = field(default_factory=MessageShapes)
    tools: ToolShapes = field(default_factory=ToolShapes)
    tool_calls: CompiledItems | None = None
    thinking: CompiledItems | None = None
    finish_reasons: dict[str, str] = field(default_factory=dict)
    chat_templates: dict[str, Render] = field(default_factory=dict)
    lifecycle: Mapping[str, ModelInfo] = field(default_factory=dict)  # models with deprecation/retirement dates
    _capabilities: dict[str, ResolvedCapabilities] = field(default_factory=dict, repr=False)

    def options_for(self, model: str) -> dict[str, Any]:
        """Template ``options``: the declared defaults, overridden by the model's own values."""
        return self.model_options.get(model, self.options)

    def capabilities_for(self, model: str) -> ResolvedCapabilities:
        """What a model can take (cached per model)."""
        caps = self._capabilities.get(model)
        if caps is None:
            caps = self._capabilities[model] = self.spec.capabilities_for(model)
        return caps

    @property
    def name(self) -> str:
        return self.spec.name

    def where(self, key_path: Sequence[str | int], template_line: int | None = None) -> tuple[str, int | None]:
        """The file (of the ``extends`` chain) and line of a key; with ``template_line``, of that line of the
        template the key holds."""
        return where(self.chain, key_path, template_line)


def where(chain: Sequence[ProviderSource], key_path: Sequence[str | int],
          template_line: int | None = None) -> tuple[str, int | None]:
    file, line = locate(chain, key_path)
    if template_line is not None:
        for source in chain:
            if str(source.path) == file:
                start = value_line(source, key_path)
                if start is not None:
                    line = start + template_line - 1
    return file, line


class _Compiler:
    def __init__(self, spec: ProviderSpec, chain: Sequence[ProviderSource]) -> None:
        self.spec, self.chain = spec, chain
        self.reads_headers = False

    def fail(self, key_path: Sequence[str | int], message: str, template_line: int | None = None) -> ProviderFileError:
        file, line = where(self.chain, key_path, template_line)
        return ProviderFileError(message, file=file, key=".".join(map(str, key_path)), line=line)

    def template(self, source: str, kind: str, key_path: Sequence[str | int]) -> Render:
        try:
            render = compile_template(source, kind)
            undeclared = sorted(options_read(source, kind) - set(self.spec.options))
        except TemplateSyntaxError as exc:
            raise self.fail(key_path, f"template syntax error: {exc.message}", exc.lineno) from exc
        if undeclared:
            declared = ", ".join(sorted(self.spec.options)) or "none"
            raise self.fail(key_path, f"template reads option {undeclared[0]!r}, which is not declared under "
                                      f"'options' (declared: {declared})")
        return render

    def path(self, expressions: PathSpec, key_path: Sequence[str | int]) -> Extractor:
        try:
            extractor = Extractor(expressions)
        except JSONPathError as exc:
            raise self.fail(key_path, str(exc)) from exc
        self.reads_headers = self.reads_headers or extractor.reads_headers
        return extractor

    def rule(self, rule: StreamRule, key_path: Sequence[str | int]) -> CompiledRule:
        fields = tuple(
            (name, self.path(getattr(rule, name), [*key_path, name]))
            for name in RULE_FIELDS if getattr(rule, name) is not None
        )
        end_when = None
        if isinstance(rule.end, str):
            end_when = CompiledCondition(self.path(rule.end, [*key_path, "end"]), "truthy", True)
        elif isinstance(rule.end, Condition):
            end_when = self.condition(rule.end, [*key_path, "end"])
        deltas = {n: e for n, e in fields if n in ("delta", "reasoning_delta")}
        values = tuple(f for f in fields if f[0] not in deltas)
        grouped: dict[str | None, list[tuple[str, Extractor]]] = {}
        for name, extractor in values:
            grouped.setdefault(extractor.head, []).append((name, extractor))
        groups = tuple((head, tuple(members)) for head, members in grouped.items())
        return CompiledRule(values, groups, deltas.get("delta"), deltas.get("reasoning_delta"), rule.error,
                            rule.end is True, end_when,
                            self.items(rule.tool_call, [*key_path, "tool_call"]) if rule.tool_call else None,
                            self.items(rule.thinking, [*key_path, "thinking"]) if rule.thinking else None,
                            self.condition(rule.when, [*key_path, "when"]) if rule.when else None)

    def condition(self, condition: Condition, key_path: Sequence[str | int]) -> CompiledCondition:
        path = self.path(condition.path, [*key_path, "path"])
        for test in ("equals", "not_equals", "present", "truthy"):
            if test in condition.model_fields_set:
                return CompiledCondition(path, test, getattr(condition, test))
        return CompiledCondition(path, "truthy", True)

    def items(self, spec: ItemsSpec, key_path: Sequence[str | int]) -> CompiledItems:
        names = [name for name in type(spec).model_fields if name not in ("each", "index")]
        return CompiledItems(
            each=self.path(spec.each, [*key_path, "each"]) if spec.each is not None else None,
            index=self.path(spec.index, [*key_path, "index"]) if spec.index is not None else None,
            fields=tuple((name, self.path(getattr(spec, name), [*key_path, name]))
                         for name in names if getattr(spec, name) is not None),
        )

    def embeddings(self) -> CompiledEmbeddings:
        spec = self.spec.embeddings
        assert spec is not None
        reply = spec.response
        key = ["embeddings", "response"]
        return CompiledEmbeddings(
            base_url=self.template(spec.base_url, "text", ["embeddings", "base_url"]) if spec.base_url else None,
            path=self.template(spec.path, "path", ["embeddings", "path"]),
            query={k: self.template(v, "text", ["embeddings", "query", k]) for k, v in spec.query.items()},
            body=self.template(spec.body, "body", ["embeddings", "body"]),
            body_is_json=outputs_one_value(spec.body),
            vectors=self.path(reply.vectors, [*key, "vectors"]),
            index=self.path(reply.index, [*key, "index"]) if reply.index is not None else None,
            model=self.path(reply.model, [*key, "model"]) if reply.model is not None else None,
            input_tokens=self.path(reply.input_tokens, [*key, "input_tokens"]) if reply.input_tokens else None,
        )

    def shape(self, shape: Any, key_path: Sequence[str | int]) -> Filler:
        try:
            return compile_shape(shape)
        except ShapeError as exc:
            raise self.fail(key_path, str(exc)) from exc

    def shapes(self) -> tuple[MessageShapes, ToolShapes]:
        request = self.spec.request
        messages, tools = MessageShapes(), ToolShapes()
        if request is not None and request.messages is not None:
            m, at = request.messages, ["request", "messages"]
            messages = MessageShapes(
                system=m.system, roles=m.roles, tool_results=m.tool_results, merge_roles=m.merge_roles,
                calls=m.calls, reasoning=m.reasoning,
                message=self.shape(m.message, [*at, "message"]) if m.message is not None else None,
                by_role={role: self.shape(shape, [*at, "role_message", role])
                         for role, shape in m.role_message.items()},
                parts={kind: self.shape(shape, [*at, "parts", kind]) for kind, shape in m.parts.items()},
                call_id_length=m.call_id_length)
        if request is not None and request.tools is not None:
            at = ["request", "tools"]
            tools = ToolShapes(tool=self.shape(request.tools.tool, [*at, "tool"]),
                               choice={kind: self.shape(shape, [*at, "choice", kind])
                                       for kind, shape in request.tools.choice.items()})
        return messages, tools

    def compile(self) -> CompiledProvider:
        spec = self.spec
        compiled = CompiledProvider(spec=spec, file=str(self.chain[0].path), chain=self.chain)
        compiled.options = spec.options_for("")
        compiled.model_options = {m.id: spec.options_for(m.id) for m in spec.models if m.options}
        compiled.lifecycle = dated(spec.models)
        if spec.base_url is not None:
            compiled.base_url = self.template(spec.base_url, "text", ["base_url"])
        if spec.auth.type != "none":
            compiled.auth_value = self.template(spec.auth.value, "text", ["auth", "value"])
        request = spec.request
        if request is not None:
            compiled.path = self.template(request.path, "path", ["request", "path"])
            if request.stream_path is not None:
                compiled.stream_path = self.template(request.stream_path, "path", ["request", "stream_path"])
            compiled.query = {k: self.template(v, "text", ["request", "query", k]) for k, v in request.query.items()}
            compiled.stream_query = {k: self.template(v, "text", ["request", "stream_query", k])
                                     for k, v in request.stream_query.items()}
            compiled.headers = {k: self.template(v, "text", ["request", "headers", k])
                                for k, v in request.headers.items()}
            if request.body is not None:
                compiled.body = self.template(request.body, "body", ["request", "body"])
                compiled.body_is_json = outputs_one_value(request.body)
        if spec.embeddings is not None:
            compiled.embeddings = self.embeddings()
        compiled.messages, compiled.tools = self.shapes()
        compiled.chat_templates = {name: self.template(source, "prompt", ["chat_templates", name])
                                   for name, source in spec.chat_templates.items()}
        compiled.finish_reasons = {**OPENAI_FINISH_REASONS, **spec.finish_reasons}
        if spec.response is not None and spec.response.tool_calls is not None:
            compiled.tool_calls = self.items(spec.response.tool_calls, ["response", "tool_calls"])
        if spec.response is not None and spec.response.thinking is not None:
            compiled.thinking = self.items(spec.response.thinking, ["response", "thinking"])
        if spec.response is not None:
            compiled.response = {
                name: self.path(value, ["response", name])
                for name in ("content", "reasoning", "model", "finish_reason", *USAGE_FIELDS, "cost", "service_tier")
                if (value := getattr(spec.response, name)) is not None
            }
        if spec.errors.message is not None:
            compiled.error_message = self.path(spec.errors.message, ["errors", "message"])
        if spec.errors.type is not None:
            compiled.error_type = self.path(spec.errors.type, ["errors", "type"])
        if spec.errors.request_id is not None:
            compiled.request_id = self.path(spec.errors.request_id, ["errors", "request_id"])
        compiled.failed_when = [self.condition(c, ["errors", "when", i]) for i, c in enumerate(spec.errors.when)]
        compiled.error_kinds = {str(k): v for k, v in spec.errors.kinds.items()}
        if spec.stream is not None:
            stream = spec.stream
            before, self.reads_headers = self.reads_headers, False
            compiled.stream = CompiledStream(
                format=stream.format,
                done=stream.done,
                event_type=self.path(stream.event_type, ["stream", "event_type"]) if stream.event_type else None,
                chunk=self.rule(stream.chunk, ["stream", "chunk"]) if stream.chunk else None,
                events={name: self.rule(rule, ["stream", "events", name]) for name, rule in stream.events.items()},
            )
            compiled.stream.reads_headers = self.reads_headers
            self.reads_headers = self.reads_headers or before
        compiled.reads_headers = self.reads_headers
        return compiled


def compile_provider(spec: ProviderSpec, chain: Sequence[ProviderSource]) -> CompiledProvider:
    """Compile every template and JSONPath of a validated spec."""
    return _Compiler(spec, chain).compile()

