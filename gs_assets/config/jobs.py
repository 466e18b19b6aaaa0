"""Job config: which source feeds which destination object, and how (mapping, lookups, operation).

Everything is checked against the data model when definitions load, so a typo in a field name
fails at load time naming the file and key, never half way through a run.
"""

from __future__ import annotations

import re
from enum import Enum
from dataclasses import dataclass, field as dc_field
from typing import Annotated, Any, ClassVar, Literal, Optional, Union
from urllib.parse import urlsplit

from gs_assets.validators.expressions import check_expression
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

JOB_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
VIRTUAL_COLUMNS = ("$file_date", "$file_name")  # mapping sources taken from the file, not its rows


class Operation(str, Enum):
    INSERT = "insert"
    UPDATE = "update"
    UPSERT = "upsert"


class OnMultiple(str, Enum):
    ANY = "any"  # use any one match (deterministic: the smallest GSID)
    ERROR = "error"  # mark record as error


class OnNone(str, Enum):
    ERROR = "error"
    EMPTY = "empty"
    DEFAULT = "default"


DEFAULT_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y")
DEFAULT_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%m/%d/%Y %H:%M")


@dataclass
class ValueFormats:
    """How a source writes dates and datetimes as text (the engine's type conversion tries these,
    then ISO 8601). A kind's source model hands it to the engine (`SourceBase.value_formats`)."""
    date_formats: list[str] = dc_field(default_factory=lambda: list(DEFAULT_DATE_FORMATS))
    datetime_formats: list[str] = dc_field(default_factory=lambda: list(DEFAULT_DATETIME_FORMATS))


class ConnectionBase(BaseModel):
    """What every connection has: its `type` (the connector kind, the key of the discriminated
    union). Each kind's connection model (in its folder) narrows `type` to its own literal and adds
    its settings."""

    type: str

    def job_problem(self, job: "Job") -> Optional[tuple[str, str]]:
        """What this connection says about a job that reads it (e.g. a stream its system does not
        have): (key under the job, what is wrong and what to do), or None."""
        return None


# A configured connection: an instance of one registered connection model (see CONNECTION_MODELS).
Connection = ConnectionBase


class SourceBase(BaseModel):
    """What every job source has, whatever its kind: the source object it lands (the asset
    `source/<connection>/<object>`). Each kind's source model (in its folder) adds its settings.

    Read from YAML, a source first keeps every key it has (the job's connection may be defined in
    another file); the loader then validates it against the source model of its connection's kind
    (where unknown keys fail), so `job.source` of a loaded config is an instance of that model."""

    model_config = ConfigDict(extra="allow")
    object: str = Field(description="source object name: the asset is source/<connection>/<object>")
    # Settings that jobs sharing this source object may set differently (all others must match:
    # one raw table, one asset).
    PER_JOB_SETTINGS: ClassVar[frozenset[str]] = frozenset()

    @field_validator("object")
    @classmethod
    def _obj(cls, v: str) -> str:
        if not JOB_NAME.match(v):
            raise ValueError("source object name must be snake_case")
        return v

    @property
    def value_formats(self) -> ValueFormats:
        """How this source writes dates and datetimes (the engine converts text values with them)."""
        return ValueFormats()

    @property
    def summary(self) -> str:
        """A few words on what the source reads, beside its object name (`gsdp jobs`); "" for none."""
        return ""

    def job_problem(self, job: "Job") -> Optional[tuple[str, str]]:
        """A setting of this source that does not fit the rest of its job: (key under the job,
        e.g. `source.listing`, and what is wrong and what to do), or None."""
        return None


class FieldMapping(BaseModel):
    """One target field: from a source column, or a constant; with an optional default."""

    model_config = ConfigDict(extra="forbid")
    target: str
    source: Optional[str] = None
    constant: Optional[Union[str, int, float, bool]] = None
    default: Optional[Union[str, int, float, bool]] = None

    @model_validator(mode="after")
    def _one_of(self) -> "FieldMapping":
        if (self.source is None) == (self.constant is None) and self.default is None:
            raise ValueError("a mapping needs exactly one of 'source' or 'constant' (or only a 'default')")
        if self.source is not None and self.constant is not None:
            raise ValueError("a mapping takes 'source' or 'constant', not both")
        return self


