"""Signed release manifests: an in-toto Statement v1 (https://github.com/in-toto/attestation,
spec/v1/statement.md) in a DSSE envelope signed by the vendor.

The statement's subject is the firmware image (name, SHA-256), or the release's images when it ships
several (a main image and a boot loader, say: every one is checked); the predicate names the product and
version and, by digest only, the SBOM and evaluation report, so a manifest stays far below the
65,535-byte limit of a tlog-tiles entry. The statement must be canonical JSON (RFC 8785); the
logged entry is the envelope's compact JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nospy import dsse, keys
from nospy.errors import InputError, VerificationError
from nospy.ledger.tiles import MAX_ENTRY

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "Artifact",
    "ReleasePredicate",
    "Statement",
    "entry_bytes",
    "make_release",
    "read_release",
    "sha256_file",
]

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://nospy.dev/release/v1"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MAX_IMAGES = 64  # subjects of one release manifest


class Artifact(BaseModel):
    """An in-toto ResourceDescriptor reduced to what a release names: a file and its SHA-256."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(description="File name of the artifact.", max_length=1024)
    digest: dict[str, str] = Field(description="Digests by algorithm; sha256 is required.")

    @property
    def sha256(self) -> str:
        value = self.digest.get("sha256", "")
        if not _SHA256_RE.fullmatch(value):
            raise InputError(f"artifact {self.name!r}: no valid sha256 digest")
        return value


class ReleasePredicate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    product: str = Field(description="Product identifier, as in the agreement's products list.", max_length=256)
    version: str = Field(description="Release version string.", max_length=256)
    sbom: Artifact | None = Field(default=None, description="The release's SBOM, by digest.")
    report: Artifact | None = Field(default=None, description="The evaluation report, by digest.")


class Statement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    type_: str = Field(alias="_type", description="in-toto Statement type URI.")
    subject: tuple[Artifact, ...] = Field(min_length=1, max_length=_MAX_IMAGES, description="The firmware image(s).")
    predicate_type: str = Field(alias="predicateType", description="Release predicate type URI.")
    predicate: ReleasePredicate


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (firmware images can be large)."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    return h.hexdigest()


def _artifact(path: Path) -> Artifact:
    return Artifact(name=path.name, digest={"sha256": sha256_file(path)})


def make_release(
    images: Path | Sequence[Path],
    key: keys.SigningKey,
    product: str,
    version: str,
    *,
    sbom: Path | None = None,
    report: Path | None = None,
) -> dsse.Envelope:
    """A release manifest for ``images`` (one image, or every image of the release in order), signed by
    the vendor ``key``."""
    subject = tuple(_artifact(i) for i in ([images] if isinstance(images, Path) else images))
    names = [a.name for a in subject]
    if not 1 <= len(names) <= _MAX_IMAGES:
        raise InputError(f"a release names 1 to {_MAX_IMAGES} images, not {len(names)}")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"a release names each image once: {', '.join(twice)}")
    statement = Statement(
        type_=STATEMENT_TYPE,
        subject=subject,
        predicate_type=PREDICATE_TYPE,
        predicate=ReleasePredicate(
            product=product,
            version=version,
            sbom=_artifact(sbom) if sbom else None,
            report=_artifact(report) if report else None,
        ),
    )
    payload = rfc8785.dumps(statement.model_dump(by_alias=True, exclude_none=True))
    env = dsse.sign(PAYLOAD_TYPE, payload, key)
    entry_bytes(env)  # refuse to write a manifest the log could not hold
    return env


def entry_bytes(env: dsse.Envelope) -> bytes:
    """The envelope as a log entry: compact JSON, at most 65,535 bytes."""
    data = json.dumps(env.model_dump(by_alias=True), separators=(",", ":")).encode()
    if len(data) > MAX_ENTRY:
        raise InputError(f"release manifest is {len(data)} bytes; a log entry holds at most {MAX_ENTRY}")
    return data


def parse_statement(payload: bytes) -> Statement:
    try:
        statement = Statement.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise InputError(f"release statement: {where}: {first['msg']}") from None
    if statement.type_ != STATEMENT_TYPE or statement.predicate_type != PREDICATE_TYPE:
        raise InputError("not a nospy release statement (wrong _type or predicateType)")
    for subject in statement.subject:
        subject.sha256  # noqa: B018 - reject a subject without a valid digest when reading
    # One release, one byte string: canonical JSON (RFC 8785) makes deduplication by entry hash work
    # and lets `find_release` look for a digest's bytes without parsing every entry.
    try:
        canonical = rfc8785.dumps(json.loads(payload))
    except (ValueError, RecursionError) as exc:
        raise InputError(f"release statement: {exc}") from None
    if canonical != payload:
        raise InputError("release statement is not canonical JSON (RFC 8785)")
    return statement


def read_release(data: bytes, trusted: Sequence[keys.VerifierKey] | None) -> tuple[dsse.Envelope, Statement]:
    """Parse a release manifest; with ``trusted``, one of those keys must have signed it.

    ``trusted=None`` reads without checking signatures (for scanning a log whose checkpoint was
    verified); an empty list is an error, as a check that trusts nobody must not pass.
    """
    if len(data) > MAX_ENTRY:
        raise InputError(f"release manifest is larger than {MAX_ENTRY} bytes")
    env = dsse.parse(data, "release manifest")
    if trusted is not None:
        if not trusted:
            raise VerificationError("no trusted vendor key given")
        problems = []
        for key in trusted:
            try:
                dsse.verify(env, [key], PAYLOAD_TYPE)
                break
            except VerificationError as exc:
                problems.append(str(exc))
        else:
            raise VerificationError("release manifest not signed by a trusted vendor key: " + "; ".join(problems))
    elif env.payload_type != PAYLOAD_TYPE:
        raise InputError(f"release manifest payload type is {env.payload_type!r}")
    return env, parse_statement(env.payload_bytes)
