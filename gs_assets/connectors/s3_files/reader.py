"""The S3 file reader: turn the bytes of a delivered file into plain UTF-8 on local disk, in one
streaming pass, and land it through the engine (`land`).

Decompresses (gzip / bzip2, detected from the name and checked against the bytes), checks and
converts the encoding (UTF-8 with or without BOM, UTF-16 LE/BE, ASCII, ISO-8859-x, Windows-1252),
and writes UTF-8 for DuckDB to read. Memory stays at one chunk whatever the file size. Any
problem is a FileFormatError that says what was wrong and what to change; nothing is written to
the warehouse then.
"""

from __future__ import annotations

import bz2
import codecs
import json
import os
import re
import shutil
import uuid
import tempfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator, Optional

from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.s3_files.discovery import file_match
from gs_assets.engine.pipeline import LandResult, Unit, jobs_reading, land_records
from gs_assets.engine.raw_landing import CSV_BUFFER_BYTES, MAX_LINE_BYTES, OVERSIZED_SUFFIX, FileFormatError, PreparedCsv
from gs_assets.validators.encodings import normalise_encoding
from resources.warehouse import Warehouse

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
COMPRESSIONS = ("auto", "none", "gzip", "bzip2")


@dataclass
class PreparedFile:
    path: str
    compression: str
    encoding: str
    bytes_in: int
    bytes_out: int
    bom: bool


def compression_from_name(name: str) -> str:
    low = name.lower()
    if low.endswith((".gz", ".gzip")):
        return "gzip"
    if low.endswith((".bz2", ".bzip2")):
        return "bzip2"
    return "none"


STEP_BYTES = 1 << 20  # decompressed output per step: memory stays at about one chunk whatever the ratio
RATIO_FLOOR_BYTES = 64 << 20  # the compression-ratio guard applies once this much has been inflated


@dataclass(frozen=True)
class DecompressLimit:
    """How far a compressed file may inflate, and the setting that says so (named in the error)."""
    max_bytes: Optional[int]
    setting: str = "max_decompressed_mb"
    value: float = 0  # the setting's current value, in MB
    max_ratio: Optional[float] = None
    ratio_setting: str = "max_compression_ratio"
    ratio_floor: int = RATIO_FLOOR_BYTES


class DecompressedTooLarge(FileFormatError):
    """A compressed file inflates past its limit (a decompression bomb, or a limit set too low)."""


def _new_decompressor(kind: str):
    return zlib.decompressobj(16 + zlib.MAX_WBITS) if kind == "gzip" else bz2.BZ2Decompressor()


def _inflate(dec, kind: str, data: bytes) -> Iterator[bytes]:
    """Feed `data` to one stream's decompressor, yielding at most STEP_BYTES at a time; stops at the
    stream's end (what follows is in `dec.unused_data`) or when the decompressor needs more input."""
    if kind == "gzip":
        while True:
            out = dec.decompress(data, STEP_BYTES)
            data = dec.unconsumed_tail
            if out:
                yield out
            if dec.eof or (not data and len(out) < STEP_BYTES):
                return
    else:
        while True:
            out = dec.decompress(data, STEP_BYTES)
            data = b""
            if out:
                yield out
            if dec.eof or dec.needs_input:
                return


def _decompress(chunks: Iterator[bytes], kind: str, label: str,
                limit: Optional[DecompressLimit] = None) -> Iterator[bytes]:
    if kind == "none":
        yield from chunks
        return
    dec = _new_decompressor(kind)
    fed = total = 0
    try:
        for piece in _pieces(chunks):  # small pieces: `fed` is what was consumed, for the ratio guard
            fed += len(piece)
            chunk = piece
            while chunk:
                for out in _inflate(dec, kind, chunk):
                    total += len(out)
                    if limit is not None:
                        _check_limit(limit, total, fed, kind, label)
                    yield out
                if dec.eof:  # concatenated members: start the next one on what is left
                    chunk = dec.unused_data
                    if chunk:
                        dec = _new_decompressor(kind)
                else:
                    chunk = b""
        if not dec.eof:
            raise FileFormatError(f"{label}: the {kind} stream ends early (truncated file); upload the complete file again.")
    except (zlib.error, OSError, EOFError) as e:
        raise FileFormatError(f"{label}: the {kind} data is corrupt ({e}); upload the file again.") from e


def _pieces(chunks: Iterator[bytes], size: int = 64 << 10) -> Iterator[bytes]:
    for chunk in chunks:
        if len(chunk) <= size:
            yield chunk
        else:
            view = memoryview(chunk)
            for i in range(0, len(chunk), size):
                yield view[i:i + size]