class MatchField(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="column of the source file")
    field: str = Field(description="field of the looked-up object")


class Lookup(BaseModel):
    """Compound mapping: find a record by up to 6 fields and write its GSID into `target`."""

    model_config = ConfigDict(extra="forbid")
    target: str
    object: str
    match: list[MatchField] = Field(min_length=1, max_length=6)
    on_multiple: OnMultiple = OnMultiple.ERROR
    on_none: OnNone = OnNone.ERROR
    default: Optional[str] = None
    case_insensitive: bool = False

    @model_validator(mode="after")
    def _default(self) -> "Lookup":
        if self.on_none == OnNone.DEFAULT and not self.default:
            raise ValueError("on_none: default needs a 'default' GSID")
        return self


class DerivedField(BaseModel):
    """A new column computed from the source columns by a formula (a DuckDB SQL expression)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="name of the new column; map it like a source column")
    expression: str = Field(description='pure SQL expression over source columns, e.g. concat_ws(\' \', "First", "Last")')


class MergeKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    left: str = Field(description="column of this job's file (or an earlier merge)")
    right: str = Field(description="column of the merged dataset")


class Merge(BaseModel):
    """Join the latest loaded file of another dataset (source object) of the same connection."""

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(description="source object of the same connection, e.g. accounts")
    how: Literal["left", "inner", "full"] = Field(default="left", description=(
        "left: keep every row; inner: rows without a match are filtered (counted as filtered); full: also "
        "rows of the dataset that match no row (read from its file, reported with its file and line)"))
    keys: list[MergeKey] = Field(min_length=1, max_length=6, description="columns that must be equal (up to 6)")
    columns: list[str] = Field(min_length=1, description="columns of the dataset to add")
    prefix: str = Field(default="", description="put before the added column names (to avoid clashes)")


class Measure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="name of the new column; map it like a source column")
    function: Literal["count", "count_distinct", "sum", "min", "max", "avg"]
    column: Optional[str] = Field(default=None, description="column it reads (not needed for count)")

    @model_validator(mode="after")
    def _column(self) -> "Measure":
        if self.function != "count" and not self.column:
            raise ValueError(f"{self.function} needs a 'column'")
        return self


class Aggregate(BaseModel):
    """One row per group: the group_by columns and the measures. Rows folded into a group are
    counted as aggregated; a group's line (for rejects) is the first line of its rows."""

    model_config = ConfigDict(extra="forbid")
    group_by: list[str] = Field(min_length=1)
    measures: list[Measure] = Field(default_factory=list)


class Prepare(BaseModel):
    """Dataset preparation, run in DuckDB before mapping: merges, derived fields, a filter, then
    an aggregation."""

    model_config = ConfigDict(extra="forbid")
    merge: list[Merge] = Field(default_factory=list, description=(
        "joins with other datasets, in order; the dataset's last row per key is used"))
    derived: list[DerivedField] = Field(default_factory=list, description="computed columns, in order")
    filter: Optional[str] = Field(default=None, description=(
        "keep only rows for which this expression is true (over source columns and derived fields); "
        "the others are counted as filtered"))
    aggregate: Optional[Aggregate] = Field(default=None, description="group the rows (after the filter)")


WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


