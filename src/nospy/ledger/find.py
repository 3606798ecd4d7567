"""Finding a release in a log and checking it: what `nospy check` uses for ``software.unlogged``.

The checkpoint's signature is verified first; the entry is found by the SHA-256 of the image among
the logged release manifests; its inclusion proof is computed from the tiles and verified against
the checkpoint's root, so a log that lies about its tiles cannot produce evidence.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from pathlib import Path

from nospy import dsse, keys
from nospy.errors import InputError, VerificationError
from nospy.ledger import merkle
from nospy.ledger.checkpoint import CosignerKey, open_checkpoint
from nospy.ledger.interface import InclusionEvidence, LogSource, open_source
from nospy.ledger.proof import parse_proof
from nospy.ledger.release import Statement, read_release
from nospy.ledger.tiles import TILE_WIDTH, TileReader, bundle_path, parse_bundle, tile_width

__all__ = ["find_release", "verify_proof"]

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def _normalise(sha256: str) -> str:
    value = sha256.strip().lower()
    if not _SHA256_RE.fullmatch(value):
        raise InputError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
    return value


def _matches(entry: bytes, sha256: str, vendor_keys: Sequence[keys.VerifierKey] | None) -> Statement | None:
    try:
        _, statement = read_release(entry, vendor_keys)
    except (InputError, VerificationError):
        return None  # not a release manifest, or not by a trusted vendor: not evidence
    if any(s.sha256 == sha256 for s in statement.subject):
        return statement
    return None


def _needles(sha256: str) -> tuple[bytes, ...]:
    """What the digest's hex looks like inside a base64 DSSE payload, at each of the three byte
    alignments, in both base64 alphabets DSSE allows. Statements are canonical JSON (see
    `release.parse_statement`), so the hex appears literally in every payload that can match."""
    text = sha256.encode()
    out = []
    for k in range(3):
        part = text[k : k + 3 * ((len(text) - k) // 3)]
        out += [base64.b64encode(part), base64.urlsafe_b64encode(part)]
    return tuple(dict.fromkeys(out))


def _signer(entry: bytes) -> str:
    env = dsse.parse(entry)
    return env.signatures[0].keyid if env.signatures else ""


def find_release(
    log: str | Path | LogSource,
    log_key: keys.VerifierKey,
    sha256: str,
    *,
    vendor_keys: Sequence[keys.VerifierKey] | None = None,
    origin: str | None = None,
) -> InclusionEvidence | None:
    """Inclusion evidence for the release whose image has digest ``sha256``, or None if not logged.

    With ``vendor_keys``, only manifests signed by one of them count; without, any well-formed
    release manifest in the log counts, and what you rely on is the log's admission policy (a
    nospy log only takes manifests signed by the vendor keys it was told to trust). Raises
    `VerificationError` when the checkpoint or the inclusion proof does not verify.
    """
    target = _normalise(sha256)
    source = log if not isinstance(log, str | Path) else open_source(log)
    note = source.read("checkpoint")
    signed = open_checkpoint(note, [log_key], origin=origin)
    cp = signed.checkpoint
    needles = _needles(target)
    for n in reversed(range(-(-cp.size // TILE_WIDTH))):  # newest first: releases are looked up soon after
        width = tile_width(0, n, cp.size)
        bundle = source.read(bundle_path(n, width))
        if not any(needle in bundle for needle in needles):
            continue  # a byte search per bundle instead of parsing 256 manifests
        entries = parse_bundle(bundle, width)
        for offset, entry in enumerate(entries):
            if not any(needle in entry for needle in needles):
                continue
            statement = _matches(entry, target, vendor_keys)
            if statement is None:
                continue
            index = n * TILE_WIDTH + offset
            leaf = merkle.leaf_hash(entry)
            proof = TileReader(source.read, cp.size).inclusion_proof(index)
            merkle.verify_inclusion(index, cp.size, leaf, proof, cp.root)
            return InclusionEvidence(
                log=source.location,
                origin=cp.origin,
                index=index,
                tree_size=cp.size,
                root=cp.root,
                leaf_hash=leaf,
                proof=tuple(proof),
                checkpoint=signed.note,
                entry=entry,
                product=statement.predicate.product,
                version=statement.predicate.version,
                signer=_signer(entry),
            )
    return None


def verify_proof(
    data: bytes | str,
    log_key: keys.VerifierKey,
    sha256: str,
    *,
    vendor_keys: Sequence[keys.VerifierKey] | None = None,
    cosigners: Sequence[CosignerKey] = (),
    quorum: int = 0,
    location: str = "tlog-proof",
) -> InclusionEvidence:
    """Check a C2SP tlog-proof made by `nospy log prove` offline; raise `VerificationError` if it
    does not prove that the release of image ``sha256`` is in the log."""
    target = _normalise(sha256)
    proof = parse_proof(data)
    signed = open_checkpoint(proof.checkpoint, [log_key], cosigners=cosigners, quorum=quorum)
    cp = signed.checkpoint
    if proof.extra is None:
        raise VerificationError("tlog-proof carries no release manifest (extra line)")
    statement = _matches(proof.extra, target, vendor_keys)
    if statement is None:
        raise VerificationError(f"the proof's release manifest is not for image {target}")
    leaf = merkle.leaf_hash(proof.extra)
    merkle.verify_inclusion(proof.index, cp.size, leaf, list(proof.proof), cp.root)
    return InclusionEvidence(
        log=location,
        origin=cp.origin,
        index=proof.index,
        tree_size=cp.size,
        root=cp.root,
        leaf_hash=leaf,
        proof=proof.proof,
        checkpoint=signed.note,
        entry=proof.extra,
        product=statement.predicate.product,
        version=statement.predicate.version,
        signer=_signer(proof.extra),
    )
