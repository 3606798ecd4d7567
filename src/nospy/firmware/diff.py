"""``nospy diff``: what changed between two images, and which findings came or went.

Files are compared by content (SHA-256) and type; findings by (rule, path, message) so a finding
that merely moved lines still counts as the same; inventory (accounts, services, components,
endpoints) by its identity fields.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nospy.errors import InputError
from nospy.findings import Finding, Report, Severity
from nospy.firmware.scan import open_tree
from nospy.firmware.tree import EntryType, FileTree

__all__ = ["DiffResult", "diff_reports", "render_diff"]


class Changes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)


class DiffResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    old: str
    new: str
    files: Changes
    inventory: dict[str, Changes] = Field(description="accounts, services, components, endpoints")
    findings_added: list[Finding]
    findings_removed: list[Finding]


def _fingerprints(tree: FileTree) -> dict[str, str]:
    out = {}
    for e in tree.entries():
        if e.type is EntryType.FILE:
            try:
                out[e.path] = hashlib.sha256(tree.read(e.path)).hexdigest()
            except InputError:
                out[e.path] = "unreadable"
        elif e.type is EntryType.SYMLINK:
            out[e.path] = f"-> {e.link}"
        else:
            out[e.path] = e.type.value
    return out


_IDENTITY = {
    "accounts": ("name", "service"),
    "services": ("program", "protocol", "port"),
    "components": ("name",),
    "endpoints": ("host", "port"),
}


def _inventory(report: Report) -> dict[str, Any]:
    inv: object = next(iter(report.inventory.values()), {})
    return inv if isinstance(inv, dict) else {}


def _key(f: Finding) -> tuple[str, str | None, str]:
    return (f.rule, f.path, f.message)


def diff_reports(old: Path, new: Path, before: Report, after: Report) -> DiffResult:
    a, b = _fingerprints(open_tree(old)), _fingerprints(open_tree(new))
    files = Changes(
        added=sorted(set(b) - set(a)),
        removed=sorted(set(a) - set(b)),
        changed=sorted(p for p in set(a) & set(b) if a[p] != b[p]),
    )
    inventory: dict[str, Changes] = {}
    inv_a, inv_b = _inventory(before), _inventory(after)
    for kind, fields in _IDENTITY.items():
        rows_a = {tuple(r.get(f) for f in fields): r for r in inv_a.get(kind, [])}
        rows_b = {tuple(r.get(f) for f in fields): r for r in inv_b.get(kind, [])}

        def label(k: tuple[Any, ...], row: dict[str, Any], kind: str = kind) -> str:
            if kind == "components":
                return f"{row.get('name')} {row.get('version')}"
            return " ".join(str(x) for x in k if x is not None)

        changed = [
            f"{label(k, rows_a[k])} -> {rows_b[k].get('version')}"
            for k in set(rows_a) & set(rows_b)
            if kind == "components" and rows_a[k].get("version") != rows_b[k].get("version")
        ]
        inventory[kind] = Changes(
            added=sorted(label(k, rows_b[k]) for k in set(rows_b) - set(rows_a)),
            removed=sorted(label(k, rows_a[k]) for k in set(rows_a) - set(rows_b)),
            changed=sorted(changed),
        )
    keys_a = {_key(f) for f in before.findings if f.severity is not Severity.INFO}
    keys_b = {_key(f) for f in after.findings if f.severity is not Severity.INFO}
    return DiffResult(
        old=str(old),
        new=str(new),
        files=files,
        inventory=inventory,
        findings_added=[f for f in after.findings if f.severity is not Severity.INFO and _key(f) not in keys_a],
        findings_removed=[f for f in before.findings if f.severity is not Severity.INFO and _key(f) not in keys_b],
    )


def render_diff(d: DiffResult) -> str:
    lines = [f"{d.old} -> {d.new}"]
    f = d.files
    lines.append(f"files: {len(f.added)} added, {len(f.removed)} removed, {len(f.changed)} changed")
    lines += (
        [f"  + {p}" for p in f.added[:50]] + [f"  - {p}" for p in f.removed[:50]] + [f"  ~ {p}" for p in f.changed[:50]]
    )
    for kind, c in d.inventory.items():
        if c.added or c.removed or c.changed:
            lines.append(f"{kind}:")
            lines += [f"  + {x}" for x in c.added] + [f"  - {x}" for x in c.removed] + [f"  ~ {x}" for x in c.changed]
    lines.append(f"findings: {len(d.findings_added)} new, {len(d.findings_removed)} gone")
    for x in d.findings_added:
        lines.append(f"  + {x.severity.value} {x.rule} {x.path or ''}{':' + str(x.line) if x.line else ''} {x.message}")
    for x in d.findings_removed:
        lines.append(f"  - {x.severity.value} {x.rule} {x.path or ''}{':' + str(x.line) if x.line else ''} {x.message}")
    return "\n".join(lines) + "\n"