class Schedule(BaseModel):
    """When a job (or a job chain) runs, as an admin would pick it: every day or weekday, a day of
    the week, or a date of the month, at a time in a time zone. `cron` is there for anything else."""

    model_config = ConfigDict(extra="forbid")
    every: Optional[Literal["day", "weekday", "week", "month"]] = None
    at: str = Field(default="00:00", description="time of day, 24h HH:MM")
    day: Optional[Union[int, str]] = Field(default=None, description="week: monday..sunday; month: 1..28")
    cron: Optional[str] = Field(default=None, description="a cron expression instead of every/at/day")
    timezone: Optional[str] = Field(default=None, description="IANA time zone (default: the job's timezone)")

    @model_validator(mode="after")
    def _shape(self) -> "Schedule":
        if (self.every is None) == (self.cron is None):
            raise ValueError("a schedule needs exactly one of 'every' (day, weekday, week, month) or 'cron'")
        if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", self.at):
            raise ValueError(f"'at' must be a time HH:MM (00:00 to 23:59), not {self.at!r}")
        if self.every == "week" and (not isinstance(self.day, str) or self.day.lower() not in WEEKDAYS):
            raise ValueError(f"every: week needs 'day', one of {', '.join(WEEKDAYS)}")
        if self.every == "month" and (not isinstance(self.day, int) or not 1 <= self.day <= 28):
            raise ValueError("every: month needs 'day', a date from 1 to 28 (every month has it)")
        if self.every in ("day", "weekday") and self.day is not None:
            raise ValueError(f"every: {self.every} takes no 'day'")
        if self.cron is not None:
            from dagster._utils.schedules import is_valid_cron_string
            if not is_valid_cron_string(self.cron):
                raise ValueError(f"{self.cron!r} is not a valid cron expression (minute hour day month weekday)")
        if self.timezone is not None:
            _check_timezone(self.timezone)
        return self

    def cron_expression(self) -> str:
        if self.cron:
            return self.cron
        h, m = (int(x) for x in self.at.split(":"))
        if self.every == "week":
            return f"{m} {h} * * {WEEKDAYS.index(str(self.day).lower())}"
        if self.every == "month":
            return f"{m} {h} {self.day} * *"
        return f"{m} {h} * * *" if self.every == "day" else f"{m} {h} * * 1-5"

    def describe(self) -> str:
        if self.cron:
            return f"cron {self.cron}"
        when = {"day": "every day", "weekday": "every weekday", "week": f"every {str(self.day).capitalize()}",
                "month": f"monthly on day {self.day}"}[self.every]
        return f"{when} at {self.at}"


def _check_timezone(tz: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}; use an IANA name such as UTC, Europe/Berlin, America/New_York") from None
    return tz


class Scheduled(BaseModel):
    """What jobs and chains share: an optional schedule (a cron string is read as {cron: ...}) in a
    time zone that the schedule itself may override."""

    schedule: Optional[Union[Schedule, str]] = None
    timezone: str = "UTC"

    @field_validator("schedule", mode="before")
    @classmethod
    def _cron_text(cls, v):
        return {"cron": v} if isinstance(v, str) else v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _check_timezone(v)

    @property
    def schedule_timezone(self) -> str:
        return (self.schedule.timezone if isinstance(self.schedule, Schedule) and self.schedule.timezone
                else self.timezone)


class LookupRetry(BaseModel):
    """Retry rows whose lookup found nothing once the looked-up object gets new records (records
    that arrive a little after the rows that point at them, e.g. cases one tick before their
    companies)."""

    model_config = ConfigDict(extra="forbid")
    attempts: int = Field(default=3, ge=1, le=100, description=(
        "retries per row at most; a row still unmatched after them stays a plain reject"))
    within_hours: float = Field(default=72, gt=0, le=24 * 366, description=(
        "rows are retried only this long after they were first rejected"))


class DeletePolicy(str, Enum):
    IGNORE = "ignore"  # a source-reported delete changes nothing (it is still counted)
    DELETE = "delete"  # the matched record is removed
    MARK = "mark"  # the matched record's `field` is set to `value`


class Deletes(BaseModel):
    """What a delete the source reports (a flag, a deleted-records endpoint, an archived list) does to
    the record it matches on the job's identifiers. Every delete row is counted in the run's
    `deleted` bucket, whatever the policy."""

    model_config = ConfigDict(extra="forbid")
    policy: DeletePolicy = Field(default=DeletePolicy.IGNORE, description=(
        "ignore: change nothing; delete: remove the matched record; mark: set `field` to `value` on it"))
    field: Optional[str] = Field(default=None, description="mark: the destination object's field to set")
    value: Optional[Union[str, int, float, bool]] = Field(default=None, description=(
        "mark: the value to set, valid for the field's type (e.g. a dropdown value)"))


