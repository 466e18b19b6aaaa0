"""Config models of the REST API kind: a connection to one system a spec file describes
(`type: rest_api`, `system: salesforce`), and a job's source (a stream of that system).

Secrets never sit in config: a connection names, per secret its auth method needs, the env var
that holds it (default `GSDP_<CONNECTION>_<SECRET>`, upper case). The registry registers both
models for connections of `type: rest_api`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit
from datetime import date
from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gs_assets.config.jobs import ConnectionBase, Job, Operation, SourceBase
from gs_assets.connectors.incremental import secret_env_name
from gs_assets.connectors.rest_api.spec import SystemSpec, load_system_spec, system_names

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RestAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str = Field(description="one of the system's auth methods (e.g. refresh_token, jwt_bearer, private_app)")
    env: dict[str, str] = Field(default_factory=dict, description=(
        "secret name -> the env var holding it (default GSDP_<CONNECTION>_<SECRET>); values never go in config"))


class RestApiConnection(ConnectionBase):
    """A connection to a system the rest_api kind has a spec for."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["rest_api"]
    system: str = Field(description="the system's spec: gs_assets/connectors/rest_api/systems/<system>/spec.yaml")
    description: str = ""
    environment: Optional[str] = Field(default=None, description=(
        "production or sandbox (the system's environments; default: its first)"))
    domain: Optional[str] = Field(default=None, description=(
        "custom domain replacing the login host (Salesforce My Domain: `acme` for acme.my.salesforce.com)"))
    auth: RestAuth
    default_jobs: dict[str, Union[bool, dict[str, Any]]] = Field(default_factory=dict, description=(
        "per out-of-the-box job: false to switch it off, or keys that replace the default's"))
    sync_start: date = Field(default=date(2020, 1, 1), description=(
        "the first re-sync window: the source assets' time partitions start here"))
    resync_window: Literal["monthly", "weekly", "daily"] = Field(default="monthly", description=(
        "the size of the time partitions a user re-syncs from the UI (the latest partition is `sync now`)"))
    records_per_load: int = Field(default=50_000, ge=100, le=5_000_000, description=(
        "a sync commits a load every this many records (at a page boundary): a run stopped by a rate limit "
        "or killed keeps what committed and the next run resumes from there"))
    bulk_export_above_rows: Optional[int] = Field(default=None, ge=0, description=(
        "a full sync of a stream with an asynchronous export (Salesforce Bulk API 2.0 query) uses it when the "
        "source counts more records than this (default: the system spec's threshold, 500,000 for Salesforce)"))
    daily_budget_reserve: Optional[int] = Field(default=None, ge=0, description=(
        "API calls of the daily budget left for other integrations: a sync stops cleanly when only these "
        "remain (default: the system spec's)"))

    @model_validator(mode="after")
    def _fits_its_system(self) -> "RestApiConnection":
        if self.system not in system_names():
            raise ValueError(f"system: unknown REST system {self.system!r}; known systems: {', '.join(system_names())}")
        spec = self.spec
        envs = list(spec.connection.environments)
        if self.environment is not None and self.environment not in envs:
            raise ValueError(f"environment: {self.system} has no environment {self.environment!r}; its environments: "
                             f"{', '.join(envs) or '(none: one fixed host)'}")
        if self.domain is not None:
            if not spec.connection.custom_domain:
                raise ValueError(f"domain: {self.system} has no custom domain (its API host is fixed)")
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*(\.[A-Za-z0-9-]+)*", self.domain):
                raise ValueError(f"domain: {self.domain!r} is not a host name part (e.g. acme for "
                                 f"{spec.connection.custom_domain.format(domain='acme')})")
        if self.domain is None and "{login_host}" in (spec.connection.base_url or "") and not envs \
                and spec.connection.custom_domain:
            raise ValueError(f"domain: {self.system}'s API runs on the customer's own instance; set domain (e.g. acme "
                             f"for {spec.connection.custom_domain.format(domain='acme')})")
        if self.domain is None and "{domain}" in (spec.connection.base_url or ""):
            example = urlsplit(spec.connection.base_url.format(domain="acme")).hostname
            raise ValueError(f"domain: {self.system}'s API host is per account ({spec.connection.base_url}); set "
                             f"domain (e.g. acme for {example})")
        methods = spec.connection.auth_methods
        if self.auth.method not in methods:
            raise ValueError(f"auth.method: {self.system} offers {', '.join(methods)}, not {self.auth.method!r}")
        needed = methods[self.auth.method].secrets
        for secret, var in self.auth.env.items():
            if secret not in needed:
                raise ValueError(f"auth.env.{secret}: auth method {self.auth.method} takes the secrets "
                                 f"{', '.join(needed)}, not {secret!r}")
            if not ENV_NAME.match(var):
                raise ValueError(f"auth.env.{secret}: {var!r} is not an env var name (the value goes in the "
                                 f"environment, never in config)")
        if methods[self.auth.method].type == "oauth2_client_credentials" and spec.connection.custom_domain \
                and self.domain is None:
            raise ValueError(f"domain: {self.system}'s client credentials flow runs on the org's own domain; set "
                             f"domain (e.g. acme for {spec.connection.custom_domain.format(domain='acme')})")
        return self

    @property
    def spec(self) -> SystemSpec:
        return load_system_spec(self.system)

    @property
    def environment_name(self) -> Optional[str]:
        envs = list(self.spec.connection.environments)
        return self.environment or (envs[0] if envs else None)

    def secret_env(self, connection_name: str) -> dict[str, str]:
        """secret name -> env var name, for the connection's auth method."""
        needed = self.spec.connection.auth_methods[self.auth.method].secrets
        return {s: self.auth.env.get(s, secret_env_name(connection_name, s)) for s in needed}

    def default_job_templates(self) -> tuple[str, dict[str, dict[str, Any]]]:
        """(the spec file, its out-of-the-box jobs) for config's default-jobs expansion."""
        return self.spec.source_file, dict(self.spec.jobs)

    def job_problem(self, job: Job) -> Optional[tuple[str, str]]:
        src = job.source
        stream = src.stream or src.object
        try:
            bound = self.spec.stream(stream, src.sobject)
        except KeyError as e:
            return "source.stream", str(e.args[0])
        if job.operation == Operation.INSERT:
            return "operation", ("an API sync re-reads the records at its cursor boundary (and a re-synced window "
                                 "again), so insert would add them twice; use upsert with the record id "
                                 f"({bound.spec.primary_key}) mapped to an identifier field")
        if job.deletes.policy.value != "ignore":
            # A delete the source reports carries only the record's primary key: the job's identifiers
            # must come from it, or no delete could ever match a record.
            pk = {k.strip() for k in bound.spec.primary_key.split(",")}
            by_target = {m.target: m.source for m in job.mappings}
            off = [i for i in job.identifiers if by_target.get(i) not in pk]
            if off:
                return "deletes", (f"a delete {self.system} reports carries only the record's {bound.spec.primary_key}, "
                                   f"but identifier(s) {', '.join(off)} of this job are not mapped from it, so no "
                                   f"delete could match a record; map {bound.spec.primary_key} to the identifier, "
                                   f"or use deletes: {{policy: ignore}}")
        if src.full_refresh is False and bound.spec.incremental is None:
            return "source.full_refresh", (f"stream {stream} of {self.system} has no cursor field, so every sync reads "
                                           f"it in full; remove full_refresh: false")
        return None


class RestSource(SourceBase):
    """A job's source on a REST API connection: one stream of the system (the asset
    `source/<connection>/<object>`)."""

    model_config = ConfigDict(extra="forbid")
    stream: Optional[str] = Field(default=None, description="the spec's stream (default: the object name)")
    sobject: Optional[str] = Field(default=None, description=(
        "for a template stream (Salesforce any_object): the object's API name, e.g. Renewal__c"))
    fields: list[str] = Field(default_factory=list, description=(
        "fields to read besides those the jobs map (the primary key, cursor and delete flag are always read)"))
    full_refresh: Optional[bool] = Field(default=None, description=(
        "true: every sync reads the whole stream (no cursor); default: incremental when the stream has a cursor"))
    PER_JOB_SETTINGS: ClassVar[frozenset[str]] = frozenset()

    @property
    def stream_name(self) -> str:
        return self.stream or self.object

    @property
    def summary(self) -> str:
        return f"stream {self.stream_name}" + (f" ({self.sobject})" if self.sobject else "")
