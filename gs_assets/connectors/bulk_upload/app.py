"""The Bulk API service (FastAPI): upload a CSV into a job over HTTP, then read its status and
error file.

    POST /v1.0/admin/connector/job/bulkimport                      multipart: file, jobId
    GET  /v1.0/admin/connector/job/bulkimport/status/{statusId}
    GET  /v1.0/admin/connector/job/bulkimport/status/{statusId}/errors
    GET  /openapi.json, /docs

Every call needs the `accessKey` header (`loginName` is recorded for audit: control characters
removed, at most 254 characters). Every error answer, including FastAPI's own (validation,
unknown path, a malformed multipart body), is `{"result": false, "errorDesc": "..."}`. An upload is checked
in this order, and nothing is stored unless every check passes: the key (401, no hint of which
jobs exist), the key's call budget (429 with Retry-After), the declared size (411 without a
Content-Length, 413 above the limit, before the body is read), the job (400 unknown or not
accepting uploads, 403 not allowed for this key), the file part's content type (415), its real
size while it is copied to disk (413), its header against the columns landing needs: those of
every job reading the job's source object (400 naming missing columns with the job that reads
each, and unexpected columns). Then the file goes to the job's bucket under a name the server chooses
(`<landing_prefix><job>/<date>/<requestId>.csv[.gz]`; the client's file name is only recorded),
and the request is queued; the Dagster sensor `bulk_uploads_sensor` loads it through the job's
normal path. The upload is streamed to disk and from disk to S3, never held in memory.
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from gs_assets.connectors.bulk_upload import access_keys as ak
from gs_assets.connectors.bulk_upload import requests_store as rs
import gs_assets.connectors.registry  # noqa: F401 (the connector kinds register their config models)
from gs_assets.config.loader import PlatformConfig, load_platform_config
from gs_assets.connectors.s3_files.reader import DecompressedTooLarge, DecompressLimit, _decompress, file_chunks
from gs_assets.validators.encodings import normalise_encoding
from gs_assets.engine.pipeline import source_columns
from gs_assets.engine.raw_landing import FileFormatError, read_header

BASE = "/v1.0/admin/connector/job/bulkimport"
MULTIPART_OVERHEAD = 64 << 10  # form fields and part headers on top of the file itself
LOGIN_NAME_MAX = 254  # the longest e-mail address; loginName is only recorded for audit


def _error(status: int, message: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"result": False, "errorDesc": message}, headers=headers)


def _inflates_past_limit(path: str, limits) -> Optional[str]:
    """Why a gzip upload is refused for its inflated size (stream-decompressed in bounded steps,
    nothing kept), or None. Other damage is left to the header check and to landing."""
    mb = limits.decompressed_limit_mb
    limit = DecompressLimit(max_bytes=int(mb * (1 << 20)), value=mb, setting="bulk_api.max_decompressed_mb")
    try:
        for _ in _decompress(file_chunks(path, 1 << 20), "gzip", "upload", limit):
            pass
    except DecompressedTooLarge:
        return (f"the gzip file inflates to more than {mb:g} MB, the limit for an upload's decompressed size "
                f"(bulk_api.max_decompressed_mb); nothing was stored. Split the file or send it in smaller parts")
    except FileFormatError:
        return None
    return None


def clean_login_name(value: Optional[str]) -> Optional[str]:
    """loginName as stored: control and format characters (escape sequences, bidi overrides)
    removed, surrounding space trimmed, at most LOGIN_NAME_MAX characters; None when empty."""
    if value is None:
        return None
    text = "".join(ch for ch in value if unicodedata.category(ch) not in ("Cc", "Cf")).strip()
    return text[:LOGIN_NAME_MAX] or None


def _install_error_handlers(app: FastAPI) -> None:
    """Every error the service answers has the API's shape {"result": false, "errorDesc": ...},
    also those FastAPI and Starlette raise themselves (validation, routing, multipart parsing)."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        desc = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and desc == "Not Found":
            desc = f"no such endpoint; see /docs for the API ({BASE})"
        elif exc.status_code == 405:
            desc = "method not allowed on this endpoint; see /docs for the API"
        return _error(exc.status_code, desc, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        return _error(422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception):  # Starlette re-raises it after, so the server logs the trace
        return _error(500, "internal error of the Bulk API (logged on the server); try again later, and tell the "
                           "platform operator if it persists")


def create_app(cfg: Optional[PlatformConfig] = None, s3_client=None, db_path: Optional[Path] = None) -> FastAPI:
    cfg = cfg or load_platform_config()
    limits = cfg.bulk_api
    if s3_client is None:  # at start-up, not in the first request
        from gs_assets.connectors.s3_files.resource import s3_client_from_env
        s3_client = s3_client_from_env()
    app = FastAPI(title="gs-data-platform Bulk API", version="1.0",
                  description="Upload CSV files into jobs; read their status and error files. "
                              "Send your access key in the `accessKey` header.")
    _install_error_handlers(app)

    def client():
        return s3_client

    def db():
        return rs.ensure(ak.connect(db_path))

    def authorised(con, access_key: Optional[str]):
        return ak.verify(con, access_key)

    @app.post(BASE, summary="Upload a CSV (optionally gzip) into a job",
              responses={401: {"description": "missing or wrong access key"}, 403: {"description": "key not allowed for this job"},
                         400: {"description": "unknown job, or header does not match the job"},
                         411: {"description": "no Content-Length"}, 413: {"description": "file too large"},
                         415: {"description": "content type not accepted"}, 429: {"description": "call limit reached"}})
    async def bulk_import(request: Request, accessKey: Optional[str] = Header(default=None),  # noqa: N803
                          loginName: Optional[str] = Header(default=None)):  # noqa: N803
        con = db()
        try:
            key = authorised(con, accessKey)
            if key is None:
                return _error(401, "missing or invalid access key (send it in the accessKey header)")
            wait = rs.count_call(con, key.key_id, limits.calls_per_hour, limits.calls_per_day)
            if wait is not None:
                return _error(429, f"call limit reached ({limits.calls_per_hour} per hour, {limits.calls_per_day} per day "
                                   f"for this key); retry in {wait} s", headers={"Retry-After": str(wait)})
            max_bytes = int(limits.max_upload_mb * 1024 * 1024)
            length = request.headers.get("content-length")
            if length is None:
                return _error(411, "send a Content-Length header (uploads are limited to "
                                   f"{limits.max_upload_mb:g} MB)")
            if int(length) > max_bytes + MULTIPART_OVERHEAD:
                return _error(413, f"upload of {int(length):,} bytes is above the limit of {limits.max_upload_mb:g} MB; "
                                   f"nothing was stored")
            try:
                form = await request.form(max_files=1, max_fields=10)
            except (MultiPartException, StarletteHTTPException) as e:
                detail = getattr(e, "message", None) or getattr(e, "detail", None) or str(e)
                return _error(400, f"the request is not a form this API accepts ({detail}): send multipart/form-data "
                                   f"with one file part named 'file' and a jobId field; nothing was stored")
            try:
                return await _accept(con, key, loginName, form, max_bytes)
            finally:
                await form.close()
        finally:
            con.close()

    async def _accept(con, key, login_name, form, max_bytes: int):
        job_id = form.get("jobId")
        upload = form.get("file")
        if not isinstance(job_id, str) or not job_id:
            return _error(400, "the form needs a jobId field")
        if not isinstance(upload, StarletteUploadFile):
            return _error(400, "the form needs a file field holding the CSV")
        job = cfg.jobs.get(job_id)
        if job is None or not job.bulk_upload:
            return _error(400, f"job {job_id!r} does not exist or does not accept uploads")
        if not key.allows(job_id):
            return _error(403, f"this access key may not upload to job {job_id!r}")
        ctype = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
        if ctype not in limits.content_types:
            return _error(415, f"content type {ctype!r} is not accepted; send one of {', '.join(limits.content_types)}")
        with tempfile.TemporaryDirectory(prefix="gsdp-bulk-") as tmp:
            path = os.path.join(tmp, "upload")
            size = 0
            with open(path, "wb") as out:
                while chunk := await upload.read(1 << 20):
                    size += len(chunk)
                    if size > max_bytes:
                        return _error(413, f"file is above the limit of {limits.max_upload_mb:g} MB; nothing was stored")
                    out.write(chunk)
            with open(path, "rb") as fh:
                head = fh.read(1 << 20)
            gz = head[:2] == b"\x1f\x8b"
            if gz and (too_large := await run_in_threadpool(_inflates_past_limit, path, limits)):
                return _error(413, too_large)
            problem = _header_problem(job, head, gz, tmp)
            if problem:
                return _error(400, problem)
            request_id, status_id = rs.new_ids()
            day = datetime.now(timezone.utc).strftime("%Y/%m/%d")
            bucket = cfg.connections[job.connection].bucket
            s3_key = f"{limits.landing_prefix}{job.name}/{day}/{request_id}.csv" + (".gz" if gz else "")
            client().upload_file(path, bucket, s3_key, ExtraArgs={"Metadata": {"gsdp-request-id": request_id}})
            etag = client().head_object(Bucket=bucket, Key=s3_key).get("ETag", "").strip('"')
        rs.record(con, rs.BulkRequest(
            request_id=request_id, status_id=status_id, job=job.name, key_id=key.key_id,
            login_name=clean_login_name(login_name),
            client_file_name=os.path.basename(str(getattr(upload, "filename", "") or ""))[:255] or None,
            bucket=bucket, s3_key=s3_key, size_bytes=size, etag=etag, status="queued",
            received_at=datetime.now(timezone.utc).isoformat(timespec="seconds")))
        return {"result": True, "requestId": request_id, "statusId": status_id}

    def _header_problem(job, head: bytes, gz: bool, tmp: str) -> Optional[str]:
        if gz:
            try:
                head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 1 << 20)
            except zlib.error as e:
                return f"the file looks gzip-compressed but cannot be read ({e})"
        text = head.decode(normalise_encoding(job.source.encoding), errors="replace")
        sample = os.path.join(tmp, "head.csv")
        Path(sample).write_text(text, encoding="utf-8")
        try:
            header = read_header(sample, job.source, "upload")
        except FileFormatError as e:
            return str(e).replace("upload: ", "", 1)
        # What landing checks: the columns of every job reading this source object (a file lands
        # once for all of them), each with the jobs that read it.
        needs = source_columns(cfg, job.connection, job.source.object)
        missing = [c for c in needs if c not in header]
        unexpected = [c for c in header if c not in needs]
        if missing or unexpected:
            parts = []
            if missing:
                by_job = {}
                for c in missing:
                    for j in needs[c]:
                        by_job.setdefault(j, []).append(c)
                parts.append(f"missing column(s) {missing} (" + "; ".join(
                    f"job {j!r} reads {cols}" for j, cols in by_job.items()) + ")")
            if unexpected:
                parts.append(f"unexpected column(s) {unexpected}")
            readers = sorted({j for js in needs.values() for j in js})
            who = f"job {job.name!r}" if readers == [job.name] else \
                f"the jobs reading source object {job.source.object!r} ({', '.join(readers)})"
            return (f"header does not match job {job.name!r}: {'; '.join(parts)}. The file needs exactly the columns "
                    f"{who} read: {list(needs)} (names are case-sensitive)")
        return None

    def _status_for(con, access_key, status_id):
        key = authorised(con, access_key)
        if key is None:
            return None, _error(401, "missing or invalid access key (send it in the accessKey header)")
        req = rs.get(con, status_id)
        if req is None or not key.allows(req.job):
            return None, _error(404, f"no upload with statusId {status_id!r} for this key")
        return req, None

    @app.get(BASE + "/status/{statusId}", summary="Status of an upload: queued, running, Success, Partial Success or Failed")
    def status(statusId: str, request: Request, accessKey: Optional[str] = Header(default=None)):  # noqa: N803
        con = db()
        try:
            req, err = _status_for(con, accessKey, statusId)
            return err or rs.public_status(req, str(request.base_url).rstrip("/"))
        finally:
            con.close()

    @app.get(BASE + "/status/{statusId}/errors", summary="The error file of an upload (CSV: line, original columns, reasons)")
    def errors(statusId: str, accessKey: Optional[str] = Header(default=None)):  # noqa: N803
        con = db()
        try:
            req, err = _status_for(con, accessKey, statusId)
        finally:
            con.close()
        if err:
            return err
        if not req.error_file:
            return _error(404, f"upload {statusId} has no error file ({req.status})")
        bucket, _, key = req.error_file.removeprefix("s3://").partition("/")
        try:
            body = client().get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as e:  # noqa: BLE001 - only "not there" is the client's answer; the rest is a bug
            code = str((getattr(e, "response", None) or {}).get("Error", {}).get("Code", ""))
            if code not in ("NoSuchKey", "404", "NoSuchBucket"):
                raise
            return _error(410, f"the error file of upload {statusId} is no longer in storage (it was removed "
                               f"after the run, e.g. by a retention rule). The rejected rows are still kept in the "
                               f"warehouse: ask the platform operator for them (`gsdp rejects {req.job_run_id}`).")
        return StreamingResponse(body.iter_chunks(1 << 16), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{req.request_id}.errors.csv"'})

    return app


def main() -> None:
    """`./dev bulk-api`: serve on GSDP_BULK_HOST:GSDP_BULK_PORT (default 127.0.0.1:8080)."""
    import uvicorn
    from gs_assets.settings import Settings
    s = Settings.from_env()
    uvicorn.run(create_app(), host=s.bulk_host, port=s.bulk_port, log_level="info")


if __name__ == "__main__":
    main()
