"""Compressed exports: a file packed by gzip, bzip2, xz or zstd, or a zip archive holding one file or several.

`unpacked(name, path, member)` gives the file to read (the export itself, or a temporary unpacked copy that is
removed afterwards) and the label its rows and messages carry (the archive's path, and the file inside a zip).
Which packing a file has is told by its first bytes, never by its name: `orders.csv.gz`, an `orders.csv` that is
gzip-compressed and a zip of `orders.csv` are all read as that CSV. A zip of several files is read by the files
`archive_members` finds for a source's `member` setting (a name or a glob inside the archive). A zip that is an
Excel or OpenDocument workbook is no archive here: the workbook reader opens it. Messages raised while the
unpacked copy is read name the archive, not the temporary file.
"""

from __future__ import annotations

import bz2
import errno
import fnmatch
import gzip
import lzma
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

import pyarrow as pa

from pipeline.config import member_label
from pipeline.errors import IngestError

STREAM_PACKINGS = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))
ZIP_START = b"PK\x03\x04"
PACKED_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd", ".zip")
# Entries every Excel (Office Open XML) or OpenDocument workbook holds: such a zip is a workbook, not an archive.
WORKBOOK_ENTRIES = ("[Content_Types].xml", "mimetype")
# The zip compression methods Python's zipfile unpacks; names of others an export may use.
UNPACKED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
ZIP_METHOD_NAMES = {9: "Deflate64 (as Windows packs large files)", 93: "Zstandard", 95: "xz", 98: "PPMd"}
COPY_CHUNK = 2**24
SHOWN_ENTRIES = 5


@contextmanager
def _opened(path: Path) -> Iterator[tuple[str | None, zipfile.ZipFile | None]]:
    """(`packing(path)`, the zip archive opened when it is 'zip', else None). A file named `.zip` that starts as a
    zip archive but cannot be opened as one (a download cut short) raises BadZipFile; under any other name such a
    file is None: the readers say what it is (a truncated workbook, say)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    found = next((kind for start, kind in STREAM_PACKINGS if head.startswith(start)), None)
    if found is not None or not head.startswith(ZIP_START):
        yield found, None
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        if path.suffix.lower() == ".zip":
            raise zipfile.BadZipFile(_reason(exc)) from None
        archive = None
    if archive is None:
        yield None, None
        return
    with archive:
        workbook = any(entry in archive.namelist() for entry in WORKBOOK_ENTRIES)
        yield (None, None) if workbook else ("zip", archive)


def packing(path: Path) -> str | None:
    """'gzip', 'bzip2', 'xz', 'zstd' or 'zip' when the file's first bytes say it is packed so, else None (a zip
    that is a workbook is None, as is one that cannot be opened as a zip unless it is named .zip: the readers say
    what it is)."""
    try:
        with _opened(path) as (kind, _):
            return kind
    except zipfile.BadZipFile:
        return "zip"


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def archived_files(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The files of a zip archive, without folders and the entries archivers add (`__MACOSX/`, `.DS_Store`)."""
    return [info for info in archive.infolist() if not info.is_dir()
            and not info.filename.startswith("__MACOSX/") and not PurePosixPath(info.filename).name.startswith(".")]


