"""The log writer: a C2SP tlog-tiles log in a directory, with a batching, deduplicating sequencer.

Layout: ``checkpoint`` and ``tile/...`` are the public log (tlog-tiles, tlog-checkpoint); ``.nospy/``
holds the writer's private state (configuration, lock, journal, temporary files) and is not served.

Durability and crash safety: a batch is appended by (1) writing and fsyncing a journal that names
every tile and bundle the batch will write, (2) writing each file to ``.nospy/tmp``, fsyncing it and
renaming it into place, fsyncing the directories, (3) replacing ``checkpoint`` atomically (fsynced)
and (4) removing the journal. Only then are the entries acknowledged. The signed checkpoint is the
commit point: if the process dies before (3), the next writer finds the journal with a checkpoint
still at the old size and deletes the batch's files, so no stale tile can later sit inside the
published tree; files of a batch never overwrite a file the published checkpoint needs.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nospy import keys
from nospy._fileio import read_limited, write_atomic
from nospy.errors import InputError, NospyError, VerificationError
from nospy.ledger import merkle
from nospy.ledger.checkpoint import Checkpoint, CosignerKey, open_checkpoint, parse_cosigner_key, sign_checkpoint
from nospy.ledger.tiles import (
    MAX_ENTRY,
    TILE_WIDTH,
    TileReader,
    bundle_path,
    encode_bundle,
    parse_bundle,
    parse_tile_path,
    split_tile,
    tile_path,
    tile_width,
)
from nospy.ledger.witness import WitnessClient

__all__ = ["LogConfig", "LogWriter", "Sequencer", "check_writer_state", "init_log", "pending_batch", "read_config"]

PRIVATE_DIR = ".nospy"
_CONFIG = "config.json"
_JOURNAL = "journal.json"
_MERGE_AT = 1 << 16  # recent entries kept in a dict before they move into the sorted numpy index


class WitnessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="The witness's submission prefix (add-checkpoint is under it).")
    key: str = Field(description="The witness's cosigner verifier key.")


class LogConfig(BaseModel):
    """The writer's configuration, written by `nospy log init`."""

    model_config = ConfigDict(extra="forbid")
    origin: str = Field(description="Checkpoint origin line of the log.")
    log_key: str = Field(description="The log's verifier key (signed-note vkey).")
    signing_key: str = Field(description="Path of the log's signing key file.")
    trusted: list[str] = Field(default_factory=list, description="Vendor verifier keys whose manifests are accepted.")
    witnesses: list[WitnessConfig] = Field(default_factory=list, description="Witnesses asked to cosign checkpoints.")

    def verifier(self) -> keys.VerifierKey:
        return keys.parse_verifier_key(self.log_key)

    def trusted_keys(self) -> list[keys.VerifierKey]:
        return [keys.parse_verifier_key(k) for k in self.trusted]


def read_config(root: Path) -> LogConfig:
    path = root / PRIVATE_DIR / _CONFIG
    try:
        return LogConfig.model_validate_json(read_limited(path, 1 << 20))
    except ValidationError as exc:
        raise InputError(f"{path}: not a nospy log configuration: {exc.errors(include_url=False)[0]['msg']}") from None


def init_log(
    root: Path,
    origin: str,
    key: keys.SigningKey,
    key_path: Path,
    trusted: Sequence[keys.VerifierKey],
    *,
    witnesses: Sequence[tuple[str, CosignerKey]] = (),
) -> None:
    """Create an empty log in ``root`` (which must be empty or missing) and sign its size-0 checkpoint."""
    if "\n" in origin or not origin:
        raise InputError("origin must be one non-empty line")
    if root.exists() and any(root.iterdir()):
        raise InputError(f"{root}: not empty; a log is created in a new directory")
    (root / PRIVATE_DIR / "tmp").mkdir(parents=True, exist_ok=True)
    config = LogConfig(
        origin=origin,
        log_key=str(key.verifier),
        signing_key=str(key_path.resolve()),
        trusted=[str(k) for k in trusted],
        witnesses=[WitnessConfig(url=url, key=str(k)) for url, k in witnesses],
    )
    write_atomic(root / PRIVATE_DIR / _CONFIG, (config.model_dump_json(indent=2) + "\n").encode())
    write_atomic(root / "checkpoint", sign_checkpoint(Checkpoint(origin, 0, merkle.EMPTY_ROOT), key).encode())


