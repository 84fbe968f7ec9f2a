"""The TFRecord framing: CRC-32C checksums, the record writer, and a record reader
that names what is wrong.

A TFRecord file is a run of records, each framed as a uint64 length, the masked
CRC-32C of the length, the data, and the masked CRC-32C of the data.
`RecordWriter` writes that framing with plain file writes (CRC-32C from the C
library behind `google-crc32c`), the same bytes as `tf.io.TFRecordWriter`: workers
need no TensorFlow, and a full disk (ENOSPC, EDQUOT, EFBIG) is an ordinary
`OSError` instead of a crash inside TensorFlow's C++ writer.
`read_shard` reads a shard through `tf.data.TFRecordDataset` (both checksums
checked in C++ at disk speed, exactly what training will use) and, from the first
record TensorFlow cannot read, falls back to `scan_records`: a small Python
reader of the framing that names the exact record and whether the length, the
data or the end of the file is at fault, and goes on past a record whose data is
bad (its length is still trustworthy).
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import google_crc32c

BATCH = 64  # records per tf.data batch (and per parse batch in verify)
_HEADER = 12  # uint64 length + uint32 masked CRC of the length


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli)."""
    return google_crc32c.value(data)


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: CRC-32C rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class RecordWriter:
    """Writes TFRecord framing to an open binary file and keeps the sha256 and size
    of what it wrote (so a shard is never read back to hash it)."""

    def __init__(self, file: BinaryIO):
        self._file = file
        self._sha = hashlib.sha256()
        self.size_bytes = 0

    def write(self, data: bytes) -> None:
        length = struct.pack("<Q", len(data))
        framed = b"".join((length, struct.pack("<I", masked_crc32c(length)), data,
                           struct.pack("<I", masked_crc32c(data))))
        self._file.write(framed)
        self._sha.update(framed)
        self.size_bytes += len(framed)

    def sha256(self) -> str:
        return self._sha.hexdigest()


@dataclass(frozen=True)
class FramedRecord:
    """One record of a shard, or why it cannot be used.

    `data` is None when the record cannot be used; `problem` then says why, and
    `fatal` tells that nothing after this point of the file can be read.
    """

    index: int
    data: bytes | None
    problem: str | None = None
    fatal: bool = False


def _bad_header(index: int, offset: int, header: bytes, size: int) -> FramedRecord | None:
    """Why the header at `offset` cannot be trusted, or None when it can."""
    if len(header) < _HEADER:
        return FramedRecord(index, None, f"truncated: the file ends inside the header of this "
                            f"record (offset {offset}, {len(header)} of {_HEADER} bytes)", True)
    if masked_crc32c(header[:8]) != struct.unpack("<I", header[8:])[0]:
        return FramedRecord(index, None, f"corrupted length header at offset {offset} (CRC "
                            f"mismatch); the rest of the file ({size - offset} bytes) cannot "
                            "be read", True)
    return None


def scan_records(path: str | Path, *, check_from: int = 0) -> Iterator[FramedRecord]:
    """Read a TFRecord file's framing record by record.

    Records before `check_from` are skipped without reading their data (they were
    already checked); from `check_from` on, both checksums are verified. A bad data
    checksum is reported and reading goes on; a bad length checksum or a file that
    ends inside a record is reported and ends the scan.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        index, offset = 0, 0
        while offset < size:
            header = f.read(_HEADER)
            bad = _bad_header(index, offset, header, size)
            if bad is not None:
                yield bad
                return
            (length,) = struct.unpack("<Q", header[:8])
            end = offset + _HEADER + length + 4
            if end > size:
                yield FramedRecord(index, None, f"truncated: record of {length} bytes at offset "
                                   f"{offset} needs {end - size} more bytes than the file "
                                   "holds", True)
                return
            if index < check_from:
                f.seek(length + 4, os.SEEK_CUR)
            else:
                data = f.read(length)
                (data_crc,) = struct.unpack("<I", f.read(4))
                if masked_crc32c(data) != data_crc:
                    yield FramedRecord(index, None, f"corrupted record data at offset {offset} "
                                       "(CRC mismatch)")
                else:
                    yield FramedRecord(index, data)
            index += 1
            offset = end


def read_shard(path: str) -> Iterator[FramedRecord]:
    """Every record of a shard: fast path through tf.data (in batches), Python
    framing from the first record of the batch that failed."""
    import tensorflow as tf

    index = 0
    it = iter(tf.data.TFRecordDataset(path, buffer_size=1 << 20).batch(BATCH))
    while True:
        try:
            batch = next(it)
        except StopIteration:
            break
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.UnknownError):
            break
        for record in batch.numpy().tolist():
            yield FramedRecord(index, record)
            index += 1
    # Also after a clean end: tf.data takes a few stray bytes after the last record
    # (a cut inside a header) for the end of the file. Walking the headers is cheap.
    yield from scan_records(path, check_from=index)
