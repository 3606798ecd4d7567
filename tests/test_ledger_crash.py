"""Crash safety: SIGKILL the log writer at random points, many times. No acknowledged entry may be
lost, and the log must audit after every kill (before and after the next writer recovers it)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from nospy import keys
from nospy.ledger import audit_log, open_source
from nospy.ledger.storage import PRIVATE_DIR, init_log
from nospy.ledger.tiles import TILE_WIDTH, bundle_path, parse_bundle, tile_width

KILLS = 40
ORIGIN = "log.example/crash"

# The writer: appends batches of random size forever and prints an acknowledgement after each add()
# returns, i.e. once the batch is durable. Entries are unique: run number and counter.
WRITER = """
import random, sys, time
from pathlib import Path
from nospy.ledger.storage import LogWriter
root, run = Path(sys.argv[1]), int(sys.argv[2])
rng = random.Random(run)
with LogWriter(root) as writer:
    i = 0
    while True:
        n = rng.choice([1, 5, 50, 255, 256, 257])
        batch = [b"run %d entry %d " % (run, i + k) + b"." * rng.randrange(0, 100) for k in range(n)]
        indices = writer.add(batch)
        for entry, index in zip(batch, indices):
            sys.stdout.write("ACK %d %s\\n" % (index, entry.hex()))
        sys.stdout.flush()
        i += n
        time.sleep(rng.random() * 0.003)  # keeps the log small; kills still land mid-batch
"""


def _entries(root: Path, size: int) -> list[bytes]:
    source = open_source(root)
    out: list[bytes] = []
    for n in range(-(-size // TILE_WIDTH)):
        width = tile_width(0, n, size)
        out += parse_bundle(source.read(bundle_path(n, width)), width)
    return out


def test_sigkill_at_random_points(tmp_path: Path) -> None:
    key = keys.generate(ORIGIN)
    (tmp_path / "log.skey").write_text(str(key))
    root = tmp_path / "log"
    init_log(root, ORIGIN, key, tmp_path / "log.skey", [])
    rng = random.Random(6962)  # noqa: S311 - reproducible kill times, not cryptography
    acked: dict[int, bytes] = {}
    interrupted = 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    for run in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(run)], stdout=subprocess.PIPE, env=env, text=True
        )
        lines: list[str] = []

        def read(p: subprocess.Popen[str] = proc, out: list[str] = lines) -> None:
            for line in p.stdout or []:
                out.append(line)

        reader = threading.Thread(target=read)
        reader.start()
        if run % 2:  # half the kills land after the writer has acknowledged something
            deadline = time.monotonic() + 60
            while not lines and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.2))
        else:  # the others at any time, including while the writer starts and recovers the log
            time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join()
        for line in lines:
            if not line.endswith("\n"):
                continue  # a line cut by the kill was never a complete acknowledgement
            _, position, hexed = line.split()
            acked[int(position)] = bytes.fromhex(hexed)
        interrupted += (root / PRIVATE_DIR / "journal.json").exists()
        result = audit_log(open_source(root), key.verifier)
        entries = _entries(root, result.checkpoint.size)
        for at, entry in acked.items():
            assert at < len(entries), f"acknowledged entry {at} lost after kill {run}"
            assert entries[at] == entry, f"acknowledged entry {at} changed after kill {run}"
    assert len(acked) >= KILLS // 2  # every other writer acknowledged at least one batch before its kill
    print(f"{KILLS} kills, {interrupted} in the middle of a batch, {len(acked)} entries acknowledged")