def pending_batch(journal: bytes, size: int) -> list[str]:
    """The files a batch's journal says to delete, given the size of the log's signed checkpoint.

    A batch that reached its checkpoint (``size`` is its new size) deletes nothing. One that did
    not (``size`` is its old size) deletes its files, and each must be a canonical tile or bundle
    path that reaches past the old size and not past the new one: such a file is not part of any
    published tree. `VerificationError` for anything else, which no writer of this log at this
    checkpoint can have written.
    """
    try:
        plan = json.loads(journal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError(f"{PRIVATE_DIR}/{_JOURNAL}: not JSON: {exc}") from None
    if not (
        isinstance(plan, dict)
        and set(plan) == {"old_size", "new_size", "paths"}
        and all(type(plan[k]) is int for k in ("old_size", "new_size"))
        and isinstance(plan["paths"], list)
        and all(isinstance(p, str) for p in plan["paths"])
    ):
        raise VerificationError(f"{PRIVATE_DIR}/{_JOURNAL}: not a batch journal")
    old, new, paths = plan["old_size"], plan["new_size"], plan["paths"]
    if not 0 <= old < new:
        raise VerificationError(f"{PRIVATE_DIR}/{_JOURNAL}: sizes {old} -> {new} do not grow the log")
    if size == new:
        return []
    if size != old:
        raise VerificationError(
            f"{PRIVATE_DIR}/{_JOURNAL}: a batch from size {old} to {new}, but the checkpoint is at {size}: "
            "the log directory was changed"
        )
    for rel in paths:
        try:
            tp = parse_tile_path(rel)
        except InputError as exc:
            raise VerificationError(f"{PRIVATE_DIR}/{_JOURNAL}: {exc}") from None
        end = (tp.index * TILE_WIDTH + tp.width) << (8 * (tp.level or 0))
        if not old < end <= new:
            raise VerificationError(
                f"{PRIVATE_DIR}/{_JOURNAL}: {rel} is not a file of a batch from size {old} to {new}"
            )
    return list(paths)


def check_writer_state(root: Path, cp: Checkpoint, log_key: keys.VerifierKey) -> bool:
    """Check a log directory's private writer state against its verified checkpoint ``cp``.

    Returns False when ``root`` has no ``.nospy/`` (a log written or copied by anything else:
    the public log audits on its own). Otherwise raises `VerificationError` if the next writer
    would go wrong: a configuration that does not parse, names another origin or log key, or a
    signing key file that is not there; or a pending batch journal that disagrees with the
    checkpoint (see `pending_batch`). The dedup index is not stored: each writer rebuilds it from
    the level-0 tiles, which the public audit has checked against the entries.
    """
    private = root / PRIVATE_DIR
    if not private.is_dir():
        return False
    try:
        config = read_config(root)
        verifier = config.verifier()
        trusted = config.trusted_keys()
        witnesses = [parse_cosigner_key(w.key) for w in config.witnesses]
    except InputError as exc:
        raise VerificationError(f"{PRIVATE_DIR}/{_CONFIG}: {exc}") from None
    del trusted, witnesses  # parsed only: a key that does not parse stops the writer
    if config.origin != cp.origin:
        raise VerificationError(f"{PRIVATE_DIR}/{_CONFIG}: origin {config.origin!r}, the checkpoint's is {cp.origin!r}")
    if verifier != log_key:
        raise VerificationError(f"{PRIVATE_DIR}/{_CONFIG}: the log key is not the key the checkpoint was verified with")
    if not Path(config.signing_key).is_file():
        raise VerificationError(f"{PRIVATE_DIR}/{_CONFIG}: signing key file {config.signing_key} is not there")
    journal = private / _JOURNAL
    if journal.exists():
        pending_batch(read_limited(journal, 1 << 24), cp.size)
    return True


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prefixes(hashes: bytes) -> np.ndarray:
    """The first 8 bytes of each 32-byte hash as uint64: the dedup index key."""
    rows = np.frombuffer(hashes, dtype=np.uint8).reshape(-1, merkle.HASH_SIZE)
    return np.ascontiguousarray(rows[:, :8]).view("<u8").ravel()


class LogWriter:
    """Appends entries to a log directory. One writer per log at a time (an exclusive lock)."""

    def __init__(self, root: Path, key: keys.SigningKey | None = None) -> None:
        self.root = root
        self.config = read_config(root)
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="nospy-fsync")
        private = root / PRIVATE_DIR
        (private / "tmp").mkdir(exist_ok=True)
        self._lock_fd = os.open(private / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise InputError(f"{root}: another process is writing this log") from None
        try:
            self.key = key if key is not None else keys.read_signing_key(Path(self.config.signing_key))
            if str(self.key.verifier) != self.config.log_key:
                raise InputError("the signing key is not the log's key")
            self._witnesses = [WitnessClient(w.url, parse_cosigner_key(w.key)) for w in self.config.witnesses]
            self._load_state()
        except BaseException:
            self.close()
            raise

    # -- opening ------------------------------------------------------------------------------

    def _load_state(self) -> None:
        self._recover()
        signed = open_checkpoint(
            read_limited(self.root / "checkpoint", 1 << 16), [self.key.verifier], origin=self.config.origin
        )
        self.checkpoint = signed.checkpoint
        self.size = self.checkpoint.size
        self._load_edge()
        self._load_index()

    def _recover(self) -> None:
        """Undo a batch that died before its checkpoint was written (see the module docstring)."""
        private = self.root / PRIVATE_DIR
        for tmp in (private / "tmp").iterdir():
            tmp.unlink()
        journal = private / _JOURNAL
        if not journal.exists():
            return
        cp = open_checkpoint(read_limited(self.root / "checkpoint", 1 << 16), [self.key.verifier]).checkpoint
        # a journal that names a file the published tree needs (or a path outside the log) is
        # refused before anything is deleted: recovery must never be what breaks a log
        doomed = pending_batch(read_limited(journal, 1 << 24), cp.size)
        dirs = set()
        for rel in doomed:
            (self.root / rel).unlink(missing_ok=True)
            dirs.add((self.root / rel).parent)
        for d in dirs:  # the deletions must be durable before the journal that names them goes
            if d.is_dir():
                _fsync_dir(d)
        journal.unlink()
        _fsync_dir(private)

    def _read(self, rel: str) -> bytes:
        return read_limited(self.root / rel, 1 << 25)

    def _load_edge(self) -> None:
        """The rightmost partial tile of each level and the partial entry bundle."""
        self._partial: list[list[bytes]] = []
        size, level = self.size, 0
        while size >> (8 * level):
            width = (size >> (8 * level)) % TILE_WIDTH
            index = size >> (8 * (level + 1))
            self._partial.append(split_tile(self._read(tile_path(level, index, width)), width) if width else [])
            level += 1
        width = size % TILE_WIDTH
        self._bundle = parse_bundle(self._read(bundle_path(size // TILE_WIDTH, width)), width) if width else []

    def _load_index(self) -> None:
        chunks = []
        for n in range(-(-self.size // TILE_WIDTH)):
            chunks.append(self._read(tile_path(0, n, tile_width(0, n, self.size))))
        data = b"".join(chunks)
        if len(data) != self.size * merkle.HASH_SIZE:
            raise VerificationError("level-0 tiles do not cover the checkpoint")
        prefixes = _prefixes(data)
        order = np.argsort(prefixes, kind="stable")
        self._keys = prefixes[order]
        self._positions = order.astype(np.int64)
        self._recent: dict[bytes, int] = {}

    def close(self) -> None:
        self._pool.shutdown()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dedup ------------------------------------------------------------------------------

    def _leaf_at(self, index: int) -> bytes:
        n, offset = divmod(index, TILE_WIDTH)
        tile = self._read(tile_path(0, n, tile_width(0, n, self.size)))
        return tile[offset * merkle.HASH_SIZE : (offset + 1) * merkle.HASH_SIZE]

    def _lookup(self, hashes: list[bytes]) -> dict[int, int]:
        """Batch positions whose leaf hash is already logged -> their log index."""
        found: dict[int, int] = {}
        for i, h in enumerate(hashes):
            idx = self._recent.get(h)
            if idx is not None:
                found[i] = idx
        if len(self._keys) and hashes:
            batch = _prefixes(b"".join(hashes))
            at = np.searchsorted(self._keys, batch)
            at_clipped = np.minimum(at, len(self._keys) - 1)
            for i in np.nonzero(self._keys[at_clipped] == batch)[0].tolist():
                j = int(at_clipped[i])
                while j < len(self._keys) and self._keys[j] == batch[i]:  # equal prefixes: compare in full
                    index = int(self._positions[j])
                    if self._leaf_at(index) == hashes[i]:
                        found[i] = index
                        break
                    j += 1
        return found

    def _remember(self, hashes: list[bytes], first: int) -> None:
        for i, h in enumerate(hashes):
            self._recent[h] = first + i
        if len(self._recent) >= _MERGE_AT:
            items = sorted(self._recent.items(), key=lambda kv: kv[1])
            keys_new = _prefixes(b"".join(h for h, _ in items))
            pos_new = np.fromiter((i for _, i in items), dtype=np.int64, count=len(items))
            all_keys = np.concatenate([self._keys, keys_new])
            order = np.argsort(all_keys, kind="stable")
            self._keys = all_keys[order]
            self._positions = np.concatenate([self._positions, pos_new])[order]
            self._recent = {}

    # -- appending --------------------------------------------------------------------------

    def add(self, entries: Sequence[bytes]) -> list[int]:
        """Append ``entries`` (duplicates get their existing index) and return their indices once
        the new checkpoint is durable."""
        for e in entries:
            if len(e) > MAX_ENTRY:
                raise InputError(f"entry of {len(e)} bytes is above the 65,535-byte limit")
        hashes = [merkle.leaf_hash(e) for e in entries]
        existing = self._lookup(hashes)
        result: list[int] = []
        batch: dict[bytes, int] = {}
        new_entries: list[bytes] = []
        new_hashes: list[bytes] = []
        for i, (entry, h) in enumerate(zip(entries, hashes, strict=True)):
            if i in existing:
                result.append(existing[i])
            elif h in batch:
                result.append(batch[h])
            else:
                batch[h] = self.size + len(new_entries)
                result.append(batch[h])
                new_entries.append(entry)
                new_hashes.append(h)
        if new_entries:
            first = self.size
            try:
                self._append(new_entries, new_hashes)
            except BaseException:
                # a failed batch (disk full, I/O error) is rolled back as after a crash, so the
                # files on disk and this writer's view of the tree cannot drift apart
                self._load_state()
                raise
            self._remember(new_hashes, first)
            if self._witnesses:
                self._cosign()
        return result

    def _append(self, entries: list[bytes], hashes: list[bytes]) -> None:
        old_size = self.size
        new_size = old_size + len(entries)
        files: dict[str, bytes] = {}

        bundle = self._bundle + entries
        n, pos = old_size // TILE_WIDTH, 0
        while len(bundle) - pos >= TILE_WIDTH:
            files[bundle_path(n)] = encode_bundle(bundle[pos : pos + TILE_WIDTH])
            pos += TILE_WIDTH
            n += 1
        new_bundle = bundle[pos:]
        if new_bundle:
            files[bundle_path(n, len(new_bundle))] = encode_bundle(new_bundle)

        partials: list[list[bytes]] = []
        carry, level = hashes, 0
        while carry or level < len(self._partial):
            old = self._partial[level] if level < len(self._partial) else []
            if not carry:
                partials.append(old)
                level += 1
                continue
            row = old + carry
            n, pos = (old_size >> (8 * level)) // TILE_WIDTH, 0
            carry = []
            while len(row) - pos >= TILE_WIDTH:
                chunk = row[pos : pos + TILE_WIDTH]
                files[tile_path(level, n)] = b"".join(chunk)
                carry.append(merkle.root_of_units(chunk))
                pos += TILE_WIDTH
                n += 1
            rest = row[pos:]
            if rest:
                files[tile_path(level, n, len(rest))] = b"".join(rest)
            partials.append(rest)
            level += 1

        remainder: bytes | None = None
        for row in partials:
            units = row + ([remainder] if remainder is not None else [])
            if units:
                remainder = merkle.root_of_units(units)
        root = remainder if remainder is not None else merkle.EMPTY_ROOT
        cp = Checkpoint(self.config.origin, new_size, root)
        note = sign_checkpoint(cp, self.key)

        private = self.root / PRIVATE_DIR
        journal = {"old_size": old_size, "new_size": new_size, "paths": sorted(files)}
        write_atomic(private / _JOURNAL, json.dumps(journal).encode())
        _fsync_dir(private)
        dirs: set[Path] = set()
        staged: list[tuple[Path, Path]] = []
        for rel, data in files.items():
            target = self.root / rel
            if not target.parent.is_dir():
                self._make_dirs(target.parent, dirs)
            tmp = private / "tmp" / rel.replace("/", "_")
            _write_file(tmp, data)
            staged.append((tmp, target))
            dirs.add(target.parent)
        # fsyncs issued together: the file system commits them in fewer journal flushes than one
        # after another, which is what bounds appends per second on a busy disk
        list(self._pool.map(_fsync_path, [tmp for tmp, _ in staged]))
        for tmp, target in staged:
            tmp.replace(target)
        list(self._pool.map(_fsync_dir, dirs))
        write_atomic(self.root / "checkpoint", note.encode())
        _fsync_dir(self.root)
        (private / _JOURNAL).unlink()

        self.size, self.checkpoint = new_size, cp
        self._partial, self._bundle = partials, new_bundle

    def _cosign(self) -> None:
        """Ask the witnesses to cosign the checkpoint just committed and add their cosignatures.

        Witnesses only ever see a checkpoint that is already durable, so a crash can never leave a
        witness holding a tree the log then forgets. Cosigning is best effort: an unreachable or
        refusing witness leaves the checkpoint with fewer cosignatures, never blocks the log.
        """
        note = self.checkpoint_note
        reader = TileReader(self._read, self.size)
        lines = []
        for witness in self._witnesses:
            line = witness.cosign(note, self.checkpoint, reader, self.key.verifier)
            if line:
                lines.append(line)
        if lines:
            write_atomic(self.root / "checkpoint", (note + "".join(lines)).encode())

    def _make_dirs(self, path: Path, dirs: set[Path]) -> None:
        missing = []
        while not path.is_dir():
            missing.append(path)
            path = path.parent
        for d in reversed(missing):
            d.mkdir()
            dirs.add(d.parent)
            dirs.add(d)

    @property
    def checkpoint_note(self) -> str:
        return (self.root / "checkpoint").read_text()


class Sequencer:
    """Concurrent writers hand entries to one thread that appends them in batches (group commit):
    whatever arrived while the last batch was being made durable goes into the next one."""

    def __init__(self, writer: LogWriter, max_batch: int = 4096) -> None:
        self.writer = writer
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[bytes, Future[int]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="nospy-sequencer", daemon=True)
        self._thread.start()

    def submit(self, entry: bytes, timeout: float = 60.0) -> int:
        """Append one entry; returns its index once durable."""
        fut: Future[int] = Future()
        self._queue.put((entry, fut))
        return fut.result(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                indices = self.writer.add([e for e, _ in batch])
            except NospyError as exc:
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            except BaseException as exc:  # noqa: BLE001 - a writer failure must reach every waiting request
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            for (_, fut), index in zip(batch, indices, strict=True):
                fut.set_result(index)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
