"""Streaming preparation of delivered bytes: decompression checks and encoding conversion."""

import bz2
import codecs
import gzip
import io

import pytest

from gs_assets.connectors.s3_files.reader import prepare_file
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


# --- decompression bombs: bounded output per step, a limit on the inflated size ---------------

def bomb(kind: str, inflated: int, line: bytes = b"0" * 1023 + b"\n") -> list[bytes]:
    """A compressed file that inflates to `inflated` bytes, built by streaming (the test never holds
    the inflated text): compressed chunks as they would come from S3."""
    import zlib
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS) if kind == "gzip" else bz2.BZ2Compressor(9)
    parts, done = [comp.compress(b"Id,Name\n")], 0
    block = line * ((1 << 20) // len(line))
    while done < inflated:
        parts.append(comp.compress(block))
        done += len(block)
    parts.append(comp.flush())
    data = b"".join(parts)
    return [data[i:i + (8 << 20)] for i in range(0, len(data), 8 << 20)]


class _CountingOut(io.RawIOBase):
    """A sink that keeps no data, only the size written and the largest single write."""

    def __init__(self):
        self.size, self.largest = 0, 0

    def writable(self):
        return True

    def write(self, b):
        self.size += len(b)
        self.largest = max(self.largest, len(b))
        return len(b)


@pytest.mark.parametrize("kind,name", [("gzip", "bomb.csv.gz"), ("bzip2", "bomb.csv.bz2")])
def test_a_decompression_bomb_stops_at_the_limit_with_memory_bounded(kind, name):
    import tracemalloc
    from gs_assets.connectors.s3_files.reader import DecompressLimit
    chunks = bomb(kind, 64 << 20)  # 64 MiB of text in a few hundred KB (gzip) / a few KB (bzip2)
    assert sum(map(len, chunks)) < 1 << 20
    out = _CountingOut()
    limit = DecompressLimit(max_bytes=20 << 20, setting="connections.files.max_decompressed_mb", value=20)
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError) as e:
            prepare_file(chunks, name=name, label="s3://b/bomb", encoding="utf-8", compression="auto",
                         out=out, out_path="x", limit=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(e.value)
    assert "decompressed size passed the limit" in msg and "connections.files.max_decompressed_mb" in msg and "20" in msg
    assert out.size <= (20 << 20) + (1 << 20), "stops at the limit: never writes the whole inflated file"
    assert out.largest <= 1 << 20, "decompressed in bounded steps"
    assert peak < 16 << 20, f"memory stays at about one chunk, peak {peak:,} bytes"


def test_the_ratio_guard_applies_past_its_floor_only():
    from gs_assets.connectors.s3_files.reader import DecompressLimit
    limit = DecompressLimit(max_bytes=1 << 40, max_ratio=50, ratio_floor=2 << 20,
                            setting="connections.files.max_decompressed_mb", value=1 << 20,
                            ratio_setting="connections.files.max_compression_ratio")
    small = bomb("gzip", 1 << 20)  # 1 MiB at ~1000:1: under the floor, passes
    out = _CountingOut()
    prepare_file(small, name="ok.csv.gz", label="s3://b/ok", encoding="utf-8", compression="auto", out=out,
                 out_path="x", limit=limit)
    assert out.size > 1 << 20
    with pytest.raises(FileFormatError, match=r"compression ratio.*connections\.files\.max_compression_ratio.*50"):
        prepare_file(bomb("gzip", 16 << 20), name="b.csv.gz", label="s3://b/b", encoding="utf-8",
                     compression="auto", out=_CountingOut(), out_path="x", limit=limit)
    # ordinary CSV text (a few times smaller compressed), past the floor too, passes the same guard
    import gzip as gz
    text = b"Id,Name\n" + b"".join(b"A%d,Company number %d in town %d\n" % (i, i * 7919 % 10007, i % 97) for i in range(100000))
    out = _CountingOut()
    prepare_file([gz.compress(text)], name="t.csv.gz", label="s3://b/t", encoding="utf-8", compression="auto",
                 out=out, out_path="x", limit=limit)
    assert out.size == len(text) > 2 << 20


def test_temp_folders_left_by_a_killed_process_are_removed_by_the_next_landing(harness, tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    import tempfile

    from tests.config_builder import config_yaml, file_job
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        root = os.path.join(tempfile.gettempdir(), f"gsdp-{os.getuid()}")  # where every gsdp temp folder lives
        os.makedirs(root)
        leftovers = {f"gsdp-prep-{dead.pid}-x1": True, f"gsdp-err-{dead.pid}-x2": True,
                     f"gsdp-prep-{live.pid}-x3": False, "someone-elses": False}
        for name in leftovers:
            os.makedirs(os.path.join(root, name, "sub"))
            with open(os.path.join(root, name, "sub", "prepared.csv"), "wb") as fh:
                fh.write(b"x" * 1000)
        h = harness(config_yaml("test-bucket", {"companies": file_job(
            "companies", "company", ["external_id"], {"Id": "external_id", "Name": "name"})}))
        landed, run = h.load("companies", "Id,Name\nA1,One\n")
        assert landed.status == "landed" and run.inserted == 1
        assert sorted(os.listdir(root)) == sorted(n for n, gone in leftovers.items() if not gone)
    finally:
        live.kill()
        live.wait()


def test_bulk_uploads_land_under_the_bulk_api_limit_and_other_files_under_their_connections(tmp_path):
    from gs_assets.config.loader import load_platform_config
    from gs_assets.connectors.s3_files.reader import decompress_limit
    from tests.config_builder import config_yaml, file_job
    from tests.conftest import write_config
    cfg = load_platform_config(write_config(tmp_path / "config", config_yaml(
        "test-bucket", {"companies": file_job("companies", "company", ["external_id"], {"Id": "external_id", "Name": "name"})},
        connection_options={"max_decompressed_mb": 500, "max_compression_ratio": 300}, bulk_api={"max_upload_mb": 8})))
    s3 = decompress_limit(cfg, "files", "s3://test-bucket/in/companies.csv.gz")
    assert (s3.max_bytes, s3.max_ratio, s3.setting) == (500 << 20, 300, "connections.files.max_decompressed_mb")
    bulk = decompress_limit(cfg, "files", "s3://test-bucket/bulk/companies/2026/12/01/r1.csv.gz")
    assert bulk.max_bytes == 80 << 20 and bulk.setting.startswith("bulk_api.max_decompressed_mb") and bulk.max_ratio == 300
    defaults = load_platform_config(write_config(tmp_path / "c2", """
connections:
  files: {type: s3, bucket: test-bucket}
"""))
    assert (defaults.connections["files"].max_decompressed_mb, defaults.connections["files"].max_compression_ratio,
            defaults.bulk_api.decompressed_limit_mb) == (20480, 200, 800)


def test_the_ratio_guard_counts_compressed_bytes_as_they_are_consumed_not_as_they_arrive():
    from gs_assets.connectors.s3_files.reader import DecompressLimit
    chunks = [b"".join(bomb("gzip", 256 << 20))]  # one big chunk, as S3 delivers 8 MiB at a time
    assert len(chunks[0]) > 200_000
    limit = DecompressLimit(max_bytes=1 << 40, max_ratio=50, ratio_floor=2 << 20, ratio_setting="r")
    out = _CountingOut()
    with pytest.raises(FileFormatError, match="compression ratio"):
        prepare_file(chunks, name="b.csv.gz", label="s3://b/b", encoding="utf-8", compression="auto", out=out,
                     out_path="x", limit=limit)
    assert out.size < 8 << 20, f"stopped soon after the floor, not at 50 x the whole chunk ({out.size:,} bytes written)"
