"""The main job on the bundled example: what `nospy demo` runs.

Each step is a real operation (real keys, real signatures, real files in the output folder), so the
demo doubles as an end-to-end check of an installation.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nospy import agreement as agr
from nospy import dsse
from nospy._fileio import write_atomic
from nospy.errors import InputError, VerificationError
from nospy.evidence import build_sources
from nospy.findings import Target
from nospy.keys import generate
from nospy.report import html
from nospy.verify import check


def examples_dir() -> Path:
    """The repository's ``examples/`` folder (the demo runs from a checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples"
        if (candidate / "agreement.yaml").is_file():
            return candidate
    raise InputError("cannot find the examples/ folder; run the demo from a nospy checkout or pass --examples")


@dataclass
class DemoResult:
    out: Path
    steps: list[str] = field(default_factory=list)
    ok: bool = True
    report: Path | None = None


def run_demo(out: Path, examples: Path | None = None, say: Callable[[str], None] = lambda _: None) -> DemoResult:
    examples = examples or examples_dir()
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out)

    def step(text: str) -> None:
        result.steps.append(text)
        say(text)

    vendor, customer = generate("acme.example"), generate("bharat-telecom.example")
    for key in (vendor, customer):
        write_atomic(out / f"{key.name}.skey", f"{key}\n".encode(), 0o600)
        write_atomic(out / f"{key.name}.vkey", f"{key.verifier}\n".encode())
    step(f"keys: {vendor.verifier.label} (vendor), {customer.verifier.label} (customer)")

    source = examples / "agreement.yaml"
    agreement = agr.load(source)
    step(f"agreement: {agreement.id}: {', '.join(c.value for c in agreement.clauses())}")

    signed = out / "agreement.dsse.json"
    write_atomic(signed, agr.sign(source, vendor).to_json().encode())
    write_atomic(signed, agr.sign(signed, customer).to_json().encode())
    step(f"signed by both parties: {signed}")

    env = agr.read_envelope(signed)
    agr.verify(env, [vendor.verifier, customer.verifier], str(signed))
    step("verified: both signatures cover exactly this agreement")

    # A one-byte change to the signed text must be caught.
    payload = bytearray(env.payload_bytes)
    payload[payload.index(b'"IN"') + 1 : payload.index(b'"IN"') + 3] = b"SG"
    forged = env.model_copy(update={"payload": base64.b64encode(bytes(payload)).decode()})
    try:
        dsse.verify(forged, [vendor.verifier, customer.verifier], agr.PAYLOAD_TYPE)
    except VerificationError:
        step("tamper check: moving the data residency from IN to SG breaks both signatures")
    else:  # pragma: no cover - would mean signatures do not protect the text
        result.ok = False
        step("tamper check FAILED: a changed agreement still verified")
    (out / "agreement.canonical.json").write_text(json.dumps(json.loads(agr.canonical_json(agreement)), indent=2))

    # The example check: the evidence sources fill it as they land; until then every clause that
    # needs evidence is reported not-checked.
    sources = build_sources({})
    report = check(agreement, sources, Target(path=str(signed)), [vendor.verifier.label, customer.verifier.label])
    result.report = out / "report.html"
    write_atomic(result.report, html.render(report).encode())
    verdicts = ", ".join(f"{v.clause.value} {v.status.value}" for v in report.verdicts)
    step(f"checked: {verdicts}; HTML report: {result.report}")
    return result
