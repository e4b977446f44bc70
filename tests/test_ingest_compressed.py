"""Compressed exports (gzip, bzip2, xz, zstd, a zip of one file) read as the file they hold; archives that cannot
be read are one-line errors naming the archive."""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from conftest import minimal_config, zipped
from pipeline import compressed
from pipeline.config import config_from_dict
from pipeline.errors import IngestError
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
    "t.zip": lambda data: zipped({"t.csv": data, ".DS_Store": b"\0", "__MACOSX/._t.csv": b"\0"}),
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
    ingest(tmp_path, {"transactions": {"path": "t.jsonl.gz",
                                       "lookup": [{"path": "stores.zip", "by": "customer_id", "columns": ["region"]}]}})
    validated, _ = outputs(tmp_path)
    assert validated["order_id"].tolist() == ["o1", "o2"]
    extra = pd.read_parquet(tmp_path / "out" / "validated" / "extra" / "transactions.parquet")
    assert extra["region"].tolist() == ["north", "south"]


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
    ({"a.csv": b"x", "b.csv": b"y"}, r"t\.zip is a zip archive of 2 files \(a\.csv, b\.csv\), and a source reads one "
                                     r"file per path; unzip it and point sources\.transactions\.path at the file to "
                                     r"read, or at a glob of the files$"),
    ({"folder/": b""}, r"t\.zip is a zip archive without files; export the data again$"),
    ({"t.csv.gz": gzip.compress(b"x")}, r"t\.zip \[file t\.csv\.gz\] holds a gzip file in turn; unpack it and point "
                                        r"sources\.transactions\.path at what it holds$"),
])
def test_a_zip_of_several_files_of_none_or_of_another_archive_is_a_one_line_error(tmp_path, archive, message):
    (tmp_path / "t.zip").write_bytes(zipped(archive))
    with pytest.raises(IngestError, match=message):
        ingest(tmp_path, {"transactions": {"path": "t.zip"}})


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
