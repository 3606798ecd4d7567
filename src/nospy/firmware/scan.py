"""Firmware evidence: every detector over one image's tree, as an evidence source for ``nospy check``.

`DETECTORS` is the one registry: order matters where a detector reads an earlier one's facts
(listeners read the services started at boot). One detector failing on unexpected input becomes an
error entry; the others still run.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nospy.agreement.schema import Agreement, Clause
from nospy.errors import InputError, NospyError
from nospy.findings import ErrorEntry, Finding, Report, Source, Target
from nospy.firmware import accounts, backdoors, components, credentials, endpoints, keys, listeners, services
from nospy.firmware.cache import ContentCache, analysis_version, digest, rules_digest
from nospy.firmware.context import Context, Detector
from nospy.firmware.geo import CountryLookup
from nospy.firmware.tree import DirectoryTree, FileTree
from nospy.verify import Progress, SourceResult, check, verdicts

__all__ = ["DETECTORS", "FirmwareSource", "ScanResult", "image_sha256", "open_tree", "scan_report", "scan_tree"]

DETECTORS: tuple[Detector, ...] = (
    accounts.DETECTOR,
    services.SERVICES,
    services.CONSOLES,
    keys.KEYS,
    credentials.CREDENTIALS,
    backdoors.BACKDOORS,
    listeners.LISTENERS,
    endpoints.ENDPOINTS,
    components.COMPONENTS,
)


def open_tree(path: Path) -> FileTree:
    """A root filesystem folder as it is; an image file through the unpacker."""
    if path.is_dir():
        return DirectoryTree(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    try:
        # imported by name when needed: folders must scan without the unpacker's dependencies loaded
        unpack = importlib.import_module("nospy.firmware.unpack")
    except ModuleNotFoundError as exc:
        if exc.name != "nospy.firmware.unpack":
            raise
        raise InputError(
            f"{path}: image unpacking not available in this build; extract the root filesystem and scan the folder"
        ) from None
    open_image: Callable[[Path], FileTree] = unpack.open_image
    return open_image(path)


def image_sha256(path: Path) -> str | None:
    """The SHA-256 of the image file at ``path``; ``None`` for a folder."""
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class ScanResult:
    findings: list[Finding]
    errors: list[ErrorEntry]
    facts: dict[str, list[object]] = field(default_factory=dict)
    checked: set[Clause] = field(default_factory=set)


def _checked(agreement: Agreement | None, geo: CountryLookup | None) -> set[Clause]:
    """Clauses a firmware scan tests: the implied backdoor clause, and the sections it can compare."""
    out = {Clause.BACKDOORS}
    if agreement is None:
        return out
    for clause, present in (
        (Clause.ACCOUNTS, agreement.accounts is not None),
        (Clause.SERVICES, agreement.services is not None),
        (Clause.ENDPOINTS, agreement.endpoints is not None),
        (Clause.KEYS, agreement.keys is not None),
        (Clause.DATA, agreement.data is not None and geo is not None),
    ):
        if present:
            out.add(clause)
    return out


# Per-file analysers whose stored results a cached scan loads in one batch before the detectors run.
_PER_FILE = (
    "backdoors",
    "endpoints",
    "credentials",
    "credentials.elf",
    *keys.ANALYSERS,
    "listeners",
    "components",
    "components.boot",
    "scripts",
    "scripts.rc",
)


def _prefetch(ctx: Context) -> None:
    """Hash every file and load the cache's results for those contents in a few queries.

    Every file is read here, in the tree's order, with or without a cache (see `scan_tree`), so read
    errors come in the same order either way; with a cache, files stored as they were in an image
    seen before are known without reading (`Context.digest_files`).
    """
    hashes = ctx.digest_files()
    analysers = [*_PER_FILE, *(["backdoors+user"] if ctx.rules_dirs else [])]
    ctx.memo.prefetch(hashes, analysers)


def scan_tree(
    tree: FileTree,
    agreement: Agreement | None = None,
    *,
    rules_dirs: Sequence[Path] = (),
    geo: CountryLookup | None = None,
    progress: Progress = lambda _: None,
    detectors: Sequence[Detector] = DETECTORS,
    cache: ContentCache | None = None,
) -> ScanResult:
    ctx = Context(tree, agreement, geo, list(rules_dirs))
    if rules_dirs:
        ctx.memo.versions["backdoors+user"] = digest(analysis_version("backdoors"), rules_digest(rules_dirs))
    if cache is not None:
        ctx.memo.store = cache
        progress("firmware: content cache")
    _prefetch(ctx)  # without a cache too: the same reads in the same order give the same errors
    findings: list[Finding] = []
    ctx.read_ahead()  # the detectors read nearly every file: decompress them on the other cores meanwhile
    try:
        for d in detectors:
            progress(f"firmware: {d.name}")
            try:
                findings.extend(d.run(ctx))
            except NospyError as exc:
                ctx.error(None, f"{d.name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - one failing detector must not stop the scan
                ctx.error(None, f"{d.name}: internal error {type(exc).__name__}: {exc}")
    finally:
        ctx.close()
    for issue in tree.issues:
        ctx.errors.append(ErrorEntry(source=f"firmware:{tree.name}", location=issue.chain, message=issue.message))
    ctx.memo.flush()
    return ScanResult(findings, ctx.errors, ctx.facts, _checked(agreement, geo))


def _inventory(facts: dict[str, list[object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in ("accounts", "services", "keys", "endpoints", "components", "listeners"):
        items = facts.get(name, [])
        out[name] = [i.summary() if hasattr(i, "summary") else i for i in items]
    return out


@dataclass
class FirmwareSource:
    """A firmware image or root filesystem folder as an `nospy.verify.EvidenceSource`."""

    path: Path
    rules_dirs: Sequence[Path] = ()
    geo: CountryLookup | None = None
    tree: FileTree | None = None  # already opened (``nospy scan`` opens first so a bad path is exit 2)
    last: ScanResult | None = None
    cache: ContentCache | None = None
    sha256: str | None = None  # the image's, when already computed (``nospy scan`` hashes it for its target)

    @property
    def label(self) -> str:
        return f"firmware:{self.path.name}"

    def collect(self, agreement: Agreement | None, progress: Progress) -> SourceResult:
        if self.rules_dirs:
            backdoors.compile_rules(tuple(self.rules_dirs))  # a user's rule that does not compile is bad input
        tree = self.tree or open_tree(self.path)
        self.last = scan_tree(
            tree, agreement, rules_dirs=self.rules_dirs, geo=self.geo, progress=progress, cache=self.cache
        )
        return SourceResult(
            source=Source(kind="firmware", path=str(self.path), sha256=self.sha256 or image_sha256(self.path)),
            checked=self.last.checked,
            findings=self.last.findings,
            errors=self.last.errors,
            inventory=_inventory(self.last.facts),
        )


def _report_version(path: Path, agreement: Agreement | None, rules_dirs: Sequence[Path]) -> str:
    """What a stored report of an image depends on besides the image's bytes."""
    from nospy.agreement import canonical_json  # noqa: PLC0415 - only for cached scans

    return digest(
        analysis_version("report"),
        str(path),
        canonical_json(agreement) if agreement is not None else b"",
        rules_digest(rules_dirs) if rules_dirs else "",
    )


