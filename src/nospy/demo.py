"""The main job on the bundled example: what `nospy demo` runs.

Each step is a real operation (real keys, real signatures, real files in the output folder), so the
demo doubles as an end-to-end check of an installation.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nospy import agreement as agr
from nospy import dsse
from nospy._fileio import write_atomic
from nospy.agreement import Agreement
from nospy.errors import InputError, VerificationError
from nospy.evidence import SourceOptions, build_sources
from nospy.findings import Target
from nospy.firmware.rootfs import EXAMPLE_BACKDOOR, build_example
from nospy.keys import SigningKey, generate
from nospy.ledger.release import entry_bytes, make_release
from nospy.ledger.storage import LogWriter, init_log
from nospy.report import Format, html, render
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
    _check_example_image(
        out,
        examples,
        agreement,
        signed_by=[vendor.verifier.label, customer.verifier.label],
        vendor=vendor,
        result=result,
        step=step,
    )
    return result


def _check_example_image(
    out: Path,
    examples: Path,
    agreement: Agreement,
    *,
    signed_by: list[str],
    vendor: SigningKey,
    result: DemoResult,
    step: Callable[[str], None],
) -> None:
    """Build the example firmware (Debian packages + a planted backdoor) and check it against the agreement."""
    root = out / "rx200-rootfs"
    if root.exists():
        shutil.rmtree(root)
    build_example(root)
    image = out / "rx200-3.2.1.squashfs"
    image.unlink(missing_ok=True)
    try:
        subprocess.run(
            ["mksquashfs", str(root), str(image), "-comp", "xz", "-all-root", "-noappend", "-quiet"],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise InputError(f"packing the example image needs mksquashfs (Debian squashfs-tools): {exc}") from None
    step(f"example firmware: {image} (BusyBox, Dropbear, OpenSSL from Debian; backdoor planted in {EXAMPLE_BACKDOOR})")

    # the vendor releases the image into its transparency log; the check proves the image is logged
    origin = "log.acme.example/rx200"
    log_key, log_dir = generate(origin), out / "log"
    write_atomic(out / "log.skey", f"{log_key}\n".encode(), 0o600)
    if log_dir.exists():
        shutil.rmtree(log_dir)
    init_log(log_dir, origin, log_key, out / "log.skey", [vendor.verifier])
    with LogWriter(log_dir) as writer:
        writer.add([entry_bytes(make_release(image, vendor, "acme-rx200", "3.2.1"))])
    step(f"release acme-rx200 3.2.1 signed by the vendor and logged in {log_dir} (C2SP tlog-tiles)")

    evidence = {
        "firmware": [image],
        "inventory": [examples / "devices.csv"],
        "infrastructure": [examples / "plan.json"],
        "traffic": [examples / "conn.log"],
    }
    report = check(
        agreement,
        build_sources(
            evidence,
            SourceOptions(
                zones=examples / "zones.yaml",
                traffic_local=("10.20.0.0/16",),
                log=str(log_dir),
                log_key=log_key.verifier,
            ),
        ),
        Target(path=str(examples / "agreement.yaml")),
        signed_by,
    )
    write_atomic(out / "check.json", render(report, Format.JSON).encode())
    verdicts = ", ".join(f"{v.clause.value} {v.status.value}" for v in report.verdicts)
    step(f"check against firmware, release log, traffic, inventory and Terraform plan: {verdicts}")
    caught = [f for f in report.findings if f.path == EXAMPLE_BACKDOOR and f.rule == "service.shell-bind"]
    if caught:
        f = caught[0]
        step(f"caught the planted backdoor: {f.rule} at {f.location}:{f.line}: {f.message}")
    else:  # pragma: no cover - would mean the firmware checks miss the example's backdoor
        result.ok = False
        step("FAILED: the planted backdoor was not found")
    result.report = out / "report.html"
    write_atomic(result.report, html.render(report).encode())
    step(f"HTML report: {result.report}")
