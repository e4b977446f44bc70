"""Compressed exports (gzip, bzip2, xz, zstd, a zip of one file) read as the file they hold, a zip of several files by
`member`; archives that cannot be read are one-line errors naming the archive."""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import io
import lzma
import re
import warnings
import zipfile
import zlib
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from conftest import minimal_config, zipped
from pipeline import compressed
from pipeline.config import config_from_dict
from pipeline.errors import ConfigError, IngestError
from pipeline.run import ingest as ingest_runner

TRANSACTIONS = (
    "order_id,customer_id,ordered_at,amount\n"
    "o1,c1,2024-01-01 10:00:00,10.5\n"
    "o1,c1,2024-01-01 10:00:00,2\n"
    "o2,c2,2024-01-03 09:30:00,-4\n"
    "o3,c2,not a time,5\n"
    "o4,c1,2024-01-07 09:00:00,3\n"
    "o5,c2,2024-01-09 09:00:00,8\n"
    "o6,c3,2024-01-10 09:00:00,1\n"
)
JSON_LINES = (
    '{"order_id": "o1", "customer_id": "c1", "ordered_at": "2024-01-01 10:00:00", "amount": 10.5}\n'
    '{"order_id": "o2", "customer_id": "c2", "ordered_at": "2024-01-03 09:30:00", "amount": -4}\n'
)


PACKED = {
    "t.csv.gz": gzip.compress,
    "t.csv.bz2": bz2.compress,
    "t.csv.xz": lzma.compress,
    "t.csv.zst": lambda data: pa.Codec("zstd").compress(data, asbytes=True),
    "t.zip": lambda data: zipped({"export/": b"", "t.csv": data, ".DS_Store": b"\0", "__MACOSX/._t.csv": b"\0"}),
}


def config_for(folder: Path, sources: dict, **sections: dict):
    raw = minimal_config(snapshots={"dates": ["2024-02-01"]}, paths={"data_dir": "out", "models_dir": "models"},
                         sources=sources, **sections)
    return config_from_dict(raw, base_dir=folder)


def ingest(folder: Path, sources: dict, **sections: dict) -> dict:
    return ingest_runner.run(config_for(folder, sources, **sections), quiet=True)


