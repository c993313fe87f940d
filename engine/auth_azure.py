"""Microsoft Entra ID access tokens for Azure OpenAI (the ``[azure]`` extra: azure-identity).

`EntraToken` is the auth hook of ``azure-openai-entra``. With a service principal in the file's config
(``tenant_id``, ``client_id``, ``client_secret``; by default from ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``,
``AZURE_CLIENT_SECRET``) it uses ``ClientSecretCredential``; otherwise ``DefaultAzureCredential``
(environment, workload identity, managed identity, Azure CLI, ...). Tokens are for the
``https://cognitiveservices.azure.com/.default`` scope, as the OpenAI SDK's Azure client asks. An
``access_token`` config value (from ``az account get-access-token``, say) is used as it is instead, never
refreshed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .auth import AuthHook, Credentials
from .errors import BackendLoadError

if TYPE_CHECKING:
    from .settings import Settings
    from .spec import ProviderSpec
    from .testing.tokens import TokenServer

SCOPE = "https://cognitiveservices.azure.com/.default"
INSTALL_HINT = "pip install 'genai-engine[azure]'"


class EntraToken(AuthHook):
    """``Authorization: Bearer <Entra ID access token>`` from a service principal or ``DefaultAzureCredential``."""

    def __init__(self, spec: ProviderSpec, settings: Settings, config: Mapping[str, str]) -> None:
        super().__init__(spec, settings, config)
        self._credential: Any = None

    @classmethod
    def needs_library(cls, config: Mapping[str, str]) -> bool:
        return not config.get("access_token")  # a token given as it is needs no library

    @classmethod
    def check_available(cls) -> None:
        try:
            import azure.identity  # noqa: F401
        except ImportError as exc:
            raise BackendLoadError(f"signing in with Microsoft Entra ID needs azure-identity, which is not "
                                   f"installed: {INSTALL_HINT} ({exc})") from exc

    def _build(self) -> Any:
        from azure.identity import ClientSecretCredential, DefaultAzureCredential

        options: dict[str, Any] = {}
        if authority := self.config.get("authority_host"):
            options["authority"] = authority
        if self.config.get("instance_discovery", "true").lower() in ("false", "0", "no"):
            options["disable_instance_discovery"] = True  # a private or sovereign authority MSAL cannot look up
        if ca_bundle := self.config.get("ca_bundle"):
            options["connection_verify"] = ca_bundle
        tenant, client, secret = (self.config.get(k) for k in ("tenant_id", "client_id", "client_secret"))
        if tenant and client and secret:
            return ClientSecretCredential(tenant, client, secret, **options)
        return DefaultAzureCredential(**options)

    def fetch(self) -> Credentials:
        """A token from the credential (blocking: the engine runs this in a worker thread)."""
        if token := self.config.get("access_token"):  # one the user got elsewhere: used as it is, never refreshed
            return Credentials(headers={"Authorization": f"Bearer {token}"})
        if self._credential is None:
            self._credential = self._build()
        token = self._credential.get_token(SCOPE)
        return Credentials(headers={"Authorization": f"Bearer {token.token}"}, expires_at=float(token.expires_on))

    async def close(self) -> None:
        if self._credential is not None:
            self._credential.close()

    @classmethod
    def selftest_config(cls, tokens: TokenServer) -> dict[str, str]:
        """Config that signs in against a loopback authority (``genai demo``)."""
        app = tokens.azure_app()
        return {"tenant_id": app.tenant, "client_id": app.client_id, "client_secret": app.client_secret,
                "authority_host": tokens.azure_authority, "instance_discovery": "false",
                "ca_bundle": str(tokens.ca_file)}
