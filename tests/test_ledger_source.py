"""The software clause through `nospy check`'s log source: logged images pass, unlogged ones fail."""

from __future__ import annotations

from pathlib import Path

from nospy import keys
from nospy.agreement.load import parse_yaml
from nospy.agreement.schema import Clause
from nospy.findings import Status, Target
from nospy.ledger.release import entry_bytes, make_release
from nospy.ledger.source import ReleaseLogSource
from nospy.ledger.storage import LogWriter, init_log
from nospy.verify import check

ORIGIN = "log.example/releases"
BASE = "nospy: 1\nid: t\ntitle: T\nvendor: V\ncustomer: C\n"


def _log(tmp_path: Path) -> tuple[Path, keys.SigningKey, keys.SigningKey]:
    vendor, log_key = keys.generate("acme.example"), keys.generate(ORIGIN)
    (tmp_path / "log.skey").write_text(str(log_key))
    root = tmp_path / "log"
    init_log(root, ORIGIN, log_key, tmp_path / "log.skey", [vendor.verifier])
    return root, log_key, vendor


def test_logged_image_passes_and_unlogged_fails(tmp_path: Path) -> None:
    root, log_key, vendor = _log(tmp_path)
    shipped, rogue = tmp_path / "3.2.1.bin", tmp_path / "3.2.1-hotfix.bin"
    shipped.write_bytes(b"evaluated image")
    rogue.write_bytes(b"evaluated image, patched after evaluation")
    with LogWriter(root) as writer:
        writer.add([entry_bytes(make_release(shipped, vendor, "acme-rx200", "3.2.1"))])
    agreement = parse_yaml(BASE + "software:\n  transparency_log: required\n")

    ok = check(agreement, [ReleaseLogSource(str(root), log_key.verifier, [shipped])], Target(path="a"))
    assert [(v.clause, v.status) for v in ok.verdicts if v.clause is Clause.SOFTWARE] == [
        (Clause.SOFTWARE, Status.PASS)
    ]
    releases = ok.inventory[f"log:{root}"]["releases"]
    assert releases["3.2.1.bin"]["version"] == "3.2.1"

    bad = check(agreement, [ReleaseLogSource(str(root), log_key.verifier, [shipped, rogue])], Target(path="a"))
    assert [f.rule for f in bad.findings] == ["software.unlogged"]
    assert bad.findings[0].location == str(rogue)
    assert bad.failed


def test_optional_logging_and_wrong_log_key(tmp_path: Path) -> None:
    root, _, _ = _log(tmp_path)
    stranger = keys.generate(ORIGIN)
    image = tmp_path / "fw.bin"
    image.write_bytes(b"x")
    optional = parse_yaml(BASE + "software:\n  transparency_log: optional\n")
    report = check(optional, [ReleaseLogSource(str(root), stranger.verifier, [image])], Target(path="a"))
    # a checkpoint that does not verify under the named key is an error, and the clause is not checked
    assert report.errors and report.verdicts[-1].status is Status.NOT_CHECKED
