"""Ray tasks and the driver scan the images; the driver gathers each one's verdicts, counts by severity
and errors.

Ray schedules the tasks (https://docs.ray.io/en/latest/ray-core/tasks.html): ``ray.init`` starts a
local instance with a worker on every core but the driver's, or joins the cluster at ``--ray
ADDRESS``; nothing else changes. On a cluster every node needs nospy installed, the images at the
same paths and a database all of them reach (PostgreSQL through ``NOSPY_DATABASE_URL``).

Ray's start-up (seconds) and shutdown are not waited for idly: the driver scans images itself from
the start, and goes on while Ray's workers take images from the other end of the list (see
`scan_fleet`); every worker loads the scanning stack (`warm`) as soon as Ray is up.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from nospy.agreement.schema import Agreement
from nospy.errors import InputError, NospyError
from nospy.findings import ErrorEntry, Severity, Status, Tool

__all__ = ["FleetResult", "ImageResult", "end_descendants", "scan_fleet", "scan_one"]


class ClauseVerdict(BaseModel):
    clause: str
    status: Status


class ImageResult(BaseModel):
    path: str
    sha256: str | None = None
    status: str = Field(description="fail (a clause fails), pass (none fails), or error (not scanned).")
    verdicts: list[ClauseVerdict] = Field(default_factory=list)
    severities: dict[str, int] = Field(default_factory=dict, description="Findings by severity.")
    errors: list[ErrorEntry] = Field(default_factory=list)
    cached_report: bool = Field(False, description="The whole report came from the content cache.")


class FleetResult(BaseModel):
    tool: Tool = Field(default_factory=Tool)
    agreement: str | None = Field(None, description="The agreement's id, when one was checked.")
    images: list[ImageResult] = Field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(i.status == "fail" for i in self.images)

    @property
    def unreadable(self) -> bool:
        return any(i.status == "error" for i in self.images)


_CACHES: dict[str, Any] = {}  # one engine per database and worker process, reused by its tasks


def _cache(url: str, *, migrate: bool = False) -> Any:
    from nospy.firmware.cache import ContentCache  # noqa: PLC0415 - loaded in the worker, not the CLI

    if url not in _CACHES:
        _CACHES[url] = ContentCache.open(url, migrate=migrate)
    return _CACHES[url]


def _failed(path: str, message: str) -> ImageResult:
    error = ErrorEntry(source=f"firmware:{Path(path).name}", message=message)
    return ImageResult(path=path, status="error", errors=[error])


def scan_one(path: str, agreement: Agreement | None, cache_url: str | None, sha256: str | None = None) -> ImageResult:
    """Scan one image (in a Ray worker): its summary, or an error entry when it cannot be scanned.

    ``sha256``: the image's digest, computed ahead by the driver (see `scan_fleet`).
    """
    from nospy.firmware.scan import scan_report  # noqa: PLC0415 - loaded in the worker, not the CLI

    image = Path(path)
    try:
        cache = _cache(cache_url) if cache_url is not None else None
        served = cache.reports_served if cache is not None else 0
        report = scan_report(image, agreement, cache=cache, sha256=sha256)
    except NospyError as exc:
        return _failed(path, str(exc))
    except Exception as exc:  # noqa: BLE001 - one image the scanner chokes on must not stop the fleet
        return _failed(path, f"internal error {type(exc).__name__}: {exc}")
    counts = Counter(f.severity for f in report.findings)
    return ImageResult(
        path=path,
        sha256=report.target.sha256,
        status="fail" if report.failed else "pass",
        verdicts=[ClauseVerdict(clause=v.clause.value, status=v.status) for v in report.verdicts],
        severities={s.value: counts[s] for s in Severity if counts[s]},
        errors=report.errors,
        cached_report=cache is not None and cache.reports_served > served,
    )


def _hash(image: Path) -> tuple[str, tuple[int, ...]] | None:
    """The image's SHA-256 and what its file was when hashed (see `_unchanged`), or ``None`` (the scan
    then hashes it again and reports what is wrong)."""
    from nospy.firmware.scan import image_sha256  # noqa: PLC0415 - loaded with the scanning stack

    try:
        before = _identity(image)
        digest = image_sha256(image)
        if digest is None or _identity(image) != before:
            return None
        return digest, before
    except Exception:  # noqa: BLE001 - only a head start
        return None


def _identity(image: Path) -> tuple[int, ...]:
    st = image.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _unchanged(image: Path, ahead: tuple[str, tuple[int, ...]] | None) -> str | None:
    """A digest taken ahead, if the file is still the one hashed: one replaced or rewritten meanwhile
    is hashed again, or the report cache would file its report under the old content's digest."""
    try:
        return ahead[0] if ahead is not None and _identity(image) == ahead[1] else None
    except OSError:
        return None


