"""The memory: the one owner of the fast weights, and the folder that keeps them.

A memory folder holds
- `memory.json`: the format and the fingerprint of the model it belongs to;
- `versions/vNNNNNNNN.fw`: immutable fast-weight versions, each checksummed (sha256) and
  written atomically. The newest good one is the head; older ones are kept for rollback;
- `journal.log`: every token fed since the oldest kept version (edgesleep/journal.py);
- `deep.partial`: the checkpoint of a deep sleep in progress (DeepSleep), removed at its commit;
- `LOCK`: an flock held while a runtime has the memory open (released by the kernel when the
  process dies, kill -9 included).

History is linear. A version covers the journal records up to its `end_seq`, from the last
reset on. A deep version holds S consolidated with `passes` passes for everything it covers;
a light one holds S from light sleeps (N = 1) since its `base` deep version, plus the tokens
of the partial window (`pending`). A deep sleep replays the records after the base.

`memory=None` gives the same memory in a temporary folder, without fsync.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


from edgesleep.config import ModelArgs
from edgesleep.journal import Journal, Record, write_atomic
from edgesleep.state import FastWeights

FORMAT = 1
PARTIAL = "deep.partial"  # the checkpoint of a deep sleep in progress


class MemoryError_(RuntimeError):
    """A memory folder that cannot be used (in use, wrong model, newer format, corrupt)."""


@dataclass
class Version:
    id: int
    kind: str  # "start", "light", "deep", "reset"; "partial" in deep.partial
    end_seq: int  # journal records up to here are in it (or were retracted)
    start_seq: int  # content begins after this seq (moved by reset)
    base: int  # the deep version whose S the light sleeps built on (itself if deep)
    passes: int  # sleep depth of the deep part
    pending: list[int] = field(default_factory=list)  # tokens of the partial window
    tokens_consolidated: int = 0
    time: float = 0.0
    cost: dict = field(default_factory=dict)

    @property
    def deep(self) -> bool:
        return self.base == self.id


def encode_version(v: Version, fast: FastWeights) -> bytes:
    return fast.to_bytes(asdict(v))


def decode_version(data: bytes) -> tuple[Version, FastWeights]:
    header, fast = FastWeights.from_bytes(data)
    try:
        return Version(**header), fast
    except TypeError as e:
        raise ValueError(f"bad header ({e})") from None


@dataclass
class DeepSleep:
    """One deep sleep, as a transaction of the memory: begun over everything fed since the
    head's deep base, checkpointed after each window (an interrupted one resumes from its last
    checkpoint), committed as one new deep version. Nothing changes until `commit`."""

    memory: "Memory"
    base: Version
    passes: int
    tokens: list[int]  # every token fed since the base, in order
    fast: FastWeights  # where replay starts: the base's S, or an interrupted sleep's
    windows_done: int  # of an interrupted sleep of the same stretch and depth, else 0

    def checkpoint(self, windows: int, fast: FastWeights) -> None:
        """S after `windows` replayed windows, kept so that an interruption loses no window."""
        mem = self.memory
        v = Version(self.base.id, "partial", mem.journal.last_seq, self.base.start_seq, self.base.id, self.passes,
                    cost={"windows_done": windows})
        write_atomic(mem.folder / PARTIAL, encode_version(v, fast), mem.durable)

    def commit(self, fast: FastWeights, cost: dict) -> Version:
        """Write `fast` as the new head, a deep version covering everything fed."""
        mem = self.memory
        return mem.commit(mem.journal.last_seq, [], passes=self.passes, fast=fast,
                          tokens_consolidated=self.base.tokens_consolidated + len(self.tokens), cost=cost)


class Memory:
    """Owns the fast weights: `consolidated` (the head's S) and `fast` (its live copy, which the
    wake steps update token by token)."""

    def __init__(self, folder: str | Path | None, args: ModelArgs, fingerprint: str, keep: int = 8,
                 model: str = ""):
        self.args, self.fingerprint, self.keep, self.model = args, fingerprint, keep, model
        self._tmp = None
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="edgesleep-")
            folder = self._tmp.name
        self.folder = Path(folder)
        self.durable = self._tmp is None
        self.warnings: list[str] = []
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "versions").mkdir(exist_ok=True)
        self._lock()
        self._check_meta()
        self.journal = Journal(self.folder / "journal.log", self.durable)
        if self.journal.dropped_bytes:
            self.warnings.append(f"journal: dropped a torn tail of {self.journal.dropped_bytes} bytes")
        self.head, self.consolidated = self._load_head()
        self.fast = self.consolidated.copy()
        self.unsaved_tokens = 0  # consolidated by light sleeps since the head was written
        self._finish_intent()

    # -- the folder -----------------------------------------------------------------------------
    def _lock(self) -> None:
        self._lock_file = open(self.folder / "LOCK", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            who = self._lock_file.read().strip() or "another process"
            self._lock_file.close()
            raise MemoryError_(f"memory {self.folder} is in use by {who}; close it first") from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(f"pid {os.getpid()}\n")
        self._lock_file.flush()

    def _check_meta(self) -> None:
        path = self.folder / "memory.json"
        if not path.exists():
            if any((self.folder / "versions").iterdir()):
                raise MemoryError_(f"{path} is missing; this folder is not a usable memory")
            body = {"format": FORMAT, "fingerprint": self.fingerprint, "model": self.model, "created": time.time()}
            write_atomic(path, json.dumps({**body, "sha256": _digest(body)}, indent=1).encode(), self.durable)
            return
        try:
            meta = json.loads(path.read_text())
            body = {k: v for k, v in meta.items() if k != "sha256"}
            ok = meta.get("sha256") == _digest(body)
        except (ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            raise MemoryError_(f"{path} is corrupt (bad checksum); restore a backup")
        if meta["format"] > FORMAT:
            raise MemoryError_(f"memory {self.folder} has format {meta['format']}, newer than this edgesleep "
                               f"reads ({FORMAT}): upgrade edgesleep")
        if meta["fingerprint"] != self.fingerprint:
            raise MemoryError_(f"memory {self.folder} belongs to another model (fingerprint "
                               f"{meta['fingerprint'][:12]}, this model {self.fingerprint[:12]}); "
                               f"open it with its own model, or use a new memory folder")

    def _version_path(self, vid: int) -> Path:
        return self.folder / "versions" / f"v{vid:08d}.fw"

    def version_ids(self) -> list[int]:
        return sorted(int(p.stem[1:]) for p in (self.folder / "versions").glob("v*.fw"))

    def read(self, vid: int) -> tuple[Version, FastWeights]:
        v, fast = decode_version(self._version_path(vid).read_bytes())
        if not fast.fits(self.args):
            raise ValueError("shapes do not match the model")
        if not fast.is_finite():
            raise ValueError("non-finite fast weights")
        return v, fast

    def _load_head(self) -> tuple[Version, FastWeights]:
        """The newest good version; bad ones are reported and set aside."""
        for vid in reversed(self.version_ids()):
            try:
                return self.read(vid)
            except (ValueError, KeyError, TypeError, struct.error) as e:
                self.warnings.append(f"version {vid} is corrupt ({e}); fell back to an older version")
                bad = self._version_path(vid)
                bad.rename(bad.with_suffix(".corrupt"))
        if self.version_ids() or any((self.folder / "versions").glob("*.corrupt")):
            if self.journal.records and self.journal.records[0].seq > 1:
                raise MemoryError_(f"no good fast-weight version left in {self.folder} and the journal "
                                   f"no longer starts at the beginning; restore a backup")
        start = Version(0, "start", 0, 0, 0, 1, time=time.time())
        fast = FastWeights.zeros(self.args)
        self._write(start, fast)
        return start, fast

    def _write(self, v: Version, fast: FastWeights) -> None:
        write_atomic(self._version_path(v.id), encode_version(v, fast), self.durable)

    # -- what the runtime calls -----------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        return max(self.head.end_seq, self.journal.last_seq)

    def append(self, ids: list[int]) -> Record:
        return self.journal.append(ids, self.head.end_seq)

    def unconsolidated(self) -> list[Record]:
        """Records fed after the head was written (to replay after a crash)."""
        return self.journal.between(self.head.end_seq, self.journal.last_seq)

    def begin_sleep(self, passes: int) -> DeepSleep:
        """A deep sleep of depth `passes` over everything fed since the head's deep base,
        resuming an interrupted one of the same stretch and depth."""
        base, fast = (self.head, self.consolidated) if self.head.deep else self.read(self.head.base)
        tokens = [t for r in self.journal.between(base.end_seq, self.journal.last_seq) for t in r.ids]
        done = 0
        try:
            v, partial = decode_version((self.folder / PARTIAL).read_bytes())
            if (v.id, v.end_seq, v.passes) == (base.id, self.journal.last_seq, passes) and partial.fits(self.args):
                done, fast = int(v.cost["windows_done"]), partial
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none, or unreadable: start over
        return DeepSleep(self, base, passes, tokens, fast, done)

    def evict(self, tokens: int) -> None:
        """A light sleep at eviction: the wake pass already computed S^1, so it is free. Kept in
        RAM until the runtime commits."""
        if not self.fast.is_finite():
            self.fast = self.consolidated.copy()
            raise FloatingPointError("the wake pass produced non-finite fast weights; kept the previous version")
        self.consolidated = self.fast.copy()
        self.unsaved_tokens += tokens

    def snapshot(self) -> tuple:
        return self.fast.copy(), self.consolidated.copy(), self.unsaved_tokens

    def restore_snapshot(self, snap: tuple) -> None:
        self.fast, self.consolidated, self.unsaved_tokens = snap

    def commit(self, end_seq: int, pending: list[int], passes: int | None = None, fast: FastWeights | None = None,
               tokens_consolidated: int | None = None, cost: dict | None = None) -> Version:
        """Write a new head version: light (the state of the last evictions) or, with `passes`
        and `fast`, deep."""
        fast = self.consolidated if fast is None else fast
        if not fast.is_finite():
            self.fast = self.consolidated.copy()
            raise FloatingPointError("sleep produced non-finite fast weights; kept the previous version")
        vid = self.head.id + 1
        deep = passes is not None
        total = self.head.tokens_consolidated + self.unsaved_tokens if tokens_consolidated is None else tokens_consolidated
        v = Version(vid, "deep" if deep else "light", end_seq, self.head.start_seq, vid if deep else self.head.base,
                    passes if deep else self.head.passes, list(pending), total, time.time(), cost or {})
        self._write(v, fast)
        self.head, self.consolidated, self.unsaved_tokens = v, fast.copy(), 0
        if deep:
            self.fast = fast.copy()
            (self.folder / PARTIAL).unlink(missing_ok=True)
        self._prune()
        return v

    def reset(self) -> None:
        """Empty memory as a new deep version; older versions stay for rollback."""
        v = Version(self.head.id + 1, "reset", self.last_seq, self.last_seq, self.head.id + 1, 1, time=time.time())
        fast = FastWeights.zeros(self.args)
        self._write(v, fast)
        self.head, self.consolidated, self.fast, self.unsaved_tokens = v, fast, fast.copy(), 0
        self._prune()

    def _prune(self) -> None:
        """Keep the newest `keep` versions and the deep bases they need; then drop journal
        records that no kept version can need."""
        ids = self.version_ids()
        keep = set(ids[-self.keep:])
        for vid in list(keep):
            try:
                keep.add(self.read(vid)[0].base)
            except ValueError:
                pass
        for vid in ids:
            if vid not in keep:
                self._version_path(vid).unlink(missing_ok=True)
        oldest = min(self.read(vid)[0].end_seq for vid in keep)
        if self.journal.records and self.journal.records[0].seq <= oldest:
            self.journal.rewrite(lambda r: r.seq > oldest)

    # -- correction -----------------------------------------------------------------------------
    def _intent(self, op: dict | None) -> None:
        path = self.folder / "intent.json"
        if op is None:
            path.unlink(missing_ok=True)
        else:
            write_atomic(path, json.dumps(op).encode(), self.durable)

    def _finish_intent(self) -> None:
        """Complete a rollback or forget that a crash interrupted."""
        path = self.folder / "intent.json"
        if path.exists():
            op = json.loads(path.read_text())
            self.warnings.append(f"completed an interrupted {op['op']}")
            if op["op"] == "rollback":
                self.rollback(op["to"])
            else:
                self.retract(set(op["seqs"]), op["to"])

    def rollback(self, vid: int) -> Version:
        """Return to kept version `vid`: later versions and the input fed after it are discarded."""
        if vid not in self.version_ids():
            raise ValueError(f"no version {vid}; kept versions: {self.version_ids()}")
        target, fast = self.read(vid)
        self._intent({"op": "rollback", "to": vid})
        self.journal.rewrite(lambda r: r.seq <= target.end_seq)
        for later in self.version_ids():
            if later > vid:
                self._version_path(later).unlink()
        self.head, self.consolidated, self.fast, self.unsaved_tokens = target, fast, fast.copy(), 0
        self._intent(None)
        return target

    def plan_forget(self, seqs: set[int]) -> int:
        """The newest kept version that holds none of `seqs`: where replay starts from."""
        first = min(seqs)
        older = [vid for vid in self.version_ids() if self.read(vid)[0].end_seq < first]
        if not older:
            raise ValueError("that input is older than the oldest kept version; only `reset` removes it")
        return older[-1]

    def retract(self, seqs: set[int], to: int) -> None:
        self._intent({"op": "forget", "seqs": sorted(seqs), "to": to})
        self.journal.rewrite(lambda r: r.seq not in seqs)
        for later in self.version_ids():
            if later > to:
                self._version_path(later).unlink()
        self.head, self.consolidated = self.read(to)
        self.fast, self.unsaved_tokens = self.consolidated.copy(), 0
        self._intent(None)

    # -- backups --------------------------------------------------------------------------------
    def backup(self, dest: str | Path) -> Path:
        dest = Path(dest)
        if dest.exists():
            raise FileExistsError(f"{dest} exists; choose a new path for the backup")
        shutil.copytree(self.folder, dest, ignore=shutil.ignore_patterns("LOCK", "*.tmp"))
        return dest

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    def close(self) -> None:
        self.journal.close()
        self._lock_file.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def model_of(folder: str | Path) -> str | None:
    """The model directory a memory folder was made with (as recorded at creation)."""
    try:
        return json.loads((Path(folder) / "memory.json").read_text()).get("model") or None
    except (OSError, ValueError):
        return None


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def restore(backup: str | Path, folder: str | Path) -> None:
    """Copy a backup into place as `folder` (which must not be in use)."""
    backup, folder = Path(backup), Path(folder)
    if not (backup / "memory.json").exists():
        raise FileNotFoundError(f"{backup} is not a memory backup (no memory.json)")
    if folder.exists():
        lock = open(folder / "LOCK", "a+") if folder.is_dir() else None
        try:
            if lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MemoryError_(f"memory {folder} is in use; close it first") from None
        aside = folder.with_name(folder.name + f".before-restore-{int(time.time())}")
        folder.rename(aside)
        if lock:
            lock.close()
    shutil.copytree(backup, folder)