def _check_limit(limit: DecompressLimit, total: int, fed: int, kind: str, label: str) -> None:
    if limit.max_bytes is not None and total > limit.max_bytes:
        raise DecompressedTooLarge(
            f"{label}: the decompressed size passed the limit: this {kind} file inflates to more than "
            f"{limit.max_bytes / (1 << 20):,.0f} MB (from {fed:,} compressed bytes read so far), the limit set by "
            f"{limit.setting} (now {limit.value:g}). Nothing was loaded; if the file is genuine, raise "
            f"{limit.setting} and load it again.")
    if limit.max_ratio is not None and total > limit.ratio_floor and total > limit.max_ratio * fed:
        raise DecompressedTooLarge(
            f"{label}: the decompressed size passed the limit: this {kind} file had inflated {total / max(fed, 1):,.0f} "
            f"times ({total / (1 << 20):,.0f} MB from {fed:,} compressed bytes), over the compression ratio allowed by "
            f"{limit.ratio_setting} (now {limit.max_ratio:g}) past the first {limit.ratio_floor / (1 << 20):,.0f} MB. "
            f"Nothing was loaded; if the file is genuine, raise {limit.ratio_setting} and load it again.")


def prepare_file(chunks: Iterable[bytes], *, name: str, label: str, encoding: str, compression: str,
                 out: BinaryIO, out_path: str, limit: Optional[DecompressLimit] = None) -> PreparedFile:
    """Stream `chunks` (the file as delivered) into `out` as UTF-8 without BOM."""
    it = iter(chunks)
    first = b""
    for c in it:
        first += c
        if len(first) >= 4:
            break
    bytes_in = [len(first)]

    def counted() -> Iterator[bytes]:
        if first:
            yield first
        for c in it:
            bytes_in[0] += len(c)
            yield c

    by_name = compression_from_name(name)
    by_bytes = "gzip" if first.startswith(GZIP_MAGIC) else ("bzip2" if first.startswith(BZIP2_MAGIC) else "none")
    kind = by_name if compression == "auto" else compression
    if kind != by_bytes and first:
        if kind == "none":
            raise FileFormatError(f"{label}: the file is {by_bytes}-compressed but its name does not say so; "
                                  f"name it .{'gz' if by_bytes == 'gzip' else 'bz2'} or set the job's compression to {by_bytes}.")
        raise FileFormatError(f"{label}: the file should be {kind}-compressed"
                              f"{' (from its name)' if compression == 'auto' else ''} but its bytes are "
                              f"{'not compressed' if by_bytes == 'none' else by_bytes}; fix the file or the job's compression setting.")
    enc = normalise_encoding(encoding)
    data = _decompress(counted(), kind, label, limit)
    return _transcode(data, enc, label, out, out_path, kind, bytes_in)


def _transcode(data: Iterator[bytes], enc: str, label: str, out: BinaryIO, out_path: str, kind: str,
               bytes_in: list[int]) -> PreparedFile:
    decoder = codecs.getincrementaldecoder(enc)(errors="strict")
    offset = 0
    bytes_out = 0
    bom = False
    first = True
    pending = b""
    for chunk in data:
        if first:
            pending += chunk
            if len(pending) < 4:
                continue
            chunk, pending, first = pending, b"", False
            if enc == "utf-8" and chunk.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise FileFormatError(f"{label}: the file starts with a UTF-16 byte order mark but the job's encoding "
                                      f"is UTF-8; set encoding: utf-16.")
            if enc == "utf-8" and chunk.startswith(codecs.BOM_UTF8):
                chunk, bom, offset = chunk[3:], True, 3
            if enc == "utf-16":
                bom = chunk.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
                if not bom:
                    raise FileFormatError(f"{label}: UTF-16 without a byte order mark; set encoding to utf-16-le or utf-16-be.")
        bytes_out += _write(decoder, chunk, enc, label, out, offset)
        offset += len(chunk)
    if first and pending:  # a tiny file: fewer than 4 bytes in all
        bytes_out += _write(decoder, pending, enc, label, out, offset)
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError as e:
        raise FileFormatError(f"{label}: the file ends in the middle of a {enc} character; it is truncated or not {enc}.") from e
    if tail:
        b = tail.encode("utf-8")
        out.write(b)
        bytes_out += len(b)
    return PreparedFile(path=out_path, compression=kind, encoding=enc, bytes_in=bytes_in[0], bytes_out=bytes_out, bom=bom)


def _write(decoder, chunk: bytes, enc: str, label: str, out: BinaryIO, offset: int) -> int:
    try:
        text = decoder.decode(chunk)
    except UnicodeDecodeError as e:
        pos = offset + e.start
        raise FileFormatError(
            f"{label}: not valid {enc} at byte {pos} ({chunk[e.start:e.start + 8]!r}); the file is in another "
            f"encoding. Set the job's encoding (utf-8, utf-16, ascii, iso-8859-1/2/3, windows-1252) to match it."
        ) from e
    if enc == "utf-8":
        out.write(chunk)  # already UTF-8: keep the bytes, the decode was the check
        return len(chunk)
    b = text.encode("utf-8")
    out.write(b)
    return len(b)


