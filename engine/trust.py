"""The trust boundary: what the engine refuses to call, and the secrets it hides.

- Addresses: link-local and cloud metadata addresses are refused (a provider file or base URL
  pointing there could read instance credentials) unless ``GENAI_ALLOW_LINK_LOCAL`` is set.
- Secrets: API keys and secret config values are registered when a provider is prepared and
  masked in every log record of the engine and of httpx/httpcore, whose own INFO lines print
  request URLs (a query-parameter key among them).
- Env variables: a provider file may not read, as its key or config, a variable another provider
  declares as its key (bundled files may share one), nor a cloud credential variable (`check_env_names`).

SECURITY.md states the whole trust model.
"""

from __future__ import annotations

import logging
import re

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal"})


def refused_address(host: str) -> str | None:
    """Why a host (a name or a literal address) must not be called, or ``None``: link-local and cloud
    metadata addresses, where a stolen request could read instance credentials."""
    import ipaddress

    name = host.strip("[]").lower().rstrip(".")
    if name in METADATA_HOSTS:
        return f"{host} is a cloud metadata host"
    try:
        address = ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_link_local or str(address) in ("100.100.100.200", "fd00:ec2::254"):
        return f"{host} is a link-local or metadata address"
    return None



# -- secrets -------------------------------------------------------------------------------------------------
REDACTED = "***"
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
# A logger's filters see only its own records, not its children's: each logger that writes is listed.
LOGGERS = ("engine", "httpx", "hpack", *(f"{core}{part}" for core in ("httpcore", "httpcore2")
                                         for part in ("", ".connection", ".http11", ".http2", ".proxy", ".socks")))


def register_secrets(secrets: tuple[str, ...] | list[str]) -> None:
    """Remember secrets to mask in log records (bounded: the newest 1,000)."""
    global _pattern
    new = [s for s in secrets if s and len(s) >= 4 and s not in _secrets]
    if not new:
        return
    if len(_secrets) + len(new) > 1000:
        _secrets.clear()
    _secrets.update(new)
    _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))
    _install_filter()


def redact(text: str) -> str:
    """The text with every registered secret (and its URL-encoded form) masked."""
    if _pattern is None or not text:
        return text
    text = _pattern.sub(REDACTED, text)
    if "%" in text:
        from urllib.parse import unquote

        decoded = unquote(text)
        if decoded != text and _pattern.search(decoded):
            text = _pattern.sub(REDACTED, decoded)
    return text


class RedactingFilter(logging.Filter):
    """Masks registered secrets in a record's message (its arguments formatted first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is not None:
            message = record.getMessage()
            masked = redact(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


_FILTER = RedactingFilter()


def _install_filter() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


# -- env variables -------------------------------------------------------------------------------------------
# Cloud credentials that no provider file reads through `config` (Bedrock reads AWS's through boto3).
CREDENTIAL_ENV = re.compile(
    r"^(AWS_(SECRET_ACCESS_KEY|SESSION_TOKEN|ACCESS_KEY_ID|BEARER_TOKEN_BEDROCK)|GOOGLE_APPLICATION_CREDENTIALS"
    r"|AZURE_(CLIENT_SECRET|CLIENT_CERTIFICATE_PASSWORD|PASSWORD)|GITHUB_TOKEN|GH_TOKEN|SSH_AUTH_SOCK"
    r"|.*PASSWORD.*)$", re.I)