def warm(cache_url: str | None) -> int:
    """Load the scanning stack (and open the cache) in a Ray worker, so its first image pays no imports.

    Sent to every worker as soon as Ray is up, while the driver still scans (see `scan_fleet`).
    """
    for module in ("nospy.firmware.scan", "nospy.firmware.unpack"):
        importlib.import_module(module)
    if cache_url is not None:
        _cache(cache_url)
    return os.getpid()


def _init(ray: Any, address: str | None, num_cpus: int | None) -> bool:
    """Join or start Ray; True when this call started it (and so must shut it down)."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # an offline tool: no usage report to Ray's servers
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address is not None:
            ray.init(address=address, **quiet)
        else:
            ray.init(
                num_cpus=num_cpus or local_workers(),
                include_dashboard=False,
                # workers start with the first tasks: prestarted ones would belong to no job and sit idle
                _system_config={"enable_worker_prestart": False, "prestart_worker_first_driver": False},
                **quiet,
            )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"Ray {'at ' + address if address else '(local)'}: {exc}") from None
    return True


def local_workers() -> int:
    """Ray workers of a local Ray: a core each but the driver's, which scans images too (see `scan_fleet`)."""
    return max(1, (os.cpu_count() or 1) - 1)


_RAY_NICE = 10  # a local Ray's processes run at this CPU priority (nice), below the driver's
_RAY_STOP_SECONDS = 0.7  # a local Ray stops its processes one by one, each with a grace period


def _kill_autoscaler_monitor() -> None:
    """Kill a local Ray's autoscaler monitor at once, before ``ray.shutdown``.

    The shutdown stops Ray's processes one by one, each given a second to exit on SIGTERM; the monitor
    (of no use on one machine, and holding nothing of ours) takes all of it: 1.0 of the shutdown's
    1.5 s. Ray offers no public way to leave it out, so this reads Ray's own process table; when a
    Ray release changes it, nothing is killed here and the shutdown takes its second.
    """
    with contextlib.suppress(ImportError, AttributeError, KeyError, TypeError, OSError):
        from ray._private import ray_constants, worker  # noqa: PLC0415 - Ray's internals, only here

        node: Any = worker._global_node
        monitors: list[Any] = node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []) if node else []
        for info in monitors:
            info.process.kill()


def end_descendants() -> None:
    """SIGKILL every process descended from this one (Linux; elsewhere nothing is done).

    For a process about to end that leaves a local Ray behind (`scan_fleet`'s ``leave_ray``). Ray's
    fate sharing would end its processes with this one, but not at once: its agents wait out GCS
    timeouts for seconds, and a process Ray forks just then misses its parent-death signal. So they
    are all stopped first (a stopped process forks no more), found again until none is new, and
    then killed.
    """
    stopped: set[int] = set()
    while new := [pid for pid in _descendants() if pid not in stopped]:
        for pid in new:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
            stopped.add(pid)
    for pid in stopped:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _descendants() -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # pid (comm) state ppid ...: the command may hold spaces and parentheses, the last ")" ends it
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), []):
            found.append(pid)
            todo.append(pid)
    return found