def outputs(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.read_parquet(folder / "out" / "validated" / "transactions.parquet"),
            pd.read_parquet(folder / "out" / "quarantine" / "transactions.parquet"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("plain")
    (folder / "t.csv").write_text(TRANSACTIONS)
    ingest(folder, {"transactions": {"path": "t.csv"}})
    return outputs(folder)


@pytest.mark.parametrize("name", PACKED)
def test_a_packed_export_reads_as_the_csv_it_holds_and_its_rows_name_the_archive(tmp_path, name, plain, monkeypatch):
    (tmp_path / name).write_bytes(PACKED[name](TRANSACTIONS.encode()))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    ingest(tmp_path, {"transactions": {"path": name}})
    validated, quarantined = outputs(tmp_path)
    shown = str(tmp_path / name) + (" [file t.csv]" if name.endswith(".zip") else "")
    pd.testing.assert_frame_equal(validated, plain[0])
    assert quarantined[["source_file", "source_row", "reason"]].values.tolist() == [
        [shown, 4, "ordered_at: not a timestamp"]]
    assert list((tmp_path / "scratch").iterdir()) == []  # the unpacked copy is gone


def test_gzipped_json_lines_and_a_zipped_lookup_table_are_read(tmp_path):
    (tmp_path / "t.jsonl.gz").write_bytes(gzip.compress(JSON_LINES.encode()))
    (tmp_path / "stores.zip").write_bytes(zipped({"stores.csv": b"customer_id,region\nc1,north\nc2,south\n"}))
    report = ingest(tmp_path, {"transactions": {"path": "t.jsonl.gz",
                                       "lookup": [{"path": "stores.zip", "by": "customer_id", "columns": ["region"]}]}})
    validated, _ = outputs(tmp_path)
    assert validated["order_id"].tolist() == ["o1", "o2"]
    extra = pd.read_parquet(tmp_path / "out" / "validated" / "extra" / "transactions.parquet")
    assert extra["region"].tolist() == ["north", "south"]
    assert report["sources"]["transactions"]["files"] == [  # a file read whole is fingerprinted whole
        {"path": str(tmp_path / name), "sha256": hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()}
        for name in ("t.jsonl.gz", "stores.zip")]


def test_a_line_with_the_wrong_number_of_fields_in_a_packed_csv_names_the_archive(tmp_path):
    broken = TRANSACTIONS + "o7,c1,2024-01-11 10:00:00,1,2,3\n"
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(broken.encode()))
    report = ingest(tmp_path, {"transactions": {"path": "t.csv.gz"}}, ingest={"max_bad_share": 0.5})
    _, quarantined = outputs(tmp_path)
    assert quarantined["source_row"].tolist() == [4, 8]
    assert quarantined["reason"].iloc[1].startswith("line 9 has 6 fields where the header has 4")
    warnings = " ".join(report["sources"]["transactions"]["notes"])
    assert str(tmp_path / "t.csv.gz") in warnings and "churn-unpacked" not in warnings


def test_a_workbook_is_not_taken_for_an_archive(tmp_path):
    path = tmp_path / "t.xlsx"
    pd.DataFrame({"order_id": ["o1"]}).to_excel(path, index=False)
    assert compressed.packing(path) is None
    (tmp_path / "t.csv").write_text(TRANSACTIONS)
    assert compressed.packing(tmp_path / "t.csv") is None
    (tmp_path / "t.gz").write_bytes(gzip.compress(b"x"))
    assert compressed.packing(tmp_path / "t.gz") == "gzip"


@pytest.mark.parametrize("archive, message", [
    ({"b.csv": b"y", "a.csv": b"x"}, r"t\.zip is a zip archive of 2 files \(a\.csv, b\.csv\); name the file to read "
                                     r"with sources\.transactions\.member \(e\.g\. sources\.transactions\.member: "
                                     r"a\.csv\), or a glob of the files$"),
    ({"folder/": b""}, r"t\.zip is a zip archive without files; export the data again$"),
    ({"t.csv.gz": gzip.compress(b"x")}, r"t\.zip \[file t\.csv\.gz\] holds a gzip file in turn; unpack it and point "
                                        r"sources\.transactions\.path at what it holds$"),
])
def test_a_zip_of_several_files_of_none_or_of_another_archive_is_a_one_line_error(tmp_path, archive, message):
    (tmp_path / "t.zip").write_bytes(zipped(archive))
    with pytest.raises(IngestError, match=message):
        ingest(tmp_path, {"transactions": {"path": "t.zip"}})


def two_copies_of(entry: str, first: str, second: str, **others: str) -> bytes:
    """A zip archive holding `entry` twice (as an archive appended to another does), and `others`."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of the repeated name, and writes it
        for name, text in [(entry, first), (entry, second), *others.items()]:
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.mark.parametrize("member", [None, "t.csv", "*.csv"])
def test_a_zip_holding_a_file_twice_is_a_one_line_error_not_either_copy(tmp_path, member):
    (tmp_path / "t.zip").write_bytes(two_copies_of("t.csv", TRANSACTIONS, TRANSACTIONS.replace("o6", "o7")))
    with pytest.raises(IngestError, match=r"^source transactions: .*t\.zip holds 2 files named t\.csv; which of them "
                                          r"is the export cannot be told: pack the export again with the file once$"):
        ingest(tmp_path, {"transactions": {"path": "t.zip", **({"member": member} if member else {})}})


def test_another_file_held_twice_does_not_stop_reading_the_member(tmp_path, plain):
    (tmp_path / "t.zip").write_bytes(two_copies_of("readme.txt", "a", "b", **{"t.csv": TRANSACTIONS}))
    ingest(tmp_path, {"transactions": {"path": "t.zip", "member": "t.csv"}})
    pd.testing.assert_frame_equal(outputs(tmp_path)[0], plain[0])


def as_written_by_another_tool(files: dict[str, str], *, encrypted: bool = False, method: int | None = None) -> bytes:
    """A zip archive of `files` whose headers say each is password-protected and/or packed by zip compression
    `method` (zipfile can write neither)."""
    data = bytearray(zipped(files))
    for header, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # `at`: the flags, then the method's 2 bytes
        start = data.find(header)
        while start >= 0:
            data[start + at] |= 0x1 if encrypted else 0
            if method is not None:
                data[start + at + 2:start + at + 4] = method.to_bytes(2, "little")
            start = data.find(header, start + 1)
    return bytes(data)


def packed_then_cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


def corrupted(data: bytes) -> bytes:
    """`data` with a byte of its deflated stream flipped (past the zip's 30-byte local header and the name t.csv)."""
    return data[:40] + bytes([data[40] ^ 0xFF]) + data[41:]


BIG = TRANSACTIONS * 20


@pytest.mark.parametrize("name, data, member, message", [
    ("t.zip", packed_then_cut(zipped({"t.csv": BIG})), None,
     r"t\.zip is a zip file but cannot be unpacked \(File is not a zip file\); download or export it again$"),
    ("t.zip", packed_then_cut(zipped({"t.csv": BIG, "u.csv": BIG})), "t.csv",
     r"t\.zip is a zip archive but cannot be read \(File is not a zip file\); download or export it again$"),
    ("t.zip", corrupted(zipped({"t.csv": BIG})), None,
     r"t\.zip is a zip file but cannot be unpacked \(Error -3 while decompressing data: .*\); download or export it "
     r"again$"),
    ("t.csv.gz", packed_then_cut(gzip.compress(BIG.encode())), None,
     r"t\.csv\.gz is a gzip file but cannot be unpacked \(Compressed file ended before the end-of-stream marker was "
     r"reached\); download or export it again$"),
    ("t.zip", as_written_by_another_tool({"t.csv": TRANSACTIONS, "u.csv": TRANSACTIONS}, encrypted=True), "t.csv",
     r"t\.zip \[file t\.csv\] is password-protected; unzip it with its password and point sources\.transactions\.path "
     r"at the file it holds$"),
    ("t.zip", as_written_by_another_tool({"t.csv": TRANSACTIONS}, method=9), None,
     r"t\.zip \[file t\.csv\] is packed with Deflate64 \(as Windows packs large files\), which cannot be unpacked "
     r"here; unzip it with another tool \(7-Zip, unzip\) and point sources\.transactions\.path at the file it holds$"),
    ("t.zip", zipped({"t.csv": b"", "u.csv": TRANSACTIONS}), "t.csv",
     r"t\.zip \[file t\.csv\] is empty \(not even a header row\);"),
    ("t.csv.gz", b"\0\x01 not gzip \xff\xfe" * 10, None, r"t\.csv\.gz is not valid utf-8 \(line 1, byte 12\);"),
])
def test_a_broken_download_is_a_one_line_error_naming_the_file(tmp_path, name, data, member, message):
    (tmp_path / name).write_bytes(data)
    expected = r"^source transactions: " + re.escape(f"{tmp_path}/") + message
    with pytest.raises(IngestError, match=expected) as error:
        ingest(tmp_path, {"transactions": {"path": name, **({"member": member} if member else {})}})
    assert "\n" not in str(error.value)


def test_a_text_export_under_a_gz_name_is_read_as_text_by_every_reader(tmp_path, plain):
    (tmp_path / "t.csv.gz").write_text(TRANSACTIONS.replace(",", ";;"))  # a separator only pandas reads
    ingest(tmp_path, {"transactions": {"path": "t.csv.gz", "read": {"sep": ";;"}}})
    pd.testing.assert_frame_equal(outputs(tmp_path)[0], plain[0])


def test_an_error_about_the_unpacked_file_names_the_archive_not_the_copy(tmp_path):
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(TRANSACTIONS.replace("amount", "total").encode()))
    with pytest.raises(IngestError) as error:
        ingest(tmp_path, {"transactions": {"path": "t.csv.gz"}})
    assert str(error.value).startswith(f"source transactions: {tmp_path / 't.csv.gz'} lacks required column(s) amount;")


def test_no_room_to_unpack_is_a_one_line_error_naming_tmpdir(tmp_path, monkeypatch):
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(TRANSACTIONS.encode()))

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(compressed.shutil, "copyfileobj", full)
    with pytest.raises(IngestError, match=r"t\.csv\.gz could not be unpacked into .*No space left on device\); set the "
                                          r"TMPDIR environment variable to a folder with room for the unpacked file$"):
        ingest(tmp_path, {"transactions": {"path": "t.csv.gz"}})