class Job(Scheduled):
    model_config = ConfigDict(extra="forbid")
    name: SkipJsonSchema[str] = ""  # the key under `jobs:`, set by the loader
    connection: str
    source: SourceBase = Field(description=(
        "what the job reads from its connection; its keys depend on the connection's type (the source model "
        "of that connector kind)"))
    destination: str
    operation: Operation = Operation.UPSERT
    identifiers: list[str] = Field(default_factory=list)
    prepare: Prepare = Field(default_factory=Prepare)
    mappings: list[FieldMapping] = Field(min_length=1)
    lookups: list[Lookup] = Field(default_factory=list)
    null_overwrites: bool = Field(default=False, description="a null source value overwrites the stored value")
    bulk_upload: bool = Field(default=False, description="accept CSV uploads through the Bulk API (jobId = job name)")
    reject_threshold_percent: Optional[float] = Field(default=None, ge=0, le=100,
        description="above this share of rejected rows the run is Failed and writes no records")
    schedule: Optional[Union[Schedule, str]] = Field(default=None, description=(
        "when to scan the source and apply new files: {every: day|weekday|week|month, at: HH:MM, day: ...} "
        "or a cron expression; the sensor then leaves the job's files to this schedule (a job of the same "
        "source without schedule still loads them on arrival; the file is archived when every job applied "
        "it). Without it the job loads files as they arrive (sensor) and on demand"))
    retry_unmatched_lookups: Optional[LookupRetry] = Field(default=None, description=(
        "rows rejected only because a lookup to another object (on_none: error) found nothing are applied "
        "again when that object gets new or changed records, up to `attempts` times within `within_hours` "
        "(default: off; e.g. {attempts: 3, within_hours: 72})"))
    deletes: Deletes = Field(default_factory=Deletes, description=(
        "what a delete the source reports does to the matched record (API sources): {policy: ignore} "
        "(default), {policy: delete}, or {policy: mark, field: status, value: Inactive}"))
    description: str = ""

    @field_validator("source", mode="wrap")
    @classmethod
    def _kind_source(cls, v, handler, info):
        """Given the config's connection types (validation context `connection_types`: connection
        name -> type), the source is validated against the source model of its connection's kind,
        so its errors name their keys with the rest of the file's. Without them (or for an unknown
        connection) it keeps its keys for the loader to check."""
        types = (info.context or {}).get("connection_types") or {}
        model = SOURCE_MODELS.get(types.get(info.data.get("connection")))
        if model is None or not isinstance(v, dict):
            return handler(v)
        return model.model_validate(v)

    @model_validator(mode="after")
    def _retry_needs_a_lookup(self) -> "Job":
        if self.retry_unmatched_lookups is not None and not self.retried_lookups:
            raise ValueError("retry_unmatched_lookups needs a lookup to another object with on_none: error "
                             "(rows of other lookups are never rejected for finding nothing)")
        return self

    @property
    def retried_lookups(self) -> list[Lookup]:
        """Lookups whose unmatched rows `retry_unmatched_lookups` retries: to other objects, on_none: error."""
        return [lk for lk in self.lookups if lk.object != self.destination and lk.on_none == OnNone.ERROR]

    @property
    def source_asset_path(self) -> list[str]:
        return ["source", self.connection, self.source.object]

    @property
    def derived_names(self) -> list[str]:
        return [d.name for d in self.prepare.derived]

    @property
    def merged_names(self) -> list[str]:
        return [mg.prefix + c for mg in self.prepare.merge for c in mg.columns]

    @property
    def mapped_source_columns(self) -> list[str]:
        """Columns the file must have: mapped, matched or read by a formula (not virtual
        `$file_date` / `$file_name`, not derived fields)."""
        cols: list[str] = []
        derived = set(self.derived_names) | set(self.merged_names)
        agg = self.prepare.aggregate
        if agg:
            derived |= {m.name for m in agg.measures}
        wanted = [k.left for mg in self.prepare.merge for k in mg.keys]
        if agg:
            wanted += agg.group_by + [m.column for m in agg.measures if m.column]
        wanted += [m.source for m in self.mappings if m.source is not None]
        wanted += [mf.source for lk in self.lookups for mf in lk.match]
        for expr in [d.expression for d in self.prepare.derived] + [self.prepare.filter or ""]:
            if expr:
                wanted += list(check_expression(expr).columns)
        for c in wanted:
            if c not in cols and c not in VIRTUAL_COLUMNS and c not in derived:
                cols.append(c)
        return cols