def scan_report(
    path: Path,
    agreement: Agreement | None = None,
    rules_dirs: Sequence[Path] = (),
    geo: CountryLookup | None = None,
    progress: Progress = lambda _: None,
    *,
    cache: ContentCache | None = None,
    sha256: str | None = None,
) -> Report:
    """``nospy scan``: one image; verdicts per clause of ``agreement``, or of the implied backdoor clause.

    With a ``cache``, an image already scanned the same way (same bytes, path, agreement, rules and
    analysis versions) gets its stored report back, and a new one reuses the results of every file
    content analysed before. A geolocation table is not part of the report's key, so a scan with
    ``geo`` always runs (its files' results still come from the cache). ``sha256``: the image's digest,
    when the caller has computed it already (a fleet scan hashes the next image while it scans one).
    """
    if rules_dirs:
        backdoors.compile_rules(tuple(rules_dirs))  # bad rules are bad usage (exit 2), before any scanning
    target = Target(path=str(path), sha256=sha256 or image_sha256(path))
    report_key = None
    if cache is not None and geo is None and target.sha256 is not None:
        report_key = (target.sha256, "report", _report_version(path, agreement, rules_dirs))
        stored = cache.get(*report_key)
        if stored is not None:
            progress("firmware: report from the content cache")
            cache.reports_served += 1
            return Report.model_validate_json(stored)
    source = FirmwareSource(path, rules_dirs, geo, open_tree(path), cache=cache, sha256=target.sha256)
    report = _scan_report(source, target, agreement, progress)
    if cache is not None and report_key is not None:
        cache.put_many({report_key: report.model_dump_json()})
    return report


def _scan_report(source: FirmwareSource, target: Target, agreement: Agreement | None, progress: Progress) -> Report:
    if agreement is not None:
        return check(agreement, [source], target, progress=progress)
    result = source.collect(None, progress)
    checked = {c: [source.label] for c in result.checked}
    return Report(
        target=target,
        sources=[result.source],
        findings=result.findings,
        verdicts=verdicts([Clause.BACKDOORS], result.findings, checked),
        errors=result.errors,
        inventory={source.label: result.inventory},
    )
