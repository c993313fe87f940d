"""Google Cloud access tokens for Vertex AI (the ``[google]`` extra: google-auth).

`GoogleAccessToken` is the auth hook of the ``vertex-*`` provider files. It finds credentials the way
Google's own clients do: a service-account key file named in the file's ``credentials_file`` config
(or ``GOOGLE_APPLICATION_CREDENTIALS``), else Application Default Credentials (``gcloud auth
application-default login``, or the metadata server on Google Cloud). Tokens carry the
``cloud-platform`` scope; the engine caches each until shortly before it expires. An ``access_token``
config value (from ``gcloud auth print-access-token``, say) is used as it is instead, never refreshed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .auth import AuthHook, Credentials
from .errors import BackendLoadError

if TYPE_CHECKING:
    from .settings import Settings
    from .spec import ProviderSpec
    from .testing.tokens import TokenServer

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
INSTALL_HINT = "pip install 'genai-engine[google]'"


class GoogleAccessToken(AuthHook):
    """``Authorization: Bearer <access token>`` from a service-account file or Application Default Credentials."""

    def __init__(self, spec: ProviderSpec, settings: Settings, config: Mapping[str, str]) -> None:
        super().__init__(spec, settings, config)
        self._credentials: Any = None

    @classmethod
    def needs_library(cls, config: Mapping[str, str]) -> bool:
        return not config.get("access_token")  # a token given as it is needs no library

    @classmethod
    def check_available(cls) -> None:
        try:
            import google.auth
            import google.auth.transport.requests  # noqa: F401
        except ImportError as exc:
            raise BackendLoadError(f"signing in to Google Cloud needs google-auth (with requests), which is not "
                                   f"installed: {INSTALL_HINT} ({exc})") from exc

    def _load(self) -> Any:
        import google.auth
        from google.oauth2 import service_account

        path = self.config.get("credentials_file") or None
        if path:
            return service_account.Credentials.from_service_account_file(path, scopes=list(SCOPES))
        credentials, _project = google.auth.default(scopes=list(SCOPES))
        return credentials

    def fetch(self) -> Credentials:
        """Refresh the credentials (blocking: the engine runs this in a worker thread)."""
        if token := self.config.get("access_token"):  # one the user got elsewhere: used as it is, never refreshed
            return Credentials(headers={"Authorization": f"Bearer {token}"})
        import google.auth.exceptions
        from google.auth.transport.requests import Request

        try:
            if self._credentials is None:
                self._credentials = self._load()
            self._credentials.refresh(Request())
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise RuntimeError(f"no Google Cloud credentials: {exc} (set the provider's credentials_file, "
                               "GOOGLE_APPLICATION_CREDENTIALS, or run `gcloud auth application-default login`)"
                               ) from exc
        token = self._credentials.token
        if not token:
            raise RuntimeError("Google returned no access token")
        headers = {"Authorization": f"Bearer {token}"}
        quota_project = getattr(self._credentials, "quota_project_id", None)
        if quota_project:
            headers["x-goog-user-project"] = quota_project
        expiry = self._credentials.expiry  # naive UTC, or None when the token does not say
        expires_at = expiry.replace(tzinfo=dt.UTC).timestamp() if expiry is not None else None
        return Credentials(headers=headers, expires_at=expires_at)

    @classmethod
    def selftest_config(cls, tokens: TokenServer) -> dict[str, str]:
        """Config that signs in against a loopback token server (``genai demo``)."""
        return {"credentials_file": str(tokens.google_service_account())}