class Chain(Scheduled):
    """Jobs that run one after another in one run, on the chain's own schedule (which replaces the
    member jobs' schedules; their files are picked up by the chain, not by the file sensor)."""

    model_config = ConfigDict(extra="forbid")
    name: SkipJsonSchema[str] = ""  # the key under `chains:`, set by the loader
    jobs: list[str] = Field(min_length=1, description="member jobs, in the order they run")
    schedule: Optional[Union[Schedule, str]] = Field(default=None, description="when the chain runs (else on demand)")
    on_failure: Literal["stop", "continue"] = Field(default="stop", description=(
        "stop: a failed member ends the chain; continue: the next members still run (the run is still failed)"))
    description: str = ""


class EmailTarget(BaseModel):
    """Mail through the SMTP server in GSDP_SMTP_HOST / GSDP_SMTP_PORT (GSDP_SMTP_USER and
    GSDP_SMTP_PASSWORD if it needs a login, GSDP_SMTP_STARTTLS=1 for STARTTLS)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    to: list[str] = Field(min_length=1, description="recipient addresses")
    sender: str = Field(default="gsdp@localhost", alias="from", description="sender address")

    @field_validator("to")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", a)]
        if bad:
            raise ValueError(f"not an email address: {', '.join(bad)}")
        return v


def webhook_url_problem(url: str) -> Optional[str]:
    """Why `url` cannot be a webhook URL (http or https, a host, no whitespace), or None.

    The reason never repeats the URL or a part of it: a webhook URL often carries a token."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return "it contains a space or another whitespace or control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "it does not start with http:// or https://"
    if not parts.hostname:
        return "it has no host"
    return None


class WebhookTarget(BaseModel):
    """An HTTP POST of a JSON body. Put a URL that carries a token in an env var (`url_env`)."""

    model_config = ConfigDict(extra="forbid")
    url: Optional[str] = Field(default=None, description="http(s) URL without secrets")
    url_env: Optional[str] = Field(default=None, description="name of the env var holding the URL")

    @model_validator(mode="after")
    def _one(self) -> "WebhookTarget":
        if (self.url is None) == (self.url_env is None):
            raise ValueError("a webhook needs exactly one of 'url' or 'url_env'")
        return self  # the URL itself is checked by the loader (webhook_url_problem), which never echoes it


class Notification(BaseModel):
    """Who hears about job runs: on success and/or failure, of some jobs and chains or of all."""

    model_config = ConfigDict(extra="forbid")
    name: SkipJsonSchema[str] = ""
    events: list[Literal["success", "failure"]] = Field(default_factory=lambda: ["failure"], min_length=1,
                                                        description="when to notify: success and/or failure")
    jobs: list[str] = Field(default_factory=list, description="job or chain names (empty: every job)")
    email: Optional[EmailTarget] = None
    webhook: Optional[WebhookTarget] = None

    @model_validator(mode="after")
    def _some(self) -> "Notification":
        if self.email is None and self.webhook is None:
            raise ValueError("a notification needs 'email' and/or 'webhook'")
        return self


class BulkApiSettings(BaseModel):
    """Limits of the Bulk API service (one `bulk_api:` section in the config folder)."""

    model_config = ConfigDict(extra="forbid")
    max_upload_mb: float = Field(default=80, gt=0, description="larger uploads get 413 and nothing is stored")
    calls_per_hour: int = Field(default=10, ge=1, description="upload calls per key per hour (429 beyond)")
    calls_per_day: int = Field(default=100, ge=1, description="upload calls per key per day (429 beyond)")
    content_types: list[str] = Field(default_factory=lambda: [
        "text/csv", "text/plain", "application/csv", "application/vnd.ms-excel", "application/gzip",
        "application/x-gzip", "application/octet-stream"], description="accepted Content-Type of the file part")
    landing_prefix: str = Field(default="bulk/", description="where uploads land in the job's bucket")
    max_decompressed_mb: Optional[float] = Field(default=None, gt=0, description=(
        "a gzip upload that inflates past this many MB gets 413 and nothing is stored (also enforced when it "
        "lands); default 10 x max_upload_mb"))

    @property
    def decompressed_limit_mb(self) -> float:
        return self.max_decompressed_mb if self.max_decompressed_mb is not None else 10 * self.max_upload_mb


