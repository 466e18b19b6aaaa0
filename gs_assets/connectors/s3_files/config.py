"""Config models of the S3 file kind: its connection (a bucket) and a job's source (which files
it picks up and how to read them). The registry registers both for connections of `type: s3`."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import ConfigDict, Field, field_validator, model_validator

from gs_assets.config.jobs import (DEFAULT_DATE_FORMATS, DEFAULT_DATETIME_FORMATS, ConnectionBase, Job, Operation,
                                   SourceBase, ValueFormats)
from gs_assets.validators.date_patterns import compile_date_pattern
from gs_assets.validators.encodings import normalise_encoding


class S3Connection(ConnectionBase):
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


class FileSource(SourceBase):
    """Which files a job picks up and how to read them."""

    model_config = ConfigDict(extra="forbid")
    PER_JOB_SETTINGS: ClassVar[frozenset[str]] = frozenset({"date_formats", "datetime_formats"})
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
    date_formats: list[str] = Field(default_factory=lambda: list(DEFAULT_DATE_FORMATS))
    datetime_formats: list[str] = Field(default_factory=lambda: list(DEFAULT_DATETIME_FORMATS))

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

    @property
    def value_formats(self) -> ValueFormats:
        return ValueFormats(list(self.date_formats), list(self.datetime_formats))

    @property
    def summary(self) -> str:
        return self.rule_text

    def job_problem(self, job: Job) -> Optional[tuple[str, str]]:
        if job.schedule is not None and self.listing == "sqs":
            return "source.listing", (
                "a job with a schedule cannot use listing: sqs: the SQS queue is read only by the s3_files_sensor "
                "as files arrive, while a schedule scans the prefix at its time. Use listing: full (or start_after) "
                "with the schedule, or remove the schedule to load files as their events arrive")
        if self.on_identical_file == "reapply" and job.operation == Operation.INSERT:
            return "source.on_identical_file", (
                "reapply needs update or upsert: an insert job would add the records of a re-sent file twice. "
                "Use operation: upsert with identifiers, or on_identical_file: archive")
        for i, m in enumerate(job.mappings):
            if m.source == "$file_date" and self.match != "date_pattern":
                return f"mappings[{i}].source", \
                    "$file_date needs source.match: date_pattern (e.g. file_name: usage_{yyyy}-{MM}-{dd}.csv)"
        return None