class _LongLineWatch:
    """Passes the prepared UTF-8 bytes to `out` and notes every line longer than one record may be
    (MAX_LINE_BYTES). Two C-speed calls per chunk (find / rfind), nothing per byte or per line.

    DuckDB rejects a record over max_line_size with its line, except a record longer than its read
    buffer: that one vanishes and the lines after it shift. Noting long lines here lets
    `prepared_copy` replace each with a short placeholder record that DuckDB rejects at the same
    line, and land_file gives it the real reason."""

    def __init__(self, out: BinaryIO, limit: int = MAX_LINE_BYTES):
        self.out, self.limit = out, limit
        self.pos = self.line_start = 0
        self.long: list[tuple[int, int]] = []  # (start, end including the newline)

    def write(self, b: bytes) -> int:
        self.out.write(b)
        for i in range(0, len(b), self.limit):  # lines inside one piece are then never over the limit
            self._scan(b[i:i + self.limit] if len(b) > self.limit else b)
        return len(b)

    def _scan(self, b: bytes) -> None:
        first = b.find(b"\n")
        if first >= 0:
            self._line_ends(self.pos + first + 1)
            self.line_start = self.pos + b.rfind(b"\n") + 1
        self.pos += len(b)

    def _line_ends(self, end: int) -> None:
        if end - self.line_start > self.limit:
            self.long.append((self.line_start, end))

    def close(self) -> None:
        if self.pos > self.line_start:
            self._line_ends(self.pos)


def _count_in(fh, start: int, end: int, q: bytes) -> int:
    fh.seek(start)
    n, left = 0, end - start
    while left > 0:
        b = fh.read(min(8 << 20, left))
        if not b:
            break
        n += b.count(q)
        left -= len(b)
    return n


def _replace_long_lines(path: str, long: list[tuple[int, int]], src, label: str) -> None:
    """Rewrite the prepared file with each over-long record replaced by a placeholder record that
    DuckDB rejects (one field more than the header has), and note the records beside it for land_file.
    Quote counts (read again from the file, only here) tell whether a long line is a whole record
    (an even number of quotes before it and in it) or part of a quoted value spanning lines."""
    token = uuid.uuid4().hex
    with open(path, "rb") as fh:
        header_line = fh.readline()
    sep, q = src.delimiter.encode(), src.quote.encode()
    fields = header_line.count(sep) + 2  # more than the header's fields, whatever its quoting
    records = []
    tmp = path + ".rewrite"
    with open(path, "rb") as fh, open(tmp, "wb") as out:
        done = quotes_before = counted = 0  # copied up to `done`, quotes counted up to `counted`
        for k, (start, end) in enumerate(long):
            mib = (end - start) / (1 << 20)
            if start == 0:
                raise FileFormatError(f"{label}: the header line is {mib:,.0f} MiB, over the "
                                      f"{MAX_LINE_BYTES >> 20} MiB limit of one record; check the file's delimiter and format.")
            quotes_before += _count_in(fh, counted, start, q)
            quotes = _count_in(fh, start, end, q)
            counted = end
            whole = not (quotes_before % 2 or quotes % 2)
            quotes_before += quotes
            if not whole and end - start < CSV_BUFFER_BYTES // 2:
                continue  # part of a quoted value spanning lines, short enough for DuckDB to reject its record itself
            if not whole:
                raise FileFormatError(
                    f"{label}: a line at byte {start:,} is {mib:,.0f} MiB, over the {MAX_LINE_BYTES >> 20} MiB limit of "
                    f"one record, inside a quoted value that spans lines, so the records around it cannot be told "
                    f"apart; shorten that value or fix its quotes.")
            _copy_range(fh, out, done, start)
            fh.seek(start)
            head = fh.read(1000).decode("utf-8", errors="replace")
            marker = f"gsdp-oversized-{token}-{k}"
            out.write(marker.encode() + (sep + b"x") * (fields - 1) + (b"\r\n" if _ends_crlf(fh, end) else b"\n"))
            records.append({"marker": marker, "bytes": end - start, "head": head})
            done = end
        _copy_range(fh, out, done, None)
    os.replace(tmp, path)
    with open(path + OVERSIZED_SUFFIX, "w", encoding="utf-8") as fh:
        json.dump({"records": records}, fh)


def _ends_crlf(fh, end: int) -> bool:
    fh.seek(max(end - 2, 0))
    return fh.read(2) == b"\r\n"


