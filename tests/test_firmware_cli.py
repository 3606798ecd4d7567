"""``nospy scan``, ``nospy check --firmware`` and ``nospy diff`` on real root filesystems."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import firmware_corpus as corpus
from nospy.cli import run
from nospy.firmware.rootfs import build_base, clone, plant


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A clean image, the same with the TRENDnet-style telnet backdoor, and the agreement."""
    work = tmp_path_factory.mktemp("cli")
    clean = build_base(work / "clean")
    bad = clone(clean, work / "bad")
    {c.name: c for c in corpus.CASES}["trendnet-alphanetworks-telnetd"].build(bad)
    agreement = work / "agreement.yaml"
    agreement.write_text(corpus.AGREEMENT)
    return clean, bad, agreement


def test_scan_folder_json(images: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, bad, _ = images
    assert run(["scan", str(bad), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["target"]["path"] == str(bad)
    rules = {(f["rule"], f["path"]) for f in report["findings"]}
    assert ("backdoor.known", "/etc/init0.d/S80telnetd.sh") in rules
    cred = next(f for f in report["findings"] if f["rule"] == "credential.hardcoded")
    assert (
        cred["evidence"]["secret"] == "wrgn49_dlob_dir600b"
        and cred["evidence"]["secret_from"] == "/etc/config/image_sign"
    )
    assert cred["location"] == "bad!/etc/init0.d/S80telnetd.sh" and cred["line"] == 5
    assert report["verdicts"] == [
        {
            "clause": "backdoors",
            "status": "fail",
            "findings": report["verdicts"][0]["findings"],
            "checked_by": ["firmware:bad"],
        }
    ]
    inventory = report["inventory"]["firmware:bad"]
    assert {c["name"] for c in inventory["components"]} >= {"busybox", "dropbear", "openssl", "glibc"}


def test_scan_clean_with_agreement_passes(images: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    clean, _, agreement = images
    assert run(["scan", str(clean), "--agreement", str(agreement)]) == 0
    out = capsys.readouterr().out
    assert "backdoors" in out and "pass" in out and "not-checked" in out  # data: no geolocation given
    assert "services at boot: dropbear tcp/22 (init-script), httpd tcp/80 (init-script)" in out
    assert "components: busybox 1." in out


def test_scan_cyclonedx(images: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean, _, _ = images
    out = tmp_path / "sbom.json"
    assert run(["scan", str(clean), "--format", "cyclonedx", "-o", str(out)]) == 0
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    busybox = next(c for c in bom["components"] if c["name"] == "busybox")
    assert busybox["purl"].startswith("pkg:generic/busybox@1.")
    assert busybox["evidence"]["occurrences"][0]["location"] == "/bin/busybox"
    capsys.readouterr()


def test_scan_sarif(images: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, bad, _ = images
    assert run(["scan", str(bad), "--format", "sarif"]) == 1
    log = json.loads(capsys.readouterr().out)
    assert log["version"] == "2.1.0"
    run_ = log["runs"][0]
    rule_ids = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    hit = next(r for r in run_["results"] if r["ruleId"] == "backdoor.known")
    assert rule_ids[hit["ruleIndex"]] == "backdoor.known" and hit["level"] == "error"
    assert hit["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "etc/init0.d/S80telnetd.sh"
    assert hit["locations"][0]["physicalLocation"]["region"]["startLine"] == 5


def test_check_with_firmware(images: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, bad, agreement = images
    assert run(["check", str(agreement), "--firmware", str(bad), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    status = {v["clause"]: v["status"] for v in report["verdicts"]}
    assert status == {
        "backdoors": "fail",
        "accounts": "pass",
        "services": "fail",
        "endpoints": "pass",
        "data": "pass",  # hard-coded addresses placed by the default geolocation (tor-geoipdb)
        "keys": "pass",
    }


def test_user_rules(images: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean, _, _ = images
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rx200.yar").write_text(
        'rule rx200_banner { meta: description = "our own marker" strings: $a = "rx200" condition: $a }'
    )
    assert run(["scan", str(clean), "--rules", str(rules), "--format", "json"]) == 1
    found = [f for f in json.loads(capsys.readouterr().out)["findings"] if f["rule"] == "backdoor.known"]
    assert sorted((f["path"], f["evidence"]["rule"]) for f in found) == [
        ("/etc/hostname", "user.rx200:rx200_banner"),
        ("/usr/share/doc/rx200/README", "user.rx200:rx200_banner"),
    ]
    (rules / "broken.yar").write_text("rule x { condition: nope }")
    assert run(["scan", str(clean), "--rules", str(rules)]) == 2
    assert "broken.yar" in capsys.readouterr().err


def test_diff(images: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    clean, bad, _ = images
    assert run(["diff", str(clean), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "+ /etc/init0.d/S80telnetd.sh" in out and "~ /etc/init.d/rcS" in out
    assert "+ high credential.hardcoded /etc/init0.d/S80telnetd.sh:5" in out
    assert run(["diff", str(bad), str(clean), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {f["rule"] for f in result["findings_removed"]} >= {"backdoor.known", "service.insecure"}
    assert result["findings_added"] == []


def test_unreadable_inputs_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["scan", str(tmp_path / "missing.bin")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    image = tmp_path / "image.bin"
    image.write_bytes(b"\x00" * 64)
    if importlib.util.find_spec("nospy.firmware.unpack") is None:
        # until the unpacker lands, an image file is refused with a clear message
        assert run(["scan", str(image)]) == 2
        assert "image unpacking not available" in capsys.readouterr().err
    else:
        # with it, an image that holds no filesystem is one opaque file and an error entry
        assert run(["scan", str(image), "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["errors"]


def test_unreadable_file_is_an_error_entry_and_the_scan_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_base(tmp_path / "r")
    plant(root, "/etc/init.d/S99x", "#!/bin/sh\ntelnetd -l /bin/sh\n", 0o755)
    plant(root, "/usr/bin/truncated", Path("/usr/sbin/dropbear").read_bytes()[:20000], 0o755)  # a cut-off copy
    (root / "etc/dangling").symlink_to("/nowhere")
    assert run(["scan", str(root), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert ("service.shell-bind", "/etc/init.d/S99x") in {(f["rule"], f["path"]) for f in report["findings"]}
    [error] = report["errors"]
    assert error["location"] == "/usr/bin/truncated" and "unreadable ELF" in error["message"]