def test_a_plain_csv_under_a_packed_name_is_read_as_the_text_it_is(tmp_path, plain):
    (tmp_path / "t.csv.bz2").write_text(TRANSACTIONS)  # a name is no proof: Arrow, given the path, would unpack it
    ingest(tmp_path, {"transactions": {"path": "t.csv.bz2"}})
    pd.testing.assert_frame_equal(outputs(tmp_path)[0], plain[0])


HEADER, *LINES = TRANSACTIONS.splitlines(keepends=True)
STORES = "customer_id,region\nc1,north\nc2,south\nc3,east\n"
# A download of several tables (as Kaggle's Olist zip is), the orders also as part files in a folder, listed out of
# name order.
DOWNLOAD = {"orders/part-2.csv": HEADER + "".join(LINES[4:]), "orders/part-1.csv": HEADER + "".join(LINES[:4]),
            "olist_orders.csv": TRANSACTIONS, "olist_stores.csv": STORES, "readme.txt": "tables of a shop"}


@pytest.mark.parametrize("member, origin", [("olist_orders.csv", "olist_orders.csv"),
                                            ("orders/part-*.csv", "orders/part-1.csv")])
def test_a_zip_of_several_files_is_read_by_member_or_by_a_glob_of_members(tmp_path, plain, member, origin, monkeypatch):
    (tmp_path / "download.zip").write_bytes(zipped(DOWNLOAD))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    ingest(tmp_path, {"transactions": {"path": "download.zip", "member": member}})
    validated, quarantined = outputs(tmp_path)
    pd.testing.assert_frame_equal(validated, plain[0])  # the parts read in name order, as the one file
    assert quarantined[["source_file", "source_row", "reason"]].values.tolist() == [
        [f"{tmp_path / 'download.zip'} [file {origin}]", 4, "ordered_at: not a timestamp"]]
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_lookup_table_is_read_from_a_member_of_the_archive_and_each_file_read_is_fingerprinted(tmp_path):
    stores = {"path": "download.zip", "member": "olist_stores.csv", "by": "customer_id"}
    sources = {"transactions": {"path": "download.zip", "member": "olist_orders.csv", "lookup": [stores]}}
    (tmp_path / "download.zip").write_bytes(zipped(DOWNLOAD))
    entry = ingest(tmp_path, sources)["sources"]["transactions"]
    extra = pd.read_parquet(tmp_path / "out" / "validated" / "extra" / "transactions.parquet")
    assert extra["region"].tolist() == ["north", "north", "south", "north", "south", "east"]
    assert f"from {tmp_path / 'download.zip'} [file olist_stores.csv] by customer_id" in " ".join(entry["notes"])
    archive = str(tmp_path / "download.zip")
    assert entry["files"] == [
        {"path": archive, "member": "olist_orders.csv", "crc32": f"{zlib.crc32(TRANSACTIONS.encode()):08x}",
         "bytes": len(TRANSACTIONS)},
        {"path": archive, "member": "olist_stores.csv", "crc32": f"{zlib.crc32(STORES.encode()):08x}",
         "bytes": len(STORES)}]
    # another file of the same download changed: the files read are as they were
    (tmp_path / "download.zip").write_bytes(zipped({**DOWNLOAD, "readme.txt": "tables of a shop, version 2"}))
    assert ingest(tmp_path, sources)["sources"]["transactions"]["files"] == entry["files"]
    (tmp_path / "download.zip").write_bytes(zipped({**DOWNLOAD, "olist_stores.csv": STORES + "c4,west\n"}))
    files = ingest(tmp_path, sources)["sources"]["transactions"]["files"]
    assert files[0] == entry["files"][0] and files[1]["bytes"] == len(STORES) + 8


