"""A REST system spec (`systems/<system>/spec.yaml`): connection, client behaviour and streams.

A new system of the rest_api kind is a spec file, not code. The models below are strict (an
unknown key is an error) so a typo fails when the spec loads, naming the file and the key.

Templates: request paths, params, bodies and filters may hold `{name}` placeholders, filled by the
engine (`api_version`, `object`, `fields`, `where`, `lower`, `upper`, `parent.<key>`, ...). A string
that is exactly one placeholder is replaced by the value itself (a list or dict in a JSON body);
anything else is text substitution. Braces that are not a placeholder are left alone.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gs_assets.model.objects import read_yaml_mapping
from gs_assets.validators.errors import ConfigError, format_pydantic_errors

SYSTEMS_DIR = Path(__file__).resolve().parent / "systems"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- connection

AuthType = Literal["oauth2_refresh_token", "oauth2_client_credentials", "oauth2_password", "jwt_bearer", "bearer", "basic",
                   "api_token"]


class JwtSpec(_Strict):
    """Claims of a JWT bearer assertion (RFC 7523), signed RS256 with the `private_key` secret."""
    issuer_secret: str = "client_id"
    subject_secret: str = "username"
    audience: str = "https://{login_host}"
    lifetime_seconds: int = Field(180, gt=0)


class AuthMethod(_Strict):
    type: AuthType
    description: str = ""
    secrets: list[str] = Field(default_factory=list, description="secret names this method needs (values come from env vars)")
    token_url: Optional[str] = Field(None, description=(
        "token endpoint: absolute, or a path on the login host; may name {login_host}, {domain} and the "
        "method's secrets ({tenant_id}), which messages show as the placeholder, never the value"))
    scope: Optional[str] = Field(None, description=(
        "OAuth scope sent with the token request; may name {login_host} and {domain} (Dataverse: the org URL + /.default)"))
    token_lifetime_seconds: Optional[int] = Field(
        None, description="when the token response gives no expires_in: assumed lifetime (None = refresh only on the refresh rule)")
    refresh_margin_seconds: int = Field(300, ge=0, description="refresh this long before the token expires")
    jwt: Optional[JwtSpec] = None
    header: str = "Authorization"
    scheme: str = "Bearer"
    basic_username: Optional[str] = Field(None, description=(
        "basic: the user name as a template of secrets (Zendesk API token: {email}/token); default the username secret"))
    basic_password_secret: str = Field("password", description="basic: the secret sent as the password")

    @model_validator(mode="after")
    def _needs(self):
        if self.type in ("oauth2_refresh_token", "oauth2_client_credentials", "oauth2_password", "jwt_bearer") \
                and not self.token_url:
            raise ValueError(f"auth method {self.type} needs token_url")
        if self.type == "jwt_bearer" and self.jwt is None:
            raise ValueError("auth method jwt_bearer needs a jwt section (issuer, subject, audience)")
        return self


class Environment(_Strict):
    login_host: str


class AccountIdSpec(_Strict):
    """Where "test connection" finds the account it reached (Salesforce org, HubSpot portal)."""
    label: str = Field("account", description="what the system calls it: org, portal, ...")
    source: Literal["test_response", "token_response"] = "test_response"
    path: str = Field(description="JSON path in that response (a non-secret field)")
    pattern: Optional[str] = Field(None, description="regex whose first group is the id within the value")


class ConnectionSpec(_Strict):
    environments: dict[str, Environment] = Field(default_factory=dict)
    custom_domain: Optional[str] = Field(None, description="host template replacing the login host, e.g. {domain}.my.salesforce.com")
    base_url: Optional[str] = Field(None, description=(
        "API base URL: fixed (https://api.hubapi.com), on the login host (https://{login_host}, the customer's "
        "instance), or per account with {domain} (https://{domain}.zendesk.com)"))
    base_url_from_token: Optional[str] = Field(None, description="token response field holding the API base URL (instance_url)")
    auth_methods: dict[str, AuthMethod]
    variables: dict[str, str] = Field(default_factory=dict, description="values for request templates, e.g. api_version")
    test_request: Optional["RequestSpec"] = None
    account_id: Optional[AccountIdSpec] = None

    @model_validator(mode="after")
    def _base(self):
        if not self.base_url and not self.base_url_from_token:
            raise ValueError("a connection needs base_url or base_url_from_token")
        if self.base_url_from_token and not self.environments:
            raise ValueError("base_url_from_token needs environments with login hosts")
        return self


# --------------------------------------------------------------------------- client behaviour

ErrorAction = Literal["refresh_and_retry", "retry", "stop_and_resume", "reauthorize", "fail"]


class ErrorRule(_Strict):
    """A response matching `status` (any of) and every `body` entry (a JSON path -> value; a JSON
    array body matches when any element matches) gets `action`; `message` is what a person reads
    (placeholders: {connection}, {auth_method}, {status}, {error_code}, {error_message}, {fields})."""
    scope: Literal["api", "token"] = Field("api", description="API responses, or the token endpoint's")
    grants: list[AuthType] = Field(default_factory=list, description="only for these auth method types (empty = all)")
    status: list[int] = Field(default_factory=list)
    body: dict[str, Any] = Field(default_factory=dict)
    action: ErrorAction
    message: str


class UsageHeader(_Strict):
    """An API usage header: `pattern` (regex with named groups `used`/`limit`/`remaining`) or the
    header's whole value as one number for `kind`."""
    header: str
    budget: Literal["daily", "secondly", "other"] = "daily"
    pattern: Optional[str] = None
    kind: Literal["used", "limit", "remaining"] = "remaining"


