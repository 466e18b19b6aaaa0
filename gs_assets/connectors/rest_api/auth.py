"""Authorizing a REST connection: OAuth 2.0 (refresh token, client credentials, JWT bearer) on
authlib, or a static token / basic credentials.

Token age is tracked: a token response's `expires_in` (HubSpot: 30 minutes) or the spec's
`token_lifetime_seconds` makes the authenticator refresh *before* expiry, as HubSpot asks (a 401 is
not its refresh signal). Salesforce gives no `expires_in`: its spec maps 401 INVALID_SESSION_ID to
refresh_and_retry, which the client does once per request. A rotated refresh token goes to a
`TokenStore`; a revoked one raises `NeedsReauthorization` (once, no retry storm).

Secrets are held in `Secret` (its repr and str are redacted) and never enter an exception message.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Protocol

import httpx

from gs_assets.connectors.secrets import Secret  # noqa: F401  (re-exported)
from gs_assets.connectors.rest_api.spec import AuthMethod, ErrorRule, SystemSpec, dig, render

log = logging.getLogger("gs_assets.rest_api.auth")

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class _UrlSecretFilter(logging.Filter):
    """httpx logs every request's URL at INFO: a secret a token URL holds ({tenant_id}) is shown as
    its placeholder there too."""

    def __init__(self):
        super().__init__()
        self.names: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.names:
            msg = record.getMessage()
            hit = [v for v in self.names if v in msg]
            if hit:
                for v in hit:
                    msg = msg.replace(v, "{" + self.names[v] + "}")
                record.msg, record.args = msg, ()
        return True


_URL_SECRETS = _UrlSecretFilter()
logging.getLogger("httpx").addFilter(_URL_SECRETS)


class ConnectionAuthError(Exception):
    """The connection's credentials were refused: one paragraph naming the connection, the auth
    method and what to fix. Never holds a secret."""

    def __init__(self, connection: str, auth_method: str, message: str):
        self.connection = connection
        self.auth_method = auth_method
        super().__init__(message)


class NeedsReauthorization(ConnectionAuthError):
    """The refresh token was revoked or expired: a person must authorize the connection again."""


class TokenStore(Protocol):
    def get(self, connection: str) -> Optional[str]: ...

    def put(self, connection: str, refresh_token: str) -> None: ...


@dataclass
class InMemoryTokenStore:
    """Rotated refresh tokens by connection name (the kind adds a warehouse-backed store)."""
    _tokens: dict[str, Secret] = field(default_factory=dict)

    def get(self, connection: str) -> Optional[str]:
        s = self._tokens.get(connection)
        return s.reveal() if s else None

    def put(self, connection: str, refresh_token: str) -> None:
        self._tokens[connection] = Secret(refresh_token)

    def __repr__(self) -> str:
        return f"InMemoryTokenStore(connections={sorted(self._tokens)})"


def body_error(body: Any) -> dict[str, str]:
    """error_code / error_message / fields from a vendor error body (Salesforce's JSON array,
    HubSpot's object, OAuth's error/error_description)."""
    first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else body
    if isinstance(first, dict) and isinstance(first.get("error"), dict):
        first = first["error"]  # OData / Microsoft: {"error": {"code": ..., "message": ...}}
    if not isinstance(first, dict):
        return {"error_code": "", "error_message": "", "fields": ""}
    code = next((str(first[k]) for k in ("errorCode", "error", "category", "errorType", "status", "code") if first.get(k)), "")
    msg = " ".join(next((str(first[k]) for k in ("message", "error_description", "description") if first.get(k)), "").split())
    fields = first.get("fields") or []
    return {"error_code": code, "error_message": msg, "fields": ", ".join(map(str, fields)) if isinstance(fields, list) else str(fields)}


def rule_matches(rule: ErrorRule, status: int, body: Any) -> bool:
    if rule.status and status not in rule.status:
        return False
    if not rule.body:
        return True
    candidates = body if isinstance(body, list) else [body]
    for c in candidates:
        if isinstance(c, dict) and all(
                (dig(c, k) in v) if isinstance(v, list) else dig(c, k) == v for k, v in rule.body.items()):
            return True
    return False


def json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


class Authenticator:
    """Gives the headers of an authorized request and the API base URL; refreshes by token age or
    when the client's refresh rule fires."""

    def __init__(self, spec: SystemSpec, *, connection: str, method: str, secrets: Mapping[str, Any],
                 environment: Optional[str] = None, domain: Optional[str] = None,
                 token_store: Optional[TokenStore] = None,
                 http_kwargs: Optional[dict] = None, now: Callable[[], float] = time.time):
        conn = spec.connection
        if method not in conn.auth_methods:
            raise ConnectionAuthError(connection, method, (
                f"connection {connection!r}: {spec.system} has no auth method {method!r}; "
                f"its auth methods: {', '.join(conn.auth_methods)}."))
        self.spec = spec
        self.connection = connection
        self.method_name = method
        self.method: AuthMethod = conn.auth_methods[method]
        self._secrets = {k: (v if isinstance(v, Secret) else Secret(str(v))) for k, v in secrets.items() if v is not None}
        missing = [s for s in self.method.secrets if s not in self._secrets]
        if missing:
            raise ConnectionAuthError(connection, method, (
                f"connection {connection!r} (auth method {method}): missing secret(s) {', '.join(missing)}; "
                f"set them through the connection's env vars."))
        if conn.environments:
            environment = environment or next(iter(conn.environments))
            if environment not in conn.environments:
                raise ConnectionAuthError(connection, method, (
                    f"connection {connection!r}: unknown environment {environment!r}; "
                    f"{spec.system} environments: {', '.join(conn.environments)}."))
        self.environment = environment
        self.domain = domain
        self.token_store = token_store or InMemoryTokenStore()
        self._now = now
        self._http_kwargs = dict(http_kwargs or {})
        self._access: Optional[Secret] = None
        self._expires_at: Optional[float] = None
        self._base_url: Optional[str] = self._fixed_base_url()
        self.refreshes = 0
        self.token_public: dict[str, Any] = {}

    # ---------------------------------------------------------------- hosts
    def _account_base_url(self) -> Optional[str]:
        """The spec's base URL, with the connection's domain where it is per account ({domain})."""
        base = self.spec.connection.base_url
        if base and "{domain}" in base:
            if not self.domain:
                raise ConnectionAuthError(self.connection, self.method_name, (
                    f"connection {self.connection!r}: {self.spec.system}'s API host is per account ({base}); "
                    f"set the connection's domain."))
            return render(base, {"domain": self.domain})
        return base

    @property
    def login_host(self) -> Optional[str]:
        conn = self.spec.connection
        if self.domain and conn.custom_domain:
            return render(conn.custom_domain, {"domain": self.domain})
        if self.environment:
            return conn.environments[self.environment].login_host
        return None

    def _hosts(self) -> dict[str, str]:
        return {"login_host": self.login_host or "", "domain": self.domain or ""}

    def _fixed_base_url(self) -> Optional[str]:
        """The spec's base_url: per account ({domain}) and/or on the login host ({login_host}, a
        customer's own instance)."""
        base = self._account_base_url()
        return render(base, self._hosts()) if base else None

    def token_url(self, shown: bool = False) -> str:
        """The token endpoint; `shown=True`: as a message may print it (secret placeholders kept)."""
        url = self.method.token_url or ""
        if url.startswith("/"):
            return f"https://{self.login_host}{url}"
        values = self._hosts()
        if not shown:
            for k in self.method.secrets:
                if k in self._secrets and "{" + k + "}" in url:
                    values[k] = self.secret(k)
                    _URL_SECRETS.names[values[k]] = k
        return render(url, values)

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            self._authorize()
        return self._base_url  # type: ignore[return-value]

    def secret(self, name: str) -> str:
        return self._secrets[name].reveal()

    # ---------------------------------------------------------------- tokens
    @property
    def is_oauth(self) -> bool:
        return self.method.type in ("oauth2_refresh_token", "oauth2_client_credentials", "oauth2_password", "jwt_bearer")

    def headers(self) -> dict[str, str]:
        t = self.method.type
        if t == "basic":
            m = self.method
            user = (render(m.basic_username, {k: v.reveal() for k, v in self._secrets.items()})
                    if m.basic_username else self.secret("username"))
            raw = f"{user}:{self.secret(m.basic_password_secret)}".encode()
            return {self.method.header: "Basic " + base64.b64encode(raw).decode()}
        if t in ("bearer", "api_token"):
            name = self.method.secrets[0] if self.method.secrets else "token"
            return {self.method.header: f"{self.method.scheme} {self.secret(name)}".strip()}
        if self._access is None or self._aged():
            self._authorize()
        return {self.method.header: f"{self.method.scheme} {self._access.reveal()}"}  # type: ignore[union-attr]

    def _aged(self) -> bool:
        return self._expires_at is not None and self._now() >= self._expires_at - self.method.refresh_margin_seconds

    def refresh(self) -> None:
        """Get a new access token now (the client's refresh_and_retry rule)."""
        if not self.is_oauth:
            raise ConnectionAuthError(self.connection, self.method_name, (
                f"connection {self.connection!r} (auth method {self.method_name}): the API refused the "
                f"{self.method.type} credentials; check the token's value and scopes."))
        self._authorize()

    def _authorize(self) -> None:
        if not self.is_oauth:
            self._base_url = self._base_url or self._fixed_base_url()
            return
        from authlib.integrations.base_client import OAuthError
        from authlib.integrations.httpx_client import OAuth2Client

        seen: dict[str, Any] = {}

        def keep(resp):
            seen["status"] = resp.status_code
            seen["body"] = json_or_none(resp)
            return resp

        t = self.method.type
        client_id = self._secrets.get("client_id")
        client_secret = self._secrets.get("client_secret")
        http = OAuth2Client(
            client_id=client_id.reveal() if client_id and t != "jwt_bearer" else None,
            client_secret=client_secret.reveal() if client_secret and t != "jwt_bearer" else None,
            token_endpoint_auth_method="client_secret_post" if t != "jwt_bearer" else "none",
            scope=render(self.method.scope, self._hosts()) if self.method.scope else None,
            **self._http_kwargs)
        http.register_compliance_hook("access_token_response", keep)
        http.register_compliance_hook("refresh_token_response", keep)
        url = self.token_url()
        token: Any = None
        try:
            with http:
                if t == "oauth2_refresh_token":
                    current = self.token_store.get(self.connection) or self.secret("refresh_token")
                    token = http.refresh_token(url, refresh_token=current)
                elif t == "oauth2_client_credentials":
                    token = http.fetch_token(url, grant_type="client_credentials")
                elif t == "oauth2_password":
                    token = http.fetch_token(url, grant_type="password", username=self.secret("username"),
                                             password=self.secret("password"))
                else:
                    token = http.fetch_token(url, grant_type=JWT_BEARER_GRANT, assertion=self._jwt_assertion(),
                                             auth=httpx.Auth())  # the assertion is the credential
        except httpx.HTTPError as e:
            if isinstance(e, httpx.HTTPStatusError):
                seen.setdefault("status", e.response.status_code)
                seen.setdefault("body", json_or_none(e.response))
            else:
                raise ConnectionAuthError(self.connection, self.method_name, (
                    f"connection {self.connection!r}: could not reach the token endpoint {self.token_url(shown=True)} "
                    f"({type(e).__name__}); check the environment / domain and the network.")) from None
        except OAuthError as e:  # an OAuth error body: it is in `seen`
            if "status" not in seen:
                raise ConnectionAuthError(self.connection, self.method_name, (
                    f"connection {self.connection!r}: the token request failed ({type(e).__name__})")) from None
        status = seen.get("status", 0)
        if status >= 400 or not token or "access_token" not in token:
            self._token_failure(status, seen.get("body"), self.token_url(shown=True))
        self._access = Secret(token["access_token"])
        acc = self.spec.connection.account_id  # the one non-secret field "test connection" shows (Salesforce `id`)
        if acc is not None and acc.source == "token_response":
            key = acc.path.split(".")[0]
            self.token_public = {key: token[key]} if key in token else {}
        expires_in = token.get("expires_in")
        lifetime = float(expires_in) if expires_in else self.method.token_lifetime_seconds
        self._expires_at = self._now() + lifetime if lifetime else None
        rotated = token.get("refresh_token")
        if t == "oauth2_refresh_token" and rotated and rotated != (self.token_store.get(self.connection) or self.secret("refresh_token")):
            self.token_store.put(self.connection, rotated)
        conn = self.spec.connection
        if conn.base_url_from_token:
            base = token.get(conn.base_url_from_token)
            if not base:
                raise ConnectionAuthError(self.connection, self.method_name, (
                    f"connection {self.connection!r}: the token response has no {conn.base_url_from_token!r}"))
            self._base_url = str(base).rstrip("/")
        else:
            self._base_url = self._fixed_base_url()
        self.refreshes += 1
        log.info("connection %s: authorized (%s, %s)", self.connection, self.method_name, self.login_host or self._base_url)

    def _jwt_assertion(self) -> str:
        from authlib.oauth2.rfc7523 import JWTBearerGrant

        j = self.method.jwt
        assert j is not None
        now = int(self._now())
        audience = render(j.audience, {"login_host": self.login_host or ""})
        token = JWTBearerGrant.sign(
            key=self.secret("private_key"), issuer=self.secret(j.issuer_secret), audience=audience,
            subject=self.secret(j.subject_secret), issued_at=now, expires_at=now + j.lifetime_seconds,
            alg="RS256")
        return token.decode() if isinstance(token, bytes) else token

    def _token_failure(self, status: int, body: Any, url: str) -> None:
        info = body_error(body)
        values = {"connection": self.connection, "auth_method": self.method_name, "status": status,
                  "login_host": self.login_host or "", **info}
        for rule in self.spec.client.errors:
            if rule.scope == "token" and (not rule.grants or self.method.type in rule.grants) \
                    and rule_matches(rule, status, body):
                msg = render(rule.message, values)
                if rule.action == "reauthorize":
                    raise NeedsReauthorization(self.connection, self.method_name, msg)
                raise ConnectionAuthError(self.connection, self.method_name, msg)
        raise ConnectionAuthError(self.connection, self.method_name, (
            f"connection {self.connection!r} (auth method {self.method_name}): the token endpoint {url} "
            f"refused the credentials (HTTP {status} {info['error_code']}: {info['error_message']}); "
            f"check the connection's client id/secret and environment."))