NO_MATCH = (r"no file of .*download\.zip matches {key}: {member} \(its 5 files: olist_orders\.csv, olist_stores\.csv, "
            r"orders/part-1\.csv, orders/part-2\.csv, readme\.txt\); name one of them, as the archive writes it$")


@pytest.mark.parametrize("source, message", [
    ({"path": "download.zip", "member": "orders.csv"},
     NO_MATCH.format(key=r"sources\.transactions\.member", member=r"orders\.csv")),
    ({"path": "download.zip", "member": "*/part-3.csv"},
     NO_MATCH.format(key=r"sources\.transactions\.member", member=r"\*/part-3\.csv")),
    ({"path": "download.zip", "member": "olist_orders.csv",
      "other_exports": [{"path": "download.zip", "member": "returns.csv"}]},
     NO_MATCH.format(key=r"sources\.transactions\.other_exports\[0\]\.member", member=r"returns\.csv")),
    ({"path": "download.zip", "member": "olist_orders.csv", "lookup": [{"path": "download.zip", "by": "customer_id"}]},
     r"download\.zip is a zip archive of 5 files \(olist_orders\.csv, olist_stores\.csv, orders/part-1\.csv, "
     r"orders/part-2\.csv, readme\.txt\); name the file to read with sources\.transactions\.lookup\[0\]\.member "
     r"\(e\.g\. sources\.transactions\.lookup\[0\]\.member: olist_orders\.csv\), or a glob of the files$"),
    ({"path": "t.csv", "member": "t.csv"},
     r"sources\.transactions\.member names a file inside a zip archive, but .*t\.csv is not a zip archive; remove "
     r"sources\.transactions\.member, or point the path at the zip archive that holds the file$"),
    ({"path": "t.csv.gz", "member": "t.csv"}, r"sources\.transactions\.member names a file inside a zip archive, but "
                                              r".*t\.csv\.gz is a gzip-compressed file; remove"),
])
def test_a_member_that_is_not_in_a_zip_archive_is_a_one_line_error_naming_the_key(tmp_path, source, message):
    (tmp_path / "download.zip").write_bytes(zipped(DOWNLOAD))
    (tmp_path / "t.csv").write_text(TRANSACTIONS)
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(TRANSACTIONS.encode()))
    with pytest.raises(IngestError, match=message) as error:
        ingest(tmp_path, {"transactions": source})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("entry, member", [("../t.csv", None), ("/t.csv", "*/t.csv"), ("a\\..\\t.csv", "a*")])