class PlatformFile(BaseModel):
    """Shape of a connections/jobs YAML file."""

    model_config = ConfigDict(extra="forbid")
    connections: dict[str, Connection] = Field(default_factory=dict)
    jobs: dict[str, Job] = Field(default_factory=dict)
    chains: dict[str, Chain] = Field(default_factory=dict)
    notifications: dict[str, Notification] = Field(default_factory=dict)
    bulk_api: Optional[BulkApiSettings] = None


# Connection types: `type` -> the config models of its connections and of its jobs' sources.
# Connector kinds register theirs (gs_assets/connectors/registry.py: `register`); config cannot
# import the connectors (it sits below them), so whoever loads config imports the registry first
# (definitions, the CLI, the Bulk API service, tests/conftest.py). `Connection` in a loaded config
# is one member of the union of the connection models, discriminated on `type`.
CONNECTION_MODELS: dict[str, type[BaseModel]] = {}
SOURCE_MODELS: dict[str, type[SourceBase]] = {}


def register_connection_model(type_: str, model: Optional[type[BaseModel]],
                              source_model: Optional[type[SourceBase]] = None) -> None:
    """Add the config models of connections of this `type` and of their jobs' sources (or, with
    None, remove them)."""
    if model is None:
        CONNECTION_MODELS.pop(type_, None)
        SOURCE_MODELS.pop(type_, None)
        return
    CONNECTION_MODELS[type_] = model
    if source_model is None:
        SOURCE_MODELS.pop(type_, None)
    else:
        SOURCE_MODELS[type_] = source_model


def known_connection_types() -> str:
    """The registered connection types, for messages."""
    return ", ".join(sorted(CONNECTION_MODELS)) or (
        "(none: no connector kind is registered; import gs_assets.connectors.registry before loading config)")


def connection_union() -> Any:
    models = tuple(CONNECTION_MODELS.values())
    if not models:
        return ConnectionBase
    return models[0] if len(models) == 1 else Annotated[Union[models], Field(discriminator="type")]


def platform_file_model() -> type[PlatformFile]:
    """PlatformFile with `connections` validated against every registered connection type."""
    union = connection_union()
    if union is Connection:
        return PlatformFile
    return create_model("PlatformFile", __base__=PlatformFile, __doc__=PlatformFile.__doc__,
                        connections=(dict[str, union], Field(default_factory=dict)))


def described_models() -> tuple[type[BaseModel], type[Job]]:
    """(config file model, job model) whose job `source` is any of the registered source models:
    what the JSON Schema shows and what error messages read allowed keys from. (Which source model
    applies depends on the type of the job's connection, which JSON Schema cannot follow; the
    loader validates each source against its own kind's model.)"""
    sources = tuple(dict.fromkeys(SOURCE_MODELS.values()))
    if not sources:
        return platform_file_model(), Job
    job_model = job_model_with_source(sources[0] if len(sources) == 1 else Union[sources])
    file_model = create_model("PlatformFile", __base__=platform_file_model(), __doc__=PlatformFile.__doc__,
                              jobs=(dict[str, job_model], Field(default_factory=dict)))
    return file_model, job_model


def job_model_with_source(source_type: Any) -> type[Job]:
    """Job with `source` described as `source_type` (for schemas and error messages)."""
    return create_model("Job", __base__=Job, __doc__=Job.__doc__, source=(source_type, Job.model_fields["source"]))


def job_json_schema() -> dict[str, Any]:
    """The JSON Schema of a config file: connections as the union of the registered connection
    models, a job's source as any of the registered source models."""
    return described_models()[0].model_json_schema()
