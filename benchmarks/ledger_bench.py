"""Ledger speed figures (not a test): durable appends, audit, and inclusion proofs from tiles.

    .venv/bin/python benchmarks/ledger_bench.py [--entries 1000000] [--proof-size 10000000] [--dir DIR]

1. Durable appends: ``--entries`` 1 KB random entries through `LogWriter.add` in batches of
   ``--batch`` (what the server's group-commit sequencer hands over under load); every batch is
   fsynced and checkpointed before the next starts. Targets: >= 10,000 appends/s.
2. Audit of that log from the directory (every entry re-hashed, every tile rebuilt). Target: < 10 s
   for 1,000,000 entries.
3. find_release (what `nospy check` uses) in a log of ``--find-entries`` release manifests.
4. Inclusion proofs for random entries of a ``--proof-size``-leaf tree, read from its tiles on disk
   (the tiles are built directly from synthetic leaf hashes, as entries play no part in proofs).
   Target: < 1 ms per proof. Two figures: cold, a new `TileReader` per proof with nothing cached
   in the process (what one `nospy log prove` or `nospy check --log` does once it knows the index;
   the files are in the OS page cache, as on any second run), and warm, one `TileCache` shared by
   every proof (what the web service keeps): a cold proof of a random entry hashes about 910 tile
   nodes (the siblings inside three tiles and the tree's right edge), a warm one the 255 of its
   level-0 tile. CPU time is printed beside wall time: on a shared machine the difference is time
   spent waiting for a core.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from nospy import keys
from nospy.ledger import audit_log, find_release, merkle, open_source
from nospy.ledger.checkpoint import Checkpoint, sign_checkpoint
from nospy.ledger.release import entry_bytes, make_release
from nospy.ledger.storage import LogWriter, init_log
from nospy.ledger.tiles import TILE_WIDTH, TileCache, TileReader, tile_path


def bench_appends(root: Path, entries: int, batch: int, size: int) -> None:
    key = keys.generate("bench.example/log")
    (root.parent / "log.skey").write_text(str(key))
    init_log(root, "bench.example/log", key, root.parent / "log.skey", [])
    add_time = 0.0
    start = time.perf_counter()
    with LogWriter(root) as writer:
        done = 0
        while done < entries:
            n = min(batch, entries - done)
            blob = os.urandom(n * size)
            chunk = [blob[i * size : (i + 1) * size] for i in range(n)]
            t = time.perf_counter()
            writer.add(chunk)
            add_time += time.perf_counter() - t
            done += n
    wall = time.perf_counter() - start
    print(
        f"appends: {entries:,} x {size} B in batches of {batch}: {add_time:.1f} s in add() -> "
        f"{entries / add_time:,.0f} durable appends/s ({entries / wall:,.0f}/s wall, incl. making random entries)"
    )
    t, c = time.perf_counter(), time.process_time()
    result = audit_log(open_source(root), key.verifier)
    took, cpu = time.perf_counter() - t, time.process_time() - c
    print(
        f"audit: {result.checkpoint.size:,} entries, {result.files_checked:,} files: {took:.2f} s "
        f"({cpu:.2f} s CPU time); load average {os.getloadavg()}"
    )


def bench_find(root: Path, count: int) -> None:
    """find_release in a log of ``count`` release manifests: the digest's bytes are searched per
    bundle, so only candidate manifests are parsed; the last release logged is found first."""
    vendor, key = keys.generate("acme.example"), keys.generate("bench.example/releases")
    (root.parent / "releases.skey").write_text(str(key))
    init_log(root, "bench.example/releases", key, root.parent / "releases.skey", [vendor.verifier])
    image = root.parent / "fw.bin"
    with LogWriter(root) as writer:
        batch = []
        for i in range(count):
            image.write_bytes(b"firmware image %d" % i)
            batch.append(entry_bytes(make_release(image, vendor, "acme-rx200", f"1.{i}")))
            if len(batch) == 4096 or i == count - 1:
                writer.add(batch)
                batch = []
    for label, i in (("oldest", 0), ("newest", count - 1), ("absent", -1)):
        digest = hashlib.sha256(b"firmware image %d" % i).hexdigest()
        t = time.perf_counter()
        ev = find_release(root, key.verifier, digest, vendor_keys=[vendor.verifier])
        took = time.perf_counter() - t
        assert (ev is None) == (i < 0)
        print(f"find_release in {count:,} manifests, {label} release: {took * 1e3:.1f} ms")


def build_tiles(root: Path, size: int) -> tuple[keys.SigningKey, bytes]:
    """Level-0 tiles of synthetic leaf hashes, and every level above, for a tree of ``size``."""
    sha = merkle.leaf_hash
    level, hashes_below = 0, None
    count = size
    while count:
        out_above: list[bytes] = []
        for n in range(-(-count // TILE_WIDTH)):
            lo, hi = n * TILE_WIDTH, min(count, (n + 1) * TILE_WIDTH)
            if level == 0:
                row = [sha(i.to_bytes(8, "big")) for i in range(lo, hi)]
            else:
                assert hashes_below is not None
                row = hashes_below[lo:hi]
            path = root / tile_path(level, n, hi - lo)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"".join(row))
            if hi - lo == TILE_WIDTH:
                out_above.append(merkle.root_of_units(row))
        hashes_below = out_above
        count = len(out_above)
        level += 1
    key = keys.generate("bench.example/proofs")
    reader = TileReader(open_source_tiles(root), size)
    root_hash = reader.root()
    (root / "checkpoint").write_text(sign_checkpoint(Checkpoint("bench.example/proofs", size, root_hash), key))
    return key, root_hash


def open_source_tiles(root: Path):  # type: ignore[no-untyped-def]
    def fetch(path: str) -> bytes:
        return (root / path).read_bytes()

    return fetch


def bench_proofs(root: Path, size: int, samples: int) -> None:
    if (root / "checkpoint").is_file():  # --proof-dir of an earlier run: reuse its tiles
        size = int((root / "checkpoint").read_text().split("\n")[1])
        root_hash = TileReader(open_source_tiles(root), size).root()
    else:
        t = time.perf_counter()
        _, root_hash = build_tiles(root, size)
        print(f"built tiles for {size:,} leaves in {time.perf_counter() - t:.1f} s")
    source = open_source(root)
    rng = random.Random(1)  # noqa: S311 - sampling, not cryptography
    indices = [rng.randrange(size) for _ in range(samples)]
    cache = TileCache()
    for label, shared in (
        ("cold (a new reader per proof, nothing cached: `nospy log prove`, `nospy check --log`)", False),
        ("warm (one TileCache of hashed tiles shared by every request: the web service's /log pages)", True),
    ):
        verify = 0.0
        times, cpu = [], []
        for index in indices:
            t0, c0 = time.perf_counter(), time.process_time()
            reader = TileReader(source.read, size, cache if shared else None)
            proof = reader.inclusion_proof(index)
            t1, c1 = time.perf_counter(), time.process_time()
            merkle.verify_inclusion(index, size, merkle.leaf_hash(index.to_bytes(8, "big")), proof, root_hash)
            verify += time.perf_counter() - t1
            times.append(t1 - t0)
            cpu.append(c1 - c0)
        times.sort()
        print(
            f"inclusion proof from tiles, {size:,}-leaf tree, {label}:\n"
            f"    mean {sum(times) / samples * 1e3:.3f} ms, median {times[len(times) // 2] * 1e3:.3f} ms, "
            f"p99 {times[int(len(times) * 0.99)] * 1e3:.3f} ms to build "
            f"(CPU time mean {sum(cpu) / samples * 1e3:.3f} ms); "
            f"{verify / samples * 1e3:.3f} ms to verify ({samples} random entries, {len(proof)} hashes each)"
        )
    print(f"load average during the run: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--entry-size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--proof-size", type=int, default=10_000_000)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--dir", type=Path, default=None, help="Scratch directory (default: a temporary one).")
    ap.add_argument("--skip-appends", action="store_true")
    ap.add_argument("--skip-proofs", action="store_true")
    ap.add_argument("--find-entries", type=int, default=100_000, help="Manifests in the find_release log (0: skip).")
    ap.add_argument("--proof-dir", type=Path, default=None, help="Keep (or reuse) the proof tree's tiles here.")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="nospy-bench-", dir=args.dir))
    try:
        if not args.skip_appends:
            bench_appends(scratch / "log", args.entries, args.batch, args.entry_size)
            shutil.rmtree(scratch / "log")
        if args.find_entries:
            bench_find(scratch / "releases", args.find_entries)
            shutil.rmtree(scratch / "releases")
        if not args.skip_proofs:
            proofs = args.proof_dir or scratch / "proofs"
            proofs.mkdir(exist_ok=True)
            bench_proofs(proofs, args.proof_size, args.samples)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