def member_checksums(path: Path) -> dict[str, dict[str, str | int]]:
    """{file of the zip archive at `path` (`archived_files`): {"crc32": its CRC-32 as 8 hex digits, "bytes": its
    unpacked size}}, as the archive's directory lists them: nothing is unpacked."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename: {"crc32": f"{info.CRC:08x}", "bytes": info.file_size}
                for info in archived_files(archive)}


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


def _files_shown(entries: list[str]) -> str:
    """'a.csv, b.csv and 7 more' for the first SHOWN_ENTRIES of `entries`."""
    more = f" and {len(entries) - SHOWN_ENTRIES:,} more" if len(entries) > SHOWN_ENTRIES else ""
    return ", ".join(entries[:SHOWN_ENTRIES]) + more


def _matches(entry: str, pattern: str) -> bool:
    """Whether the archive's file `entry` is `pattern`, or matches it as a glob part by part (as a path glob does:
    `*` stays within a folder)."""
    if entry == pattern:
        return True
    parts, wanted = PurePosixPath(entry).parts, PurePosixPath(pattern).parts
    return len(parts) == len(wanted) and all(fnmatch.fnmatchcase(part, glob) for part, glob in zip(parts, wanted))


def archive_members(name: str, path: Path, pattern: str | None, *, setting: str) -> list[str | None]:
    """The files of the zip archive at `path` that `pattern` (the `member` setting, whose key is `setting`) names,
    sorted; [None] (the file itself) without a pattern. IngestError naming the setting when `path` is no zip
    archive or none of its files matches."""
    if pattern is None:
        return [None]
    try:
        with _opened(path) as (kind, archive):
            entries = sorted({info.filename for info in archived_files(archive)} if archive else [])
    except zipfile.BadZipFile as exc:
        raise IngestError(f"source {name}: {path} is a zip archive but cannot be read ({_reason(exc)}); "
                          "download or export it again") from None
    if kind != "zip":
        what = f"a {kind}-compressed file" if kind else "not a zip archive"
        raise IngestError(f"source {name}: {setting} names a file inside a zip archive, but {path} is {what}; "
                          f"remove {setting}, or point the path at the zip archive that holds the file")
    found = [entry for entry in entries if _matches(entry, pattern)]
    if not found:
        raise IngestError(f"source {name}: no file of {path} matches {setting}: {pattern} (its {len(entries):,} "
                          f"files: {_files_shown(entries) or 'none'}); name one of them, as the archive writes it")
    return found


def _zip_entry(name: str, path: Path, archive: zipfile.ZipFile, member: str | None) -> zipfile.ZipInfo:
    """The file `member` of `archive`, or without it its one file; IngestError when it holds none or several, two
    files of that name, a password-protected one or one packed by a method zipfile lacks, or when the file's name
    would put its copy outside the unpacking folder ('..', an absolute path: zip-slip)."""
    entries = archived_files(archive)
    if member is not None:
        entries = [info for info in entries if info.filename == member]
    if not entries:
        raise IngestError(f"source {name}: {path} is a zip archive without files; export the data again")
    # zip allows a name twice (an archive appended to another does it): which copy is the export cannot be told
    if len(entries) > 1 and len({info.filename for info in entries}) == 1:
        raise IngestError(f"source {name}: {path} holds {len(entries):,} files named {entries[0].filename}; which of "
                          "them is the export cannot be told: pack the export again with the file once")
    if len(entries) > 1 and member is None:
        names = sorted(info.filename for info in entries)
        raise IngestError(
            f"source {name}: {path} is a zip archive of {len(names):,} files ({_files_shown(names)}); name the file "
            f"to read with sources.{name}.member (e.g. sources.{name}.member: {names[0]}), or a glob of the files"
        )
    entry = entries[0]
    if entry.flag_bits & 0x1:
        raise IngestError(f"source {name}: {member_label(path, entry.filename)} is password-protected; unzip it with "
                          f"its password and point sources.{name}.path at the file it holds")
    if entry.compress_type not in UNPACKED_METHODS:
        method = ZIP_METHOD_NAMES.get(entry.compress_type, f"method {entry.compress_type}")
        raise IngestError(f"source {name}: {member_label(path, entry.filename)} is packed with {method}, which "
                          f"cannot be unpacked here; unzip it with another tool (7-Zip, unzip) and point "
                          f"sources.{name}.path at the file it holds")
    inside = PurePosixPath(entry.filename.replace("\\", "/"))
    if inside.is_absolute() or ".." in inside.parts or inside.name in ("", "."):
        raise IngestError(f"source {name}: {path} holds a file named {entry.filename!r}, which would be unpacked "
                          "outside its folder; it is not read: pack the export again without such names")
    return entry


@contextmanager
def unpacked(name: str, path: Path, member: str | None = None) -> Iterator[tuple[Path, str]]:
    """(the file to read, its label): `path` and str(path) when it is not packed; else a temporary unpacked copy
    (named as the export without its packing suffix, or as the file inside the zip: `member`, one of
    `archive_members`, or the zip's one file) and the archive's path, with ` [file <entry>]` for a zip. IngestError,
    naming the archive, when it cannot be unpacked; an IngestError raised while the copy is read names the archive
    instead of the copy."""
    with ExitStack() as stack:
        try:
            kind, archive = stack.enter_context(_opened(path))
        except zipfile.BadZipFile as exc:
            raise IngestError(f"source {name}: {path} is a zip file but cannot be unpacked ({_reason(exc)}); "
                              "download or export it again") from None
        if kind is None:
            yield path, str(path)
            return
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="churn-unpacked-"))
        try:
            if archive is not None:
                entry = _zip_entry(name, path, archive, member)
                copy = Path(folder) / PurePosixPath(entry.filename.replace("\\", "/")).name
                label = member_label(path, entry.filename)
                _copy(archive.open(entry), copy)
            else:
                copy, label = Path(folder) / _unpacked_name(path), str(path)
                _copy(_stream(path, kind), copy)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, RuntimeError, pa.ArrowException) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise IngestError(f"source {name}: {path} could not be unpacked into {folder} ({_reason(exc)}); "
                                  "set the TMPDIR environment variable to a folder with room for the unpacked "
                                  "file") from None
            raise IngestError(f"source {name}: {path} is a {kind} file but cannot be unpacked ({_reason(exc)}); "
                              "download or export it again") from None
        inner = packing(copy)
        if inner is not None:
            raise IngestError(f"source {name}: {label} holds a {inner} file in turn; unpack it and point "
                              f"sources.{name}.path at what it holds")
        try:
            yield copy, label
        except IngestError as exc:
            raise IngestError(str(exc).replace(str(copy), label)) from None