class RetrySpec(_Strict):
    max_attempts: int = Field(5, ge=1)
    initial_backoff_seconds: float = Field(1.0, ge=0)
    max_backoff_seconds: float = Field(60.0, ge=0)
    max_total_wait_seconds: float = Field(300.0, ge=0)
    retry_statuses: list[int] = Field(default_factory=lambda: [500, 502, 503, 504])


class ClientSpec(_Strict):
    timeout_seconds: float = Field(60.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    retries: RetrySpec = Field(default_factory=RetrySpec)
    usage_headers: list[UsageHeader] = Field(default_factory=list)
    daily_budget_reserve: int = Field(0, ge=0, description="stop cleanly when the daily remaining calls fall to this")
    errors: list[ErrorRule] = Field(default_factory=list)


# --------------------------------------------------------------------------- streams

class RequestSpec(_Strict):
    method: Literal["GET", "POST"] = "GET"
    path: str
    params: dict[str, Any] = Field(default_factory=dict)
    body: Optional[Any] = None
    headers: dict[str, str] = Field(default_factory=dict)


PaginatorType = Literal["none", "next_url", "after_cursor", "starting_after", "page", "offset", "link_header", "search"]


class PaginatorSpec(_Strict):
    type: PaginatorType = "none"
    next_path: Optional[str] = Field(None, description="response path of the next URL / after token")
    done_path: Optional[str] = Field(None, description="response path that is true on the last page")
    param: Optional[str] = Field(None, description="request param (or body key for POST) carrying after/page/offset/starting_after")
    in_body: bool = False
    page_size_param: Optional[str] = None
    page_size: Optional[int] = None
    has_more_path: Optional[str] = None
    start: int = 0
    result_cap: Optional[int] = Field(None, description="search: total results one query may page through (HubSpot 10,000)")
    tie_break_field: Optional[str] = Field(None, description="search: sortable unique property used past the cap (hs_object_id)")
    total_header: Optional[str] = Field(None, description=(
        "offset / link_header: the response header counting the whole result (X-Total-Count); when it changes "
        "between pages the offsets may have shifted, so later pages offer no state past the last page before"))


class FieldDiscovery(_Strict):
    request: RequestSpec
    selector: str = Field(description="response path of the field list")
    name: str = "name"
    type: Optional[str] = "type"
    include: dict[str, Any] = Field(default_factory=dict, description="keep only fields whose keys have these values")
    exclude_types: list[str] = Field(default_factory=list)


class IncrementalSpec(_Strict):
    cursor_field: str
    cursor_format: Literal["iso", "epoch_ms", "epoch_s"] = "iso"
    literal_format: Literal["iso_z", "iso_ms_z", "epoch_ms", "epoch_s", "utc_seconds"] = Field("iso_z", description=(
        "how bounds are written: iso_z 2026-12-01T10:00:00Z, iso_ms_z, epoch_ms, epoch_s, "
        "utc_seconds 2026-12-01 10:00:00"))
    lookback_seconds: int = Field(0, ge=0)
    visibility_lag_seconds: int = Field(0, ge=0)
    lower_filter: Optional[str] = Field(None, description="template with {lower}; joined into {where}")
    upper_filter: Optional[str] = Field(None, description="template with {upper}; joined into {where}")
    where_prefix: str = " WHERE "
    where_join: str = " AND "
    request: Optional[RequestSpec] = Field(None, description="request used when there is a lower bound (a search endpoint)")
    paginator: Optional[PaginatorSpec] = None
    record_selector: Optional[str] = None
    full_lower: Optional[str] = Field(None, description=(
        "the lower bound literal a full sync sends when the request needs one (Zendesk: start_time=0)"))
    resume: Optional["ResumeSpec"] = None
    dedupe_pages: bool = Field(False, description=(
        "drop a record whose primary key and cursor value a page of this sync already held (time-based exports "
        "repeat the records of a page's last second on the next page)"))


class ResumeSpec(_Strict):
    """A server-side cursor the sync keeps instead of a timestamp (Zendesk's cursor-based exports): each
    page's `token_path` value is stored with the state, and the next sync sends it as `param` in place of
    the request params in `replaces` (the lower bound). A state without a token starts from the cursor."""
    token_path: str = Field(description="response path of the token to resume from (after_cursor)")
    param: str = Field(description="request param carrying the stored token (cursor)")
    replaces: list[str] = Field(default_factory=list, description="request params the token replaces (start_time)")


class DeletesSpec(_Strict):
    flag_field: Optional[str] = None
    flag_value: Any = True
    archived_request: Optional[RequestSpec] = Field(None, description="a list of archived (deleted) records")
    deleted_request: Optional[RequestSpec] = None
    deleted_selector: Optional[str] = None
    deleted_id_field: str = "id"
    literal_format: Optional[Literal["iso_z", "iso_ms_z", "epoch_ms", "utc_seconds"]] = Field(None, description=(
        "how deleted_request's {start}/{end} are written (default iso_z)"))


class ParentSpec(_Strict):
    stream: str
    key: str = Field(description="parent record field handed to the child as {parent.<key>}")
    batch_size: int = Field(100, ge=1)


class FlattenSpec(_Strict):
    root: Optional[str] = Field(None, description="record key whose dict becomes the columns (HubSpot properties)")
    keep: list[str] = Field(default_factory=list, description="top-level keys kept beside the root's columns")
    separator: str = "."
    drop: list[str] = Field(default_factory=lambda: ["attributes"])
    explode: Optional[str] = Field(None, description="a list key whose items become one record each (with the other keys)")


class ExportSpec(_Strict):
    """An asynchronous export job: create, poll until done, download CSV pages with a locator header."""
    create: RequestSpec
    id_path: str = "id"
    poll: RequestSpec
    state_path: str = "state"
    done_states: list[str] = Field(default_factory=lambda: ["JobComplete"])
    failed_states: list[str] = Field(default_factory=lambda: ["Failed", "Aborted"])
    poll_interval_seconds: float = Field(5.0, ge=0)
    max_poll_seconds: float = Field(3600.0, gt=0)
    results: RequestSpec
    locator_header: str = "Sforce-Locator"
    locator_param: str = "locator"
    locator_done: str = "null"
    count_request: Optional[RequestSpec] = None
    count_path: str = "totalSize"
    row_threshold: int = Field(500_000, ge=0)


class StreamSpec(_Strict):
    object: Optional[str] = Field(None, description="the vendor object name ({object} in templates); the key when absent")
    description: str = ""
    request: RequestSpec
    record_selector: str = ""
    paginator: PaginatorSpec = Field(default_factory=PaginatorSpec)
    primary_key: str
    fields: list[str] = Field(default_factory=list, description="fixed fields (when there is no discovery)")
    response_fields: list[str] = Field(default_factory=list, description=(
        "fields the response carries without being asked for (OData annotations such as "
        "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname): described and always a column, "
        "never put into the {fields} list"))
    field_discovery: Optional[FieldDiscovery] = None
    fields_param_separator: str = ","
    incremental: Optional[IncrementalSpec] = None
    deletes: Optional[DeletesSpec] = None
    parent: Optional[ParentSpec] = None
    flatten: FlattenSpec = Field(default_factory=FlattenSpec)
    export: Optional[ExportSpec] = None
    template: bool = Field(False, description="a template for any object a user names (stream key = template name)")


class SystemSpec(_Strict):
    system: str
    label: str = ""
    connection: ConnectionSpec
    client: ClientSpec = Field(default_factory=ClientSpec)
    streams: dict[str, StreamSpec]
    jobs: dict[str, dict[str, Any]] = Field(default_factory=dict, description=(
        "out-of-the-box jobs (templates without a connection; checked as jobs when a connection expands them)"))
    source_file: str = Field("", exclude=True)

    @model_validator(mode="after")
    def _parents(self):
        for name, s in self.streams.items():
            if s.parent and s.parent.stream not in self.streams:
                raise ValueError(f"streams.{name}.parent.stream: unknown stream {s.parent.stream!r}")
        return self

    def stream(self, name: str, object_name: Optional[str] = None) -> "BoundStream":
        """A stream by name; a template stream (`any_object`) bound to the object a user names."""
        if name in self.streams and not self.streams[name].template:
            s = self.streams[name]
            return BoundStream(name=name, object=s.object or name, spec=s)
        templates = [k for k, s in self.streams.items() if s.template]
        if object_name and templates:
            return BoundStream(name=name, object=object_name, spec=self.streams[templates[0]])
        known = ", ".join(k for k, s in self.streams.items() if not s.template)
        raise KeyError(f"{self.system} has no stream {name!r}; its streams: {known}"
                       + (f" (or name any object through {templates[0]!r})" if templates else ""))


class BoundStream(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    object: str
    spec: StreamSpec


ConnectionSpec.model_rebuild()
IncrementalSpec.model_rebuild()

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def render(template: Any, values: dict[str, Any]) -> Any:
    """Fill `{name}` placeholders in a string / list / dict template (see module doc)."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]

        def sub(m):
            return str(values[m.group(1)]) if m.group(1) in values else m.group(0)
        return _PLACEHOLDER.sub(sub, template)
    if isinstance(template, list):
        out = []
        for item in template:
            r = render(item, values)
            if isinstance(item, str) and _PLACEHOLDER.fullmatch(item) and isinstance(r, list) and item.endswith("s}"):
                out.extend(r)  # "{window_filters}" inside a list splices its items
            else:
                out.append(r)
        return out
    if isinstance(template, dict):
        return {k: render(v, values) for k, v in template.items()}
    return template


def dig(data: Any, path: Optional[str], default: Any = None) -> Any:
    """`a.b.0.c` into nested dicts / lists; '' or None is the data itself."""
    if not path:
        return data
    if isinstance(data, dict) and path in data:
        return data[path]  # a key holding dots (OData's "@odata.nextLink")
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict):
            if part not in cur:
                return default
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return default
    return cur


def system_names() -> list[str]:
    return sorted(p.parent.name for p in SYSTEMS_DIR.glob("*/spec.yaml"))


def load_spec_file(path: Path) -> SystemSpec:
    data = {k: v for k, v in read_yaml_mapping(path).items() if not str(k).startswith("_")}  # _anchors
    try:
        spec = SystemSpec.model_validate(data)
    except ValidationError as exc:
        raise format_pydantic_errors(str(path), "", exc, SystemSpec) from None
    if spec.system != path.parent.name and path.name == "spec.yaml":
        raise ConfigError(str(path), "system", f"the spec says {spec.system!r} but lives in systems/{path.parent.name}/")
    return spec.model_copy(update={"source_file": str(path)})


@lru_cache(maxsize=None)
def load_system_spec(system: str) -> SystemSpec:
    path = SYSTEMS_DIR / system / "spec.yaml"
    if not path.is_file():
        raise ConfigError(str(path), "system", f"unknown REST system {system!r}; known systems: {', '.join(system_names())}")
    return load_spec_file(path)
