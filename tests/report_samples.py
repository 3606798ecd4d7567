"""Reports shaped like the ones every evidence source produces, for the renderer tests.

They go through the real `nospy.verify.check` with in-memory evidence sources that return what the
firmware, traffic and deployment sources return (findings with container chains, flows, inventory
rows; egress by country and share by zone in their inventory), so the renderers are tested on the
model exactly as the pipeline fills it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nospy import agreement as agr
from nospy.agreement.schema import Clause
from nospy.findings import ErrorEntry, Finding, Report, Source, Target
from nospy.verify import Progress, SourceResult, check

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@dataclass
class FixedSource:
    """An evidence source whose result is given: the real check pipeline runs on it unchanged."""

    label: str
    result: SourceResult
    seen: list[str] = field(default_factory=list)

    def collect(self, agreement: agr.Agreement | None, progress: Progress) -> SourceResult:
        progress(f"{self.label}: done")
        return self.result


HOSTILE = "<script>alert('x')</script>"


def firmware_source() -> FixedSource:
    findings = [
        Finding.of(
            "service.undeclared",
            "telnetd started by /etc/init.d/S50diag is not a declared service",
            path="/etc/init.d/S50diag",
            location="image.bin!uimage@0x40!squashfs@0x0!/etc/init.d/S50diag",
            line=12,
            evidence={"program": "telnetd", "port": 23, "line_text": "telnetd -p 23 -l /bin/login"},
        ),
        Finding.of(
            "console.unauthenticated",
            f"console shell without login {HOSTILE}",
            path="/etc/inittab",
            location="image.bin!uimage@0x40!squashfs@0x0!/etc/inittab",
            line=3,
            evidence={"entry": "ttyS0::respawn:-/bin/sh"},
        ),
        Finding.of(
            "key.private",
            "RSA private key shipped",
            path="/etc/ssl/private/vendor.key",
            location="image.bin!uimage@0x40!squashfs@0x0!/etc/ssl/private/vendor.key",
            offset=0,
            evidence={"sha256": "ab" * 32, "type": "RSA 2048"},
        ),
        Finding.of("inventory.account", "account root (password)", path="/etc/shadow", line=1),
    ]
    return FixedSource(
        "firmware:image.bin",
        SourceResult(
            source=Source(kind="firmware", path="image.bin", sha256="cd" * 32),
            checked={Clause.BACKDOORS, Clause.ACCOUNTS, Clause.SERVICES, Clause.KEYS, Clause.ENDPOINTS},
            findings=findings,
            errors=[ErrorEntry(source="firmware:image.bin", location="jffs2@0x80000", message="bad CRC")],
            inventory={"components": [{"name": "busybox", "version": "1.36.1"}]},
        ),
    )


def traffic_source() -> FixedSource:
    flows = [
        {
            "ts": "2026-01-05T10:00:00Z",
            "src": "10.0.0.2",
            "dst": "198.51.100.7",
            "dport": 443,
            "bytes": 912345,
            "country": "SG",
            "geo": "IPFire Location 2026-01-01",
        },
        {
            "ts": "2026-01-05T10:05:00Z",
            "src": "10.0.0.2",
            "dst": "198.51.100.7",
            "dport": 443,
            "bytes": 1200,
            "country": "SG",
            "geo": "IPFire Location 2026-01-01",
        },
    ]
    return FixedSource(
        "traffic:capture.pcap",
        SourceResult(
            source=Source(kind="traffic", path="capture.pcap", sha256="ef" * 32),
            checked={Clause.DATA, Clause.ENDPOINTS},
            findings=[
                Finding.of(
                    "data.residency",
                    "913545 bytes sent to 198.51.100.7 in SG, outside data.countries [IN]",
                    location="capture.pcap flows 1-2",
                    evidence={"flows": flows, "country": "SG"},
                ),
                Finding.of(
                    "traffic.undeclared-endpoint",
                    "traffic to telemetry.vendor.example (198.51.100.7)",
                    location="capture.pcap",
                    evidence={"host": "telemetry.vendor.example", "flows": flows[:1]},
                ),
            ],
            inventory={"egress_by_country": {"IN": 52_000_000, "SG": 913_545, "US": 4_000}},
        ),
    )


def deployment_source() -> FixedSource:
    return FixedSource(
        "inventory:network.csv",
        SourceResult(
            source=Source(kind="inventory", path="network.csv", sha256="01" * 32),
            checked={Clause.PLACEMENT},
            findings=[
                Finding.of(
                    "placement.share",
                    "ACME holds 41.0% of the aggregation zone (max 35%)",
                    location="network.csv",
                    evidence={
                        "zone": "aggregation",
                        "vendor": 41,
                        "total": 100,
                        "rows": [{"row": 7, "device": "agg-07", "zone": "aggregation", "vendor": "ACME"}],
                    },
                ),
                Finding.of(
                    "placement.zone",
                    "core-01 is in zone core",
                    location="network.csv:12",
                    line=12,
                    evidence={"device": "core-01", "zone": "core"},
                ),
            ],
            inventory={
                "share_by_zone": {
                    "access": {"vendor": 30, "total": 100, "percent": 30.0},
                    "aggregation": {"vendor": 41, "total": 100},
                }
            },
        ),
    )


def full_report() -> Report:
    """The example agreement checked against firmware, traffic and deployment evidence."""
    agreement = agr.load(EXAMPLES / "agreement.yaml")
    sources = [firmware_source(), traffic_source(), deployment_source()]
    return check(agreement, sources, Target(path="examples/agreement.yaml"), ["acme.example+1234abcd"])


def empty_report() -> Report:
    """The example agreement with no evidence: every clause not-checked."""
    return check(agr.load(EXAMPLES / "agreement.yaml"), [], Target(path="examples/agreement.yaml"))