def test_a_member_named_outside_the_archive_is_refused_not_unpacked(tmp_path, entry, member, monkeypatch):
    (tmp_path / "slip.zip").write_bytes(zipped({entry: TRANSACTIONS}))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "scratch" / "in"))
    (tmp_path / "scratch" / "in").mkdir(parents=True)
    with pytest.raises(IngestError, match=r"slip\.zip holds a file named .*t\.csv', which would be unpacked outside "
                                          r"its folder; it is not read: pack the export again without such names$"):
        ingest(tmp_path, {"transactions": {"path": "slip.zip", **({"member": member} if member else {})}})
    assert [path.name for path in (tmp_path / "scratch").rglob("*")] == ["in"]


@pytest.mark.parametrize("where", ["member", "lookup"])
def test_a_member_with_dot_dot_or_an_absolute_path_is_a_config_error(tmp_path, where):
    bad = {"path": "download.zip", "by": "customer_id", "member": "../t.csv"}
    source = {"path": "download.zip", "member": "/t.csv"} if where == "member" else {"path": "t.csv", "lookup": [bad]}
    key = r"sources\.transactions\.member" if where == "member" else r"sources\.transactions\.lookup\.0\.member"
    with pytest.raises(ConfigError, match=key + r": Value error, '\S+' names no file inside the archive; give the "
                                           r"file's name as the archive lists it"):
        config_for(tmp_path, {"transactions": source})


def test_a_member_lacking_required_columns_is_named_with_its_archive(tmp_path):
    (tmp_path / "download.zip").write_bytes(zipped(DOWNLOAD))
    with pytest.raises(IngestError, match=r"download\.zip \[file olist_stores\.csv\] lacks required column\(s\) "
                                          r"order_id, ordered_at, amount;"):
        ingest(tmp_path, {"transactions": {"path": "download.zip", "member": "olist_*.csv"}})


def test_the_hints_of_a_missing_column_read_the_unpacked_file(tmp_path):
    titled = "Sales report,,,\n" + TRANSACTIONS  # a report's title above the header row
    (tmp_path / "download.zip").write_bytes(zipped({**DOWNLOAD, "report.csv": titled}))
    with pytest.raises(IngestError, match=r"download\.zip \[file report\.csv\] lacks required column\(s\) order_id, "
                                          r"customer_id, ordered_at, amount; the header row seems to be line 2: set "
                                          r"sources\.transactions\.read\.skip_rows: 1$"):
        ingest(tmp_path, {"transactions": {"path": "download.zip", "member": "report.csv"}})
