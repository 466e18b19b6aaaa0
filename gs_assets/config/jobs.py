"""Job config: which source feeds which destination object, and how (mapping, lookups, operation).

Everything is checked against the data model when definitions load, so a typo in a field name
fails at load time naming the file and key, never half way through a run.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any, Literal, Optional, Union
from urllib.parse import urlsplit

from gs_assets.validators.date_patterns import compile_date_pattern
from gs_assets.validators.encodings import normalise_encoding
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


class S3Connection(BaseModel):
    """Files in a bucket. Endpoint, region and credentials come from the S3 resource (env vars)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["s3"]
    bucket: str = Field(min_length=3)
    description: str = ""
    system: Optional[str] = Field(default=None, description=(
        "a known system (e.g. hubspot_crm): the connection comes with that system's default jobs"))
    prefix: str = Field(default="", description="where the system's files land in the bucket (for its default jobs)")
    default_jobs: dict[str, Union[bool, dict[str, Any]]] = Field(default_factory=dict, description=(
        "per default job: false to switch it off, or keys that replace the default's (e.g. schedule, mappings)"))
    backfill_files_per_run: int = Field(default=10, ge=1, le=500, description=(
        "a backfill over this connection's file partitions lands up to this many files per run "
        "(fewer runs to start; 1 = a run per file)"))
    max_decompressed_mb: float = Field(default=20480, gt=0, description=(
        "a gzip / bzip2 file that inflates past this many MB fails (Failed, moved to the error prefix) and "
        "decompression stops there; the default (20 GiB) passes any export a 16 MiB-per-record CSV job meets"))
    max_compression_ratio: float = Field(default=200, gt=1, description=(
        "a compressed file that inflates more than this many times fails once past its first 64 MB; CSV "
        "exports compress 3-20 times, a decompression bomb about 1000 times (gzip) or far more (bzip2)"))


Connection = S3Connection


class FileSource(BaseModel):
    """Which files a job picks up and how to read them."""

    model_config = ConfigDict(extra="forbid")
    object: str = Field(description="source object name: the asset is source/<connection>/<object>")
    prefix: str = ""
    file_name: str = Field(default="*.csv", description="the name rule's argument: a name, a start, a date pattern or a glob")
    match: Literal["equals", "starts_with", "date_pattern", "glob"] = Field(
        default="glob", description="equals | starts_with | date_pattern (e.g. usage_{yyyy}-{MM}-{dd}.csv) | glob")
    listing: Literal["full", "start_after", "sqs"] = Field(
        default="full", description="how the sensor finds files: list the prefix, list after the last keys "
        "(keys sort by date or sequence), or S3 event notifications from an SQS queue")
    listing_window: int = Field(default=1000, ge=1, le=100_000,
                                description="start_after: how many recent keys are re-listed to catch late or re-uploaded files")
    sqs_queue_url: Optional[str] = None
    archive_prefix: Optional[str] = Field(default=None, description="where loaded files move (default <prefix>archive/); '' keeps them in place")
    error_prefix: Optional[str] = Field(default=None, description="where files that fail move (default <prefix>error/)")
    on_identical_file: Literal["archive", "reapply"] = Field(default="archive", description=(
        "a file uploaded again with the same key and content as a version already loaded: archive it with a "
        "note that it was already loaded (default), or reapply it (land it again and let every job apply it, "
        "e.g. a feed that re-sends rows whose lookups failed)"))
    delimiter: str = ","
    quote: str = '"'
    escape: Optional[str] = None
    encoding: str = "utf-8"
    compression: str = Field(default="auto", description="auto (from the file name: .gz, .bz2), none, gzip or bzip2")
    date_formats: list[str] = Field(default_factory=lambda: ["%Y-%m-%d", "%m/%d/%Y"])
    datetime_formats: list[str] = Field(default_factory=lambda: ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%m/%d/%Y %H:%M"])

    @field_validator("delimiter")
    @classmethod
    def _delim(cls, v: str) -> str:
        names = {"comma": ",", "tab": "\t", "pipe": "|", "semicolon": ";", "space": " "}
        v = names.get(v, v)
        if v not in (",", "\t", "|", ";", " "):
            raise ValueError("delimiter must be one of comma, tab, pipe, semicolon, space (or the character)")
        return v

    @model_validator(mode="after")
    def _rule(self) -> "FileSource":
        if self.match == "date_pattern":
            try:
                compile_date_pattern(self.file_name)
            except ValueError as e:
                raise ValueError(f"file_name: {e}") from None
        for p in (self.archive_prefix, self.error_prefix):
            if p is not None and p != "" and p == self.prefix:
                raise ValueError("archive_prefix and error_prefix must differ from prefix, or the file would be picked up again")
        return self

    @model_validator(mode="after")
    def _listing(self) -> "FileSource":
        if self.listing == "sqs" and not self.sqs_queue_url:
            raise ValueError("listing: sqs needs sqs_queue_url (the queue receiving the bucket's ObjectCreated events)")
        return self

    @property
    def archive_to(self) -> str:
        return self.prefix + "archive/" if self.archive_prefix is None else self.archive_prefix

    @property
    def error_to(self) -> str:
        return self.prefix + "error/" if self.error_prefix is None else self.error_prefix

    @property
    def rule_text(self) -> str:
        return f"{self.prefix}{self.file_name} ({self.match})"

    @field_validator("encoding")
    @classmethod
    def _enc(cls, v: str) -> str:
        normalise_encoding(v)
        return v

    @field_validator("compression")
    @classmethod
    def _comp(cls, v: str) -> str:
        if v not in ("auto", "none", "gzip", "bzip2"):
            raise ValueError("compression must be auto, none, gzip or bzip2")
        return v

    @field_validator("quote", "escape")
    @classmethod
    def _one_char(cls, v):
        if v is not None and len(v) != 1:
            raise ValueError("must be a single character, e.g. '\"' or \"'\" or '\\\\'")
        return v

    @field_validator("object")
    @classmethod
    def _obj(cls, v: str) -> str:
        if not JOB_NAME.match(v):
            raise ValueError("source object name must be snake_case")
        return v


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


class Job(Scheduled):
    model_config = ConfigDict(extra="forbid")
    name: SkipJsonSchema[str] = ""  # the key under `jobs:`, set by the loader
    connection: str
    source: FileSource
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
    description: str = ""

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


# Connection types: `type` -> its config model. Connector kinds register theirs through the
# registry (gs_assets/connectors/registry.py); `Connection` is the union of them, discriminated on
# `type`. The S3 connection is here from the start, so config loads without the connectors.
CONNECTION_MODELS: dict[str, type[BaseModel]] = {"s3": S3Connection}


def register_connection_model(type_: str, model: Optional[type[BaseModel]]) -> None:
    """Add (or, with None, remove) the config model of connections of this `type`."""
    if model is None:
        CONNECTION_MODELS.pop(type_, None)
    else:
        CONNECTION_MODELS[type_] = model


def connection_union() -> Any:
    models = tuple(CONNECTION_MODELS.values())
    return models[0] if len(models) == 1 else Annotated[Union[models], Field(discriminator="type")]


def platform_file_model() -> type[PlatformFile]:
    """PlatformFile with `connections` validated against every registered connection type."""
    union = connection_union()
    if union is Connection:
        return PlatformFile
    return create_model("PlatformFile", __base__=PlatformFile, __doc__=PlatformFile.__doc__,
                        connections=(dict[str, union], Field(default_factory=dict)))


def job_json_schema() -> dict[str, Any]:
    return platform_file_model().model_json_schema()
