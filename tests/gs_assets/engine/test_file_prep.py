"""Streaming preparation of delivered bytes: decompression checks and encoding conversion."""

import bz2
import codecs
import gzip
import io

import pytest

from gs_assets.engine.file_prep import prepare_file
from gs_assets.engine.raw_landing import FileFormatError

TEXT = "Id,Name\nA1,Zoë Ærø 東京\n"


def prep(data: bytes, name="f.csv", encoding="utf-8", compression="auto", chunk=3):
    out = io.BytesIO()
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)]  # tiny chunks split characters
    info = prepare_file(chunks, name=name, label="s3://b/f", encoding=encoding, compression=compression,
                        out=out, out_path="x")
    return out.getvalue().decode("utf-8"), info


@pytest.mark.parametrize("data,encoding", [
    (TEXT.encode("utf-8"), "utf-8"),
    (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8"),
    (TEXT.encode("utf-16"), "utf-16"),
    (TEXT.encode("utf-16-le"), "utf-16-le"),
    (TEXT.encode("utf-16-be"), "utf-16-be"),
])
def test_unicode_encodings_become_utf8(data, encoding):
    text, info = prep(data, encoding=encoding)
    assert text == TEXT


@pytest.mark.parametrize("encoding,sample", [("iso-8859-1", "Zoë Müller"), ("iso-8859-2", "Łódź Šťastný"),
                                             ("iso-8859-3", "Ħal Ġħargħur"), ("ascii", "plain"),
                                             ("windows-1252", "€ price")])
def test_single_byte_encodings_become_utf8(encoding, sample):
    text, _ = prep(f"Id,Name\nA1,{sample}\n".encode(encoding), encoding=encoding)
    assert text == f"Id,Name\nA1,{sample}\n"


def test_wrong_declared_encoding_names_the_byte_and_the_fix():
    with pytest.raises(FileFormatError, match=r"not valid utf-8 at byte 13 .*Set the job's encoding"):
        prep("Id,Name\nA1,Zoë\n".encode("iso-8859-1"))
    with pytest.raises(FileFormatError, match="UTF-16 byte order mark but the job's encoding is UTF-8"):
        prep(TEXT.encode("utf-16"))
    with pytest.raises(FileFormatError, match="UTF-16 without a byte order mark"):
        prep(TEXT.encode("utf-16-le"), encoding="utf-16")


def test_gzip_and_bzip2_are_detected_from_the_name_and_checked_against_the_bytes():
    assert prep(gzip.compress(TEXT.encode()), name="f.csv.gz")[0] == TEXT
    assert prep(gzip.compress(b"Id,Name\n") + gzip.compress("A1,Zoë Ærø 東京\n".encode()), name="f.csv.gz")[0] == TEXT
    assert prep(bz2.compress(TEXT.encode()), name="f.csv.bz2")[0] == TEXT
    with pytest.raises(FileFormatError, match="gzip-compressed but its name does not say so"):
        prep(gzip.compress(TEXT.encode()), name="f.csv")
    with pytest.raises(FileFormatError, match="should be gzip-compressed \\(from its name\\) but its bytes are not compressed"):
        prep(TEXT.encode(), name="f.csv.gz")
    with pytest.raises(FileFormatError, match="truncated"):
        prep(gzip.compress(TEXT.encode() * 50)[:-10], name="f.csv.gz")
    with pytest.raises(FileFormatError, match="truncated"):
        prep(bz2.compress(TEXT.encode() * 50)[:-10], name="f.csv.bz2")


def test_compression_can_be_set_explicitly():
    assert prep(gzip.compress(TEXT.encode()), name="export.dat", compression="gzip")[0] == TEXT
