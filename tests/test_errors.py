"""The error hierarchy, the status→kind table, and the fields exceptions carry."""

from __future__ import annotations

import pytest

from engine import errors
from engine.errors import (
    STATUS_KINDS,
    ConfigError,
    EngineError,
    ErrorKind,
    MissingAPIKeyError,
    ProviderError,
    ProviderFileError,
    SendError,
    TemplateRenderError,
    UnknownProviderError,
    kind_for_status,
)


@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request"), (401, "auth"), (402, "auth"), (403, "auth"), (404, "not_found"), (408, "timeout"),
    (409, "server"), (413, "invalid_request"), (422, "invalid_request"), (429, "rate_limit"),
])
def test_every_listed_status_has_its_kind(status: int, kind: str) -> None:
    assert kind_for_status(status) is ErrorKind(kind)


def test_the_table_lists_exactly_the_tested_statuses() -> None:
    assert sorted(STATUS_KINDS) == [400, 401, 402, 403, 404, 408, 409, 413, 422, 429]


@pytest.mark.parametrize("status", [500, 502, 503, 529, 599])
def test_5xx_is_a_server_error(status: int) -> None:
    assert kind_for_status(status) is ErrorKind.SERVER


@pytest.mark.parametrize("status", [405, 410, 418, 451, 499])
def test_unlisted_4xx_is_an_invalid_request(status: int) -> None:
    assert kind_for_status(status) is ErrorKind.INVALID_REQUEST


def test_provider_file_error_message_and_fields() -> None:
    error = ProviderFileError("unknown key", file="acme.yaml", key="request.bdy", line=12)
    assert (error.file, error.key, error.line, error.message) == ("acme.yaml", "request.bdy", 12, "unknown key")
    assert error.location() == "acme.yaml:12: request.bdy"
    assert str(error) == "acme.yaml:12: request.bdy: unknown key"


@pytest.mark.parametrize(("fields", "location"), [
    ({}, "<provider>"),
    ({"file": "a.yaml"}, "a.yaml"),
    ({"file": "a.yaml", "line": 3}, "a.yaml:3"),
    ({"file": "a.yaml", "key": "name"}, "a.yaml: name"),
    ({"line": 0}, "<provider>:0"),
])
def test_location_says_as_much_as_is_known(fields: dict[str, object], location: str) -> None:
    error = ProviderFileError("boom", **fields)  # type: ignore[arg-type]
    assert error.location() == location
    assert str(error) == f"{location}: boom"


def test_template_render_error_is_a_provider_file_error_with_the_same_format() -> None:
    error = TemplateRenderError("bad template", file="p.yaml", key="request.body", line=40)
    assert isinstance(error, ProviderFileError)
    assert str(error) == "p.yaml:40: request.body: bad template"
    assert error.key == "request.body"


def test_missing_api_key_and_unknown_provider_carry_fields() -> None:
    missing = MissingAPIKeyError("set a key", provider="groq", env=("GENAI_GROQ_API_KEY", "GROQ_API_KEY"))
    assert missing.env == ("GENAI_GROQ_API_KEY", "GROQ_API_KEY") and missing.provider == "groq"
    assert MissingAPIKeyError("x").env == ()
    assert UnknownProviderError("nope", name="acme").name == "acme"


def test_provider_error_normalises_its_kind() -> None:
    error = SendError("timed out", "timeout", status_code=None, retry_after=1.5)  # type: ignore[arg-type]
    assert error.kind is ErrorKind.TIMEOUT and error.retry_after == 1.5 and error.message == "timed out"
    assert ProviderError("x").kind is ErrorKind.SERVER
    with pytest.raises(ValueError):
        ProviderError("x", "no-such-kind")  # type: ignore[arg-type]


def test_every_exception_is_an_engine_error() -> None:
    classes = [value for value in vars(errors).values()
               if isinstance(value, type) and issubclass(value, BaseException)]
    assert len(classes) >= 12
    assert all(issubclass(cls, EngineError) for cls in classes)


@pytest.mark.parametrize("name", ["ProviderFileError", "TemplateRenderError", "UnknownProviderError",
                                  "MissingAPIKeyError", "BackendLoadError", "JSONPathError"])
def test_configuration_errors_are_config_errors(name: str) -> None:
    assert issubclass(getattr(errors, name), ConfigError)


@pytest.mark.parametrize("name", ["ProviderError", "SendError", "RawOutputError", "DocsError"])
def test_call_time_errors_are_not_config_errors(name: str) -> None:
    assert not issubclass(getattr(errors, name), ConfigError)
    assert issubclass(getattr(errors, name), EngineError)


def test_value_error_compatibility() -> None:
    for cls in (errors.JSONPathError, errors.RawOutputError, errors.DocsError):
        assert issubclass(cls, ValueError)
    assert issubclass(SendError, ProviderError)
