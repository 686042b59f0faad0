"""The journal: every token fed since the oldest kept fast-weight version, appended durably.

A record is one `feed` call: `u32 length | u32 crc32 | JSON {"seq", "t", "ids"}`. A record is
fsync'ed before `feed` returns, so a crash loses nothing that `feed` returned from. A torn or
corrupt tail (a crash mid-append) is detected by its length or checksum and cut off; the
records before it are kept.
"""
from __future__ import annotations

import json
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

HEADER = struct.Struct("<II")


@dataclass(frozen=True)
class Record:
    seq: int
    t: float
    ids: list[int]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Temp file, fsync, rename, fsync the folder: the file is either old or new, never torn."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def encode(record: Record) -> bytes:
    body = json.dumps({"seq": record.seq, "t": record.t, "ids": record.ids}, separators=(",", ":")).encode()
    return HEADER.pack(len(body), zlib.crc32(body)) + body


class Journal:
    def __init__(self, path: Path, durable: bool = True):
        self.path, self.durable = path, durable
        self.records: list[Record] = []
        self.dropped_bytes = 0  # of a torn or corrupt tail, cut off at open
        data = path.read_bytes() if path.exists() else b""
        at = 0
        while at < len(data):
            if at + HEADER.size > len(data):
                break
            n, crc = HEADER.unpack_from(data, at)
            body = data[at + HEADER.size: at + HEADER.size + n]
            if len(body) < n or zlib.crc32(body) != crc:
                break
            try:
                d = json.loads(body)
                self.records.append(Record(int(d["seq"]), float(d["t"]), [int(i) for i in d["ids"]]))
            except (ValueError, KeyError, TypeError):
                break
            at += HEADER.size + n
        if at < len(data):
            self.dropped_bytes = len(data) - at
            with open(path, "r+b") as f:
                f.truncate(at)
                os.fsync(f.fileno())
        self._file = open(path, "ab")

    @property
    def last_seq(self) -> int:
        return self.records[-1].seq if self.records else 0

    def append(self, ids: list[int], last_seq: int) -> Record:
        """Append one record after `last_seq` (the newest seq anyone has seen, kept or not)."""
        record = Record(max(last_seq, self.last_seq) + 1, time.time(), list(ids))
        self._file.write(encode(record))
        self._file.flush()
        if self.durable:
            os.fsync(self._file.fileno())
        self.records.append(record)
        return record

    def between(self, after: int, upto: int) -> list[Record]:
        return [r for r in self.records if after < r.seq <= upto]

    def rewrite(self, keep) -> None:
        """Keep only the records for which keep(record) is true (atomically)."""
        self._file.close()
        self.records = [r for r in self.records if keep(r)]
        write_atomic(self.path, b"".join(encode(r) for r in self.records), self.durable)
        self._file = open(self.path, "ab")

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def close(self) -> None:
        self._file.close()
