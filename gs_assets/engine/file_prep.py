"""Turn the bytes of a delivered file into plain UTF-8 on local disk, in one streaming pass.

Decompresses (gzip / bzip2, detected from the name and checked against the bytes), checks and
converts the encoding (UTF-8 with or without BOM, UTF-16 LE/BE, ASCII, ISO-8859-x, Windows-1252),
and writes UTF-8 for DuckDB to read. Memory stays at one chunk whatever the file size. Any
problem is a FileFormatError that says what was wrong and what to change; nothing is written to
the warehouse then.
"""

from __future__ import annotations

import bz2
import codecs
import os
import tempfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

from gs_assets.engine.raw_landing import FileFormatError

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
ENCODINGS = {
    "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8",
    "utf-16": "utf-16", "utf-16-le": "utf-16-le", "utf-16le": "utf-16-le", "utf-16-be": "utf-16-be", "utf-16be": "utf-16-be",
    "ascii": "ascii", "us-ascii": "ascii",
    "iso-8859-1": "iso-8859-1", "latin-1": "iso-8859-1", "latin1": "iso-8859-1",
    "iso-8859-2": "iso-8859-2", "latin-2": "iso-8859-2", "iso-8859-3": "iso-8859-3", "latin-3": "iso-8859-3",
    "windows-1252": "cp1252", "cp1252": "cp1252",
}
COMPRESSIONS = ("auto", "none", "gzip", "bzip2")


def normalise_encoding(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    if key not in ENCODINGS:
        raise ValueError(f"encoding {name!r} is not supported; use one of {sorted(set(ENCODINGS))}")
    return ENCODINGS[key]


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


def _decompress(chunks: Iterator[bytes], kind: str, label: str) -> Iterator[bytes]:
    if kind == "none":
        yield from chunks
        return
    dec = zlib.decompressobj(16 + zlib.MAX_WBITS) if kind == "gzip" else bz2.BZ2Decompressor()
    try:
        for chunk in chunks:
            while chunk:
                out = dec.decompress(chunk)
                if out:
                    yield out
                if dec.eof:  # concatenated members: start the next one on what is left
                    chunk = dec.unused_data
                    if chunk:
                        dec = zlib.decompressobj(16 + zlib.MAX_WBITS) if kind == "gzip" else bz2.BZ2Decompressor()
                else:
                    chunk = b""
        if not dec.eof:
            raise FileFormatError(f"{label}: the {kind} stream ends early (truncated file); upload the complete file again.")
    except (zlib.error, OSError) as e:
        raise FileFormatError(f"{label}: the {kind} data is corrupt ({e}); upload the file again.") from e


def prepare_file(chunks: Iterable[bytes], *, name: str, label: str, encoding: str, compression: str,
                 out: BinaryIO, out_path: str) -> PreparedFile:
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
    data = _decompress(counted(), kind, label)
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


@contextmanager
def prepared_copy(chunks: Iterable[bytes], *, name: str, label: str, src) -> Iterator[str]:
    """The file, decompressed and converted to UTF-8 under the source's settings, as a temp file
    that is removed when the block ends (raises FileFormatError when it cannot be read)."""
    with tempfile.TemporaryDirectory(prefix="gsdp-prep-") as tmp:
        path = os.path.join(tmp, "prepared.csv")
        with open(path, "wb") as out:
            prepare_file(chunks, name=name, label=label, encoding=src.encoding, compression=src.compression,
                         out=out, out_path=path)
        yield path


def file_chunks(path: str, size: int = 8 << 20) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while True:
            b = fh.read(size)
            if not b:
                return
            yield b