class _Pace:
    """How long the driver takes per image (the first, analysed in full, aside)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._began = 0.0

    def __enter__(self) -> None:
        self._began = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        self.times.append(time.perf_counter() - self._began)

    def alone(self, left: int) -> bool:
        """The driver would scan ``left`` more images alone in the time a local Ray takes to stop."""
        later = self.times[1:]
        return bool(later) and left * sum(later) / len(later) <= _RAY_STOP_SECONDS


class _Starting:
    """Ray being started (or joined) in a thread, so the driver can scan meanwhile.

    The same thread shuts a local Ray down when told to (`release`, `stop`): the processes of a
    local Ray die with the thread that started them (they are made to, so none outlives the driver),
    so it may not end before. As soon as Ray is up it sends every worker `warm`; `warm` tells when
    one of them is done.
    """

    def __init__(self, ray: Any, address: str | None, num_cpus: int | None, cache_url: str | None) -> None:
        self.ray = ray
        self.address = address
        self.started = False  # this process called ray.init (a local Ray, or a cluster it connected to)
        self.local = False  # ... and started a local Ray, whose stopping takes seconds
        self.error: InputError | None = None
        self.workers = 0
        self._warming: list[Any] = []
        self._warm = False
        self._lock = threading.Lock()  # tasks are sent, or the Ray abandoned (`abandon`), not both
        self._up = threading.Event()
        self._end = threading.Event()
        self._stop_error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(address, num_cpus, cache_url), name="ray-start", daemon=True
        )
        self._thread.start()

    def _run(self, address: str | None, num_cpus: int | None, cache_url: str | None) -> None:
        try:
            if address is None and not self.ray.is_initialized() and sys.platform == "linux":
                # the processes of a local Ray inherit this thread's priority: their start-up (seconds
                # of CPU in half a dozen processes) must not starve the driver's scanning meanwhile;
                # where the system refuses, they start at the driver's priority
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _RAY_NICE)
            self.started = _init(self.ray, address, num_cpus)
            self.local = self.started and address is None
            self.workers = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
            with self._lock:
                if not self._end.is_set():  # the driver may have scanned every image meanwhile
                    task = self.ray.remote(num_cpus=1)(warm)
                    self._warming = [task.remote(cache_url) for _ in range(self.workers)]
        except InputError as exc:
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - reported to the driver, which raises it in its thread
            self.error = InputError(f"Ray: {type(exc).__name__}: {exc}")
        finally:
            self._up.set()
        self._end.wait()
        try:
            if self.local:
                _kill_autoscaler_monitor()
            if self.started:
                self.ray.shutdown()
        except BaseException as exc:  # noqa: BLE001 - raised again by `stop`, in the driver's thread
            self._stop_error = exc

    @property
    def up(self) -> bool:
        """Ray is up (or failed to start: `wait` raises the error)."""
        return self._up.is_set()

    def warm(self) -> bool:
        """A worker has loaded the scanning stack (or Ray failed to start: `wait` raises the error)."""
        if not self._warm and self.up:
            if self.error is not None or not self._warming:
                self._warm = True
            else:
                done, _ = self.ray.wait(self._warming, num_returns=1, timeout=0)
                self._warm = bool(done)
        return self._warm

    def wait(self) -> None:
        self._up.wait()
        if self.error is not None:
            raise self.error

    def release(self) -> None:
        """No more tasks will be sent: a local Ray shuts down now, while the driver goes on scanning."""
        self._end.set()

    def abandon(self) -> bool:
        """Leave a local Ray that has had no task (starting, up, or failed to start: it was not
        needed) to end with this process (see `scan_fleet`'s ``leave_ray``), and send it none from
        now on; False, and nothing done, for one that has had tasks (its workers are stopped by
        `stop`), one this process joined, or a cluster."""
        with self._lock:
            joined = self.up and not self.local and self.error is None  # already up in this process
            if self.address is not None or self._warming or joined:
                return False
            self._end.set()
            return True

    def stop(self, *, quiet: bool = False) -> None:
        """Shut a local Ray down (or disconnect) and end the thread; ``quiet``: keep its errors to itself."""
        self._end.set()
        self._thread.join()
        if self._stop_error is not None and not quiet:
            raise self._stop_error


def scan_fleet(
    images: Sequence[Path],
    agreement: Agreement | None = None,
    *,
    ray_address: str | None = None,
    cache_url: str | None = None,
    num_cpus: int | None = None,
    on_result: Callable[[ImageResult], None] = lambda _: None,
    leave_ray: Callable[[], None] | None = None,
) -> FleetResult:
    """Scan every image, in Ray tasks and in the driver; ``cache_url`` is the content cache's database.

    ``cache_url`` ``None``: no cache. The driver scans images itself, from the first one on, while Ray
    starts (seconds for a local Ray) and while its workers load the scanning stack; from then on it
    keeps every worker two tasks ahead, taking images from the end of the list, and goes on scanning
    from the front: the driver never waits for Ray to come up. With a cache the first image is
    always scanned first and alone: releases of one product line share most of their files, and its
    new contents are then analysed once, not by every worker at the same time. The driver creates or
    migrates the cache's schema first. A local Ray has a worker for every core but the driver's, and
    its processes run at a lower CPU priority than the driver (`_RAY_NICE`): they take the cores the
    driver leaves, never the one it scans on. Once the driver alone would end the fleet in the time a
    local Ray takes to stop, Ray gets no more tasks and stops while the driver scans the last images.

    ``leave_ray``: when the driver has scanned every image and the local Ray has had no task (it is
    most often still starting: ``ray.init`` cannot be interrupted, and on a busy machine it takes
    seconds more; or it failed to start), it is not waited for: ``leave_ray`` is called instead,
    and the caller ends its process right after, without the interpreter's exit handlers
    (`os._exit`), once it has ended Ray's processes (`end_descendants`).
    """
    import ray  # noqa: PLC0415 - Ray is heavy; only this command loads it

    starting = _Starting(ray, ray_address, num_cpus, cache_url)
    paced = _Pace()
    results: dict[int, ImageResult] = {}
    todo = deque(range(len(images)))
    pending: dict[Any, int] = {}

    def done(i: int, result: ImageResult) -> None:
        result = result.model_copy(update={"path": str(images[i])})
        results[i] = result
        on_result(result)

    def collect(refs: list[Any]) -> None:
        for ref in refs:
            i = pending.pop(ref)
            try:
                result: ImageResult = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the worker died (out of memory, a crash)
                result = _failed(str(images[i]), f"worker failed: {type(exc).__name__}: {exc}")
            done(i, result)

    ahead: dict[int, Future[tuple[str, tuple[int, ...]] | None]] = {}
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash-ahead")
    left = False
    try:
        if cache_url is not None:
            _cache(cache_url, migrate=True)
        task = None
        released = False
        while todo or pending:
            # a local Ray takes seconds to stop: once the driver alone would end the fleet in that
            # time, Ray gets no more tasks, and stops as soon as it has none while the driver goes on
            stretch = released or (starting.local and paced.alone(len(todo)))
            if stretch and not released and not pending:
                starting.release()
                released = True
            elif todo and results and not stretch and starting.warm():
                if task is None:
                    starting.wait()
                    task = ray.remote(num_cpus=1)(scan_one)
                while todo and len(pending) < 2 * starting.workers:
                    i = todo.pop()
                    pending[task.remote(str(images[i].resolve()), agreement, cache_url)] = i
            if pending:  # what Ray has done; when the driver has no image left, wait for the next one
                ready, _ = ray.wait(list(pending), num_returns=len(pending) if todo else 1, timeout=0 if todo else None)
                collect(ready)
            if todo:
                i = todo.popleft()
                digest = ahead.pop(i, None)
                if todo:  # the next image is hashed in a thread (hashing lets go of the GIL) during this one
                    ahead[todo[0]] = hasher.submit(_hash, images[todo[0]])
                with paced:
                    known = _unchanged(images[i], digest.result()) if digest is not None else None
                    done(i, scan_one(str(images[i].resolve()), agreement, cache_url, known))
        left = leave_ray is not None and starting.abandon()
        if not left:
            starting.wait()
    except BaseException:
        starting.stop(quiet=True)  # the error on the way out is the one to see
        raise
    finally:
        hasher.shutdown(wait=False, cancel_futures=True)
        for url in [u for u in _CACHES if u == cache_url]:
            _CACHES.pop(url).close()  # the driver's connections, closed before the process ends
    if not left:
        starting.stop()
    elif leave_ray is not None:
        leave_ray()
    return FleetResult(agreement=agreement.id if agreement else None, images=[results[i] for i in range(len(images))])
