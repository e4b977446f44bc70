"""Compressed exports: a file packed by gzip, bzip2, xz or zstd, or a zip archive holding one file.

`unpacked(name, path)` gives the file to read (the export itself, or a temporary unpacked copy that is removed
afterwards) and the label its rows and messages carry (the archive's path, and the file inside a zip). Which
packing a file has is told by its first bytes, never by its name: `orders.csv.gz`, an `orders.csv` that is
gzip-compressed and a zip of `orders.csv` are all read as that CSV. A zip that is an Excel or OpenDocument
workbook is no archive here: the workbook reader opens it. Messages raised while the unpacked copy is read name
the archive, not the temporary file.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

import pyarrow as pa

from pipeline.errors import IngestError

STREAM_PACKINGS = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))
ZIP_START = b"PK\x03\x04"
PACKED_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd", ".zip")
# Entries every Excel (Office Open XML) or OpenDocument workbook holds: such a zip is a workbook, not an archive.
WORKBOOK_ENTRIES = ("[Content_Types].xml", "mimetype")
COPY_CHUNK = 2**24
SHOWN_ENTRIES = 5


def packing(path: Path) -> str | None:
    """'gzip', 'bzip2', 'xz', 'zstd' or 'zip' when the file's first bytes say it is packed so, else None (a zip
    that is a workbook, or that cannot be opened as a zip, is None: the readers say what it is)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    found = next((kind for start, kind in STREAM_PACKINGS if head.startswith(start)), None)
    if found is not None or not head.startswith(ZIP_START):
        return found
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    return None if any(entry in names for entry in WORKBOOK_ENTRIES) else "zip"


def archived_files(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The files of a zip archive, without folders and the entries archivers add (`__MACOSX/`, `.DS_Store`)."""
    return [info for info in archive.infolist() if not info.is_dir()
            and not info.filename.startswith("__MACOSX/") and not PurePosixPath(info.filename).name.startswith(".")]


def _unpacked_name(path: Path) -> str:
    """orders.csv.gz -> orders.csv; a packed file without a packing suffix keeps its name."""
    return path.stem if path.suffix.lower() in PACKED_SUFFIXES else path.name


def _stream(path: Path, kind: str) -> IO[bytes]:
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bzip2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    return pa.CompressedInputStream(pa.OSFile(str(path)), "zstd")


def _copy(source: IO[bytes], target: Path) -> None:
    with source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, COPY_CHUNK)


def _zip_entry(name: str, path: Path, archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The one file of `archive`; IngestError when it holds none or several."""
    entries = archived_files(archive)
    if len(entries) == 1:
        return entries[0]
    if not entries:
        raise IngestError(f"source {name}: {path} is a zip archive without files; export the data again")
    shown = ", ".join(info.filename for info in entries[:SHOWN_ENTRIES])
    more = f" and {len(entries) - SHOWN_ENTRIES:,} more" if len(entries) > SHOWN_ENTRIES else ""
    raise IngestError(
        f"source {name}: {path} is a zip archive of {len(entries):,} files ({shown}{more}), and a source reads one "
        f"file per path; unzip it and point sources.{name}.path at the file to read, or at a glob of the files"
    )


@contextmanager
def unpacked(name: str, path: Path) -> Iterator[tuple[Path, str]]:
    """(the file to read, its label): `path` and str(path) when it is not packed; else a temporary unpacked copy
    (named as the export without its packing suffix, or as the file inside the zip) and the archive's path, with
    ` [file <entry>]` for a zip. IngestError, naming the archive, when it cannot be unpacked; an IngestError raised
    while the copy is read names the archive instead of the copy."""
    kind = packing(path)
    if kind is None:
        yield path, str(path)
        return
    with tempfile.TemporaryDirectory(prefix="churn-unpacked-") as folder:
        try:
            if kind == "zip":
                with zipfile.ZipFile(path) as archive:
                    entry = _zip_entry(name, path, archive)
                    copy = Path(folder) / (PurePosixPath(entry.filename).name or "unpacked")
                    label = f"{path} [file {entry.filename}]"
                    _copy(archive.open(entry), copy)
            else:
                copy, label = Path(folder) / _unpacked_name(path), str(path)
                _copy(_stream(path, kind), copy)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, RuntimeError, pa.ArrowException) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise IngestError(f"source {name}: {path} could not be unpacked into {folder} ({reason}); set the "
                                  "TMPDIR environment variable to a folder with room for the unpacked file") from None
            raise IngestError(f"source {name}: {path} is a {kind} file but cannot be unpacked ({reason}); "
                              "download or export it again") from None
        inner = packing(copy)
        if inner is not None:
            raise IngestError(f"source {name}: {label} holds a {inner} file in turn; unpack it and point "
                              f"sources.{name}.path at what it holds")
        try:
            yield copy, label
        except IngestError as exc:
            raise IngestError(str(exc).replace(str(copy), label)) from None
