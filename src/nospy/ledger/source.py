"""The transparency-log evidence source: is each firmware image's release in the log?

Tests the ``software`` clause: with ``transparency_log: required`` an image whose SHA-256 is in no
release manifest of the log is a `software.unlogged` finding. Each image found carries its inclusion
evidence (checkpoint, index, proof), so the verdict can be re-checked offline.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from nospy.agreement.schema import Agreement, Clause
from nospy.errors import InputError
from nospy.findings import Finding, Source
from nospy.keys import VerifierKey
from nospy.ledger.find import find_release
from nospy.ledger.interface import open_source
from nospy.ledger.release import sha256_file
from nospy.verify import Progress, SourceResult

__all__ = ["ReleaseLogSource"]


class ReleaseLogSource:
    def __init__(self, log: str, log_key: VerifierKey, images: Sequence[Path]) -> None:
        if not images:
            raise InputError("--log checks firmware images against the log: give them with --firmware")
        self.log, self.log_key, self.images = log, log_key, list(images)

    @property
    def label(self) -> str:
        return f"log:{self.log}"

    def collect(self, agreement: Agreement | None, progress: Progress) -> SourceResult:
        source = open_source(self.log)
        required = (
            agreement is not None
            and agreement.software is not None
            and (agreement.software.transparency_log == "required")
        )
        findings: list[Finding] = []
        found: dict[str, object] = {}
        for image in self.images:
            progress(f"looking up {image.name} in {self.log}")
            digest = sha256_file(image)
            evidence = find_release(source, self.log_key, digest)
            if evidence is None:
                found[image.name] = None
                if required:
                    findings.append(
                        Finding.of(
                            "software.unlogged",
                            f"{image.name} (sha256 {digest}) is in no release manifest of the log {self.log}",
                            location=str(image),
                            evidence={"sha256": digest, "log": self.log, "log_key": self.log_key.label},
                        )
                    )
                continue
            found[image.name] = {
                "sha256": digest,
                "origin": evidence.origin,
                "index": evidence.index,
                "tree_size": evidence.tree_size,
                "root": base64.b64encode(evidence.root).decode(),
                "product": evidence.product,
                "version": evidence.version,
                "signer": evidence.signer,
                "tlog_proof": evidence.tlog_proof(),
            }
        checked = {Clause.SOFTWARE} if agreement is not None and agreement.software is not None else set()
        return SourceResult(
            source=Source(kind="transparency-log", path=self.log),
            checked=checked,
            findings=findings,
            inventory={"releases": found, "log_key": self.log_key.label},
        )
