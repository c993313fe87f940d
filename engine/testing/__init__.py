"""Test support: fake LLM servers and replayed replies, for the engine's tests and for yours.

Like httpx's ``MockTransport``, these let the real engine run with no network:

- `FakeServer`: a bounded fake LLM server on 127.0.0.1 speaking every bundled wire format
  (OpenAI chat and Responses, Anthropic, Ollama, Gemini, Cohere), with streams split at awkward byte
  boundaries and injectable `Fault`\\ s. Point any provider's base URL at ``server.base_url``.
  Formats of your own (a `WireFormat` subclass answering with a `Call`) plug in with ``formats=``.
- `BedrockServer`: the AWS Bedrock runtime wire format (Converse, ConverseStream event
  streams) for real boto3, with `BedrockFault`\\ s.
- `replay_client` / `replay_transport`: one recorded reply for every request, its body in
  small pieces, with no socket.
- `record` / `check_recorded`: golden tests for your own provider files (``genai record`` / ``genai test``).
- `run_selftest`: every provider end to end against a `FakeServer` (what ``genai demo`` runs).
- `ForwardProxy`: an HTTP forward proxy on 127.0.0.1 that sends every request to one server, to test
  that proxy settings are honoured.
- `GatewayProcess`: ``genai serve`` in a subprocess on a free 127.0.0.1 port, for tests of a gateway
  configuration with real clients (`upstream_env` points its providers at a `FakeServer`).

Nothing here is imported by the engine itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "FakeServer": "server", "Fault": "server", "RecordedRequest": "server", "FAULT_KINDS": "server",
    "BedrockServer": "bedrock", "BedrockFault": "bedrock",
    "replay_client": "replay", "replay_transport": "replay",
    "run_selftest": "selftest", "SelfTestResult": "selftest",
    "FORMATS": "wire", "WireFormat": "wire", "Call": "wire", "WireError": "wire", "sse": "wire",
    "ForwardProxy": "proxy",
    "GatewayProcess": "gateway", "upstream_env": "gateway",
    "record": "recorded", "check_recorded": "recorded",
}
__all__ = [
    "FAULT_KINDS",
    "FORMATS",
    "BedrockFault",
    "BedrockServer",
    "Call",
    "FakeServer",
    "Fault",
    "ForwardProxy",
    "GatewayProcess",
    "RecordedRequest",
    "SelfTestResult",
    "WireError",
    "WireFormat",
    "check_recorded",
    "record",
    "replay_client",
    "replay_transport",
    "run_selftest",
    "sse",
    "upstream_env",
]

if TYPE_CHECKING:
    from .bedrock import BedrockFault, BedrockServer
    from .gateway import GatewayProcess, upstream_env
    from .proxy import ForwardProxy
    from .recorded import check_recorded, record
    from .replay import replay_client, replay_transport
    from .selftest import SelfTestResult, run_selftest
    from .server import FAULT_KINDS, FakeServer, Fault, RecordedRequest
    from .wire import FORMATS, Call, WireError, WireFormat, sse


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
