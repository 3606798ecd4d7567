"""One Ray task per image; the driver gathers each image's verdicts, counts by severity and errors.

Ray schedules the tasks (https://docs.ray.io/en/latest/ray-core/tasks.html): ``ray.init`` starts a
local instance with one worker per core, or joins the cluster at ``--ray ADDRESS``; nothing else
changes. On a cluster every node needs nospy installed, the images at the same paths and a database
all of them reach (PostgreSQL through ``NOSPY_DATABASE_URL``).

With the content cache, the first image runs alone before the others fan out: releases of one
product line share most of their files, and analysing those once, instead of once per worker that
starts at the same time, costs no wall time (the first image's new contents would otherwise be
analysed by every core in parallel).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from nospy.agreement.schema import Agreement
from nospy.errors import InputError, NospyError
from nospy.findings import ErrorEntry, Severity, Status, Tool

__all__ = ["FleetResult", "ImageResult", "scan_fleet", "scan_one"]


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


def _failed(path: str, message: str) -> ImageResult:
    error = ErrorEntry(source=f"firmware:{Path(path).name}", message=message)
    return ImageResult(path=path, status="error", errors=[error])


def scan_one(path: str, agreement: Agreement | None, cache_url: str | None) -> ImageResult:
    """Scan one image (in a Ray worker): its summary, or an error entry when it cannot be scanned."""
    from nospy.firmware.cache import ContentCache  # noqa: PLC0415 - loaded in the worker, not the CLI
    from nospy.firmware.scan import scan_report  # noqa: PLC0415

    image = Path(path)
    try:
        cache = None
        if cache_url is not None:
            if cache_url not in _CACHES:
                _CACHES[cache_url] = ContentCache.open(cache_url, migrate=False)
            cache = _CACHES[cache_url]
        served = cache.reports_served if cache is not None else 0
        report = scan_report(image, agreement, cache=cache)
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


def warm(cache_url: str | None) -> int:
    """Load the scanning stack (and open the cache) in a Ray worker, so its first image pays no imports.

    Run beside the first image: that worker starts and imports while the first image is scanned, and
    the other images then find two ready workers (a setup hook would need a runtime environment).
    """
    from nospy.firmware.cache import ContentCache  # noqa: PLC0415 - loaded in the worker, not the CLI

    for module in ("nospy.firmware.scan", "nospy.firmware.unpack"):
        importlib.import_module(module)
    if cache_url is not None and cache_url not in _CACHES:
        _CACHES[cache_url] = ContentCache.open(cache_url, migrate=False)
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
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                # workers start with the first tasks: prestarted ones would belong to no job and sit idle
                _system_config={"enable_worker_prestart": False, "prestart_worker_first_driver": False},
                **quiet,
            )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"Ray {'at ' + address if address else '(local)'}: {exc}") from None
    return True


def scan_fleet(
    images: Sequence[Path],
    agreement: Agreement | None = None,
    *,
    ray_address: str | None = None,
    cache_url: str | None = None,
    num_cpus: int | None = None,
    on_result: Callable[[ImageResult], None] = lambda _: None,
) -> FleetResult:
    """Scan every image in a Ray task; ``cache_url`` is the content cache's database (``None``: no cache)."""
    import ray  # noqa: PLC0415 - Ray is heavy; only this command loads it

    started = _init(ray, ray_address, num_cpus)
    try:
        task = ray.remote(num_cpus=1)(scan_one)
        if cache_url is not None and len(images) > 1:  # see `warm`; its result is not needed
            ray.remote(num_cpus=1)(warm).remote(cache_url)
        results: dict[int, ImageResult] = {}
        order = list(range(len(images)))
        waves = [order[:1], order[1:]] if cache_url is not None and len(order) > 1 else [order]
        for wave in waves:
            pending = {task.remote(str(images[i].resolve()), agreement, cache_url): i for i in wave}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(done[0])
                try:
                    result: ImageResult = ray.get(done[0])
                except ray.exceptions.RayError as exc:  # the worker died (out of memory, a crash)
                    result = _failed(str(images[i]), f"worker failed: {type(exc).__name__}: {exc}")
                result = result.model_copy(update={"path": str(images[i])})
                results[i] = result
                on_result(result)
    finally:
        if started:
            ray.shutdown()
    return FleetResult(agreement=agreement.id if agreement else None, images=[results[i] for i in order])
