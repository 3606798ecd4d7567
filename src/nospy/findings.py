"""Findings, verdicts and the JSON report (DESIGN.md "Findings" and "JSON report").

The rule table is binding: identifiers, severities and clauses are part of the report format. Rules
are declared here, in one place, and every producer (firmware, traffic, deployment, ledger) refers to
them by identifier; `rule()` refuses an identifier that is not declared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from nospy import __version__
from nospy.agreement.schema import Clause

__all__ = [
    "RULES",
    "ErrorEntry",
    "Finding",
    "Report",
    "Rule",
    "Severity",
    "Source",
    "Status",
    "Verdict",
    "rule",
    "worst_verdicts",
]


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Frozen):
    """A declared rule: what it finds, how bad it is, and which clause of an agreement it tests."""

    id: str
    severity: Severity
    clause: Clause
    summary: str = Field(description="One line: what a finding of this rule means.")
    needs_declaration: bool = Field(
        description="True if the rule compares against a section of the agreement (no agreement, no finding)."
    )


def _r(id_: str, severity: Severity, clause: Clause, summary: str, *, declared: bool = False) -> Rule:
    return Rule(id=id_, severity=severity, clause=clause, summary=summary, needs_declaration=declared)


C, H, M, I = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.INFO  # noqa: E741 - severity initials

# Rules that need no declaration test the clause every agreement implies (`backdoors`), so they count
# even when the agreement leaves out the section they touch.
RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        _r("backdoor.known", C, Clause.BACKDOORS, "signature of a publicly documented backdoor"),
        _r("service.shell-bind", C, Clause.BACKDOORS, "a network listener hands out a shell without authentication"),
        _r("console.unauthenticated", C, Clause.BACKDOORS, "a console shell without login"),
        _r("account.empty-password", C, Clause.BACKDOORS, "an account that can log in with an empty password"),
        _r(
            "account.default-password", H, Clause.BACKDOORS, "a password hash that a default/known-password list cracks"
        ),
        _r(
            "account.undeclared",
            H,
            Clause.ACCOUNTS,
            "a login-capable account the agreement does not declare",
            declared=True,
        ),
        _r("credential.hardcoded", H, Clause.BACKDOORS, "a plaintext credential in a script, config or binary"),
        _r("key.private", H, Clause.KEYS, "private key material shipped in the image and not allowed by keys.private"),
        _r("key.authorized", H, Clause.KEYS, "authorized_keys entries shipped and not allowed by keys.authorized"),
        _r("service.insecure", H, Clause.BACKDOORS, "telnet/rlogin/ftp/tftp servers, ssh with empty passwords allowed"),
        _r(
            "service.undeclared",
            H,
            Clause.SERVICES,
            "a network service started at boot that the agreement does not declare",
            declared=True,
        ),
        _r(
            "binary.listener",
            M,
            Clause.SERVICES,
            "a program that listens on the network and can run commands, not accounted for by a declared service",
            declared=True,
        ),
        _r(
            "endpoint.undeclared",
            M,
            Clause.ENDPOINTS,
            "a hard-coded remote host or address not declared in endpoints",
            declared=True,
        ),
        _r(
            "data.residency",
            H,
            Clause.DATA,
            "a hard-coded endpoint, flow or storage location outside data.countries",
            declared=True,
        ),
        _r(
            "traffic.undeclared-endpoint",
            M,
            Clause.ENDPOINTS,
            "observed traffic to a host not declared in endpoints",
            declared=True,
        ),
        _r("software.unlogged", H, Clause.SOFTWARE, "the image is not included in the transparency log", declared=True),
        _r("placement.zone", H, Clause.PLACEMENT, "equipment in a zone the agreement does not allow", declared=True),
        _r(
            "placement.share",
            H,
            Clause.PLACEMENT,
            "the vendor's share of a zone exceeds max_share_percent",
            declared=True,
        ),
        _r("placement.site", H, Clause.PLACEMENT, "equipment at an excluded site", declared=True),
        # inventory: what was seen, reported as info so that a reader can check the agreement's lists
        _r("inventory.account", I, Clause.ACCOUNTS, "a login-capable account"),
        _r("inventory.service", I, Clause.SERVICES, "a network service started at boot"),
        _r("inventory.endpoint", I, Clause.ENDPOINTS, "a remote host or address the equipment uses"),
    )
}


def rule(rule_id: str) -> Rule:
    try:
        return RULES[rule_id]
    except KeyError:
        raise KeyError(f"undeclared rule {rule_id!r}: declare it in nospy.findings.RULES") from None


class Finding(_Frozen):
    """One thing found, with the evidence behind it."""

    rule: str
    severity: Severity
    clause: Clause
    message: str
    path: str | None = Field(None, description="Path as on the running device (absolute), for firmware findings.")
    location: str | None = Field(None, description="Where the evidence is: container chain, file, row or flow.")
    line: int | None = None
    offset: int | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, rule_id: str, message: str, **fields: Any) -> Finding:
        r = rule(rule_id)
        return cls(rule=r.id, severity=r.severity, clause=r.clause, message=message, **fields)


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    NOT_CHECKED = "not-checked"


_S = TypeVar("_S", bound=str)  # a Status, or its value as stored
_VERDICT_RANK: dict[str, int] = {Status.FAIL: 2, Status.PASS: 1}  # a Status equals its value


def worst_verdicts(verdicts: Iterable[Mapping[str, _S]]) -> dict[str, _S]:
    """Each clause's status over several verdicts on it (the images of one release): fail if one
    fails, else pass if one passes, else the first given (not-checked)."""
    out: dict[str, _S] = {}
    for one in verdicts:
        for clause, status in one.items():
            held = out.get(clause)
            if held is None or _VERDICT_RANK.get(status, 0) > _VERDICT_RANK.get(held, 0):
                out[clause] = status
    return out


class Verdict(_Frozen):
    clause: Clause
    status: Status
    findings: list[int] = Field(default_factory=list, description="Indexes into the report's findings.")
    checked_by: list[str] = Field(default_factory=list, description="The evidence sources that tested this clause.")
    reason: str | None = None


class Source(_Frozen):
    """An input the report rests on: an image, a capture, an inventory, a log."""

    kind: str
    path: str
    sha256: str | None = None


class ErrorEntry(_Frozen):
    """Something that could not be read or checked; the rest of the run went on."""

    source: str
    location: str | None = None
    message: str


class Target(_Frozen):
    path: str
    sha256: str | None = None


class Tool(_Frozen):
    name: str = "nospy"
    version: str = __version__


class AgreementRef(_Frozen):
    id: str
    sha256: str = Field(description="SHA-256 of the agreement's canonical JSON.")
    signed_by: list[str] = Field(default_factory=list, description="Keys whose signatures were verified.")
    title: str | None = Field(None, description="The agreement's title, for reports.")
    vendor: str | None = None
    customer: str | None = None
    canonical_json: str | None = Field(
        None, description="The agreement's canonical JSON (RFC 8785): the exact text the parties signed."
    )


class Report(_Frozen):
    tool: Tool = Field(default_factory=Tool)
    target: Target
    agreement: AgreementRef | None = None
    sources: list[Source] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    errors: list[ErrorEntry] = Field(default_factory=list)
    inventory: dict[str, Any] = Field(default_factory=dict, description="Facts by source kind, for reports.")

    @property
    def failed(self) -> bool:
        return any(v.status is Status.FAIL for v in self.verdicts)
