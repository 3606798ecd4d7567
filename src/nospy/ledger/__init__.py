"""The firmware transparency log: RFC 6962 Merkle trees laid out as C2SP tlog-tiles, with
tlog-checkpoint, signed-note, tlog-cosignature, tlog-witness and tlog-proof.

Public surface (everything else is internal to the package):

- `find_release(log, log_key, sha256)` -> `InclusionEvidence` or None: is this image's release in
  the log? Verifies the checkpoint and the inclusion proof.
- `verify_proof(tlog_proof, log_key, sha256)` -> `InclusionEvidence`: the same, offline.
- `audit_log(source, log_key)` -> `AuditResult`: recompute and check the whole log.
- `open_source(dir_or_url)` -> `LogSource`.
"""

from __future__ import annotations

from nospy.ledger.audit import AuditResult, audit_log
from nospy.ledger.find import find_release, verify_proof
from nospy.ledger.interface import InclusionEvidence, LogSource, open_source

__all__ = ["AuditResult", "InclusionEvidence", "LogSource", "audit_log", "find_release", "open_source", "verify_proof"]