def _copy_range(fh, out, start: int, end: Optional[int]) -> None:
    fh.seek(start)
    left = None if end is None else end - start
    while left is None or left > 0:
        b = fh.read(8 << 20 if left is None else min(8 << 20, left))
        if not b:
            return
        out.write(b)
        if left is not None:
            left -= len(b)


_SCRATCH_NAME = re.compile(r"^gsdp-[a-z]+-(\d+)-")


def scratch_root() -> str:
    """The one folder that holds every temp folder of this user's gsdp processes."""
    return os.path.join(tempfile.gettempdir(), f"gsdp-{os.getuid()}")


def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory:
    """A temp folder `<scratch_root>/<prefix><pid>-…`, removed when its block ends. A process killed
    with -9 cannot remove its own, so leftovers of dead processes are removed first (never those
    of a live process: concurrent runs share the root)."""
    root = scratch_root()
    os.makedirs(root, mode=0o700, exist_ok=True)
    st = os.lstat(root)
    if not os.path.isdir(root) or os.path.islink(root) or st.st_uid != os.getuid():
        return tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-")  # not ours: no sweeping there
    remove_leftovers(root)
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-", dir=root)


def remove_leftovers(root: Optional[str] = None) -> list[str]:
    """Remove the temp folders under `root` whose owning process is gone; returns their names."""
    root = root or scratch_root()
    removed = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        m = _SCRATCH_NAME.match(name)
        if m and not _alive(int(m.group(1))):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def prepared_copy(chunks: Iterable[bytes], *, name: str, label: str, src,
                  limit: Optional[DecompressLimit] = None) -> Iterator[str]:
    """The file, decompressed and converted to UTF-8 under the source's settings, as a temp file
    that is removed when the block ends (raises FileFormatError when it cannot be read). A record
    over the record-size limit is replaced by a placeholder that landing rejects at its line."""
    with scratch_dir("gsdp-prep-") as tmp:
        path = os.path.join(tmp, "prepared.csv")
        with open(path, "wb") as out:
            watch = _LongLineWatch(out)
            prepare_file(chunks, name=name, label=label, encoding=src.encoding, compression=src.compression,
                         out=watch, out_path=path, limit=limit)
            watch.close()
        if watch.long:
            _replace_long_lines(path, watch.long, src, label)
        yield path


def file_chunks(path: str, size: int = 8 << 20) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while True:
            b = fh.read(size)
            if not b:
                return
            yield b


def land(warehouse: Warehouse, cfg: PlatformConfig, *, connection: str, source_object: str,
         chunks: Iterable[bytes], name: str, source_file: str, etag: Optional[str],
         size_bytes: Optional[int] = None, run_id: str = "", force: bool = False, log=None) -> LandResult:
    """Land a file in its raw table unless this exact version (key + ETag) already landed.

    `chunks` are the file's bytes as delivered (compressed or not, any supported encoding); they
    are streamed through prepared_copy into a UTF-8 temp file, so memory does not grow with file size.
    """
    jobs = jobs_reading(cfg, connection, source_object)
    if not jobs:
        raise ValueError(f"no job reads source object {connection}/{source_object}")
    src = jobs[0].source
    fm = file_match(src, name)

    @contextmanager
    def records() -> Iterator[PreparedCsv]:
        with prepared_copy(chunks, name=name, label=source_file, src=src,
                           limit=decompress_limit(cfg, connection, source_file)) as local_path:
            yield PreparedCsv(local_path, src)

    return land_records(warehouse, cfg, connection=connection, source_object=source_object,
                        unit=Unit(source_file, etag, size_bytes, fm.file_name, fm.file_date), records=records,
                        run_id=run_id, force=force, log=log)


def decompress_limit(cfg: PlatformConfig, connection: str, source_file: str) -> DecompressLimit:
    """How far a compressed file may inflate: the connection's limits, and for a Bulk API upload
    (a key under the Bulk API's landing prefix) the Bulk API's limit when it is lower."""
    conn = cfg.connections[connection]
    limit = DecompressLimit(max_bytes=int(conn.max_decompressed_mb * (1 << 20)),
                            setting=f"connections.{connection}.max_decompressed_mb", value=conn.max_decompressed_mb,
                            max_ratio=conn.max_compression_ratio,
                            ratio_setting=f"connections.{connection}.max_compression_ratio")
    bulk = cfg.bulk_api
    key = source_file.removeprefix("s3://").partition("/")[2] if source_file.startswith("s3://") else ""
    if key and bulk.landing_prefix and key.startswith(bulk.landing_prefix) \
            and bulk.decompressed_limit_mb < conn.max_decompressed_mb:
        mb = bulk.decompressed_limit_mb
        limit = DecompressLimit(max_bytes=int(mb * (1 << 20)), value=mb, max_ratio=limit.max_ratio,
                                ratio_setting=limit.ratio_setting,
                                setting="bulk_api.max_decompressed_mb")
    return limit
