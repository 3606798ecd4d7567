"""Every planted backdoor of the corpus is found with the right rule and path; clean images stay clean."""

from __future__ import annotations

from pathlib import Path

import pytest

import firmware_corpus as corpus
from nospy.agreement.load import parse_yaml
from nospy.findings import RULES, Severity
from nospy.firmware import unpack
from nospy.firmware.geo import RangeTable
from nospy.firmware.rootfs import build_base
from nospy.firmware.scan import DETECTORS, scan_tree
from nospy.firmware.tree import DirectoryTree

FIRMWARE_RULES = {r for d in DETECTORS for r in d.rules}


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("rootfs") / "base")


@pytest.mark.parametrize("case", corpus.CASES, ids=lambda c: c.name)
def test_planted_backdoor_is_found(case: corpus.Case, base: Path, tmp_path: Path) -> None:
    root = corpus.build_case(base, tmp_path / case.name, case.build)
    agreement = parse_yaml(corpus.AGREEMENT) if case.agreement else None
    geo = RangeTable.parse(corpus.GEO_CSV, "corpus-geo.csv") if case.geo else None
    result = scan_tree(DirectoryTree(root, case.name), agreement, geo=geo)
    got = {(f.rule, f.path) for f in result.findings}
    assert set(case.expect) <= got, sorted(got)
    for f in result.findings:
        if (f.rule, f.path) in case.expect:
            assert f.location == f"{case.name}!{f.path}"
            assert f.line is not None or f.offset is not None or f.rule in ("binary.listener", "key.private")
    assert not result.errors


@pytest.mark.parametrize("name", [name for name, _ in corpus.CLEAN])
def test_clean_image_has_no_high_or_critical(name: str, base: Path, tmp_path: Path) -> None:
    build = dict(corpus.CLEAN)[name]
    root = corpus.build_case(base, tmp_path / name, build)
    for agreement in (None, parse_yaml(corpus.AGREEMENT)):
        result = scan_tree(DirectoryTree(root), agreement)
        bad = [(f.rule, f.path, f.message) for f in result.findings if f.severity in (Severity.CRITICAL, Severity.HIGH)]
        assert bad == []
        services = {(s.program, s.port) for s in result.facts["services"]}  # type: ignore[attr-defined]
        assert ("dropbear", 22) in services


def test_every_firmware_rule_is_covered_by_a_sample() -> None:
    planted = {rule for case in corpus.CASES for rule, _ in case.expect}
    inventory = {r for r in FIRMWARE_RULES if r.startswith("inventory.")}  # every image produces these
    assert FIRMWARE_RULES - inventory <= planted, FIRMWARE_RULES - inventory - planted
    assert set(RULES) >= FIRMWARE_RULES
    assert len(corpus.CASES) >= 20 and len(corpus.CLEAN) >= 3


def test_inventory_rules_are_produced(base: Path) -> None:
    result = scan_tree(DirectoryTree(base), parse_yaml(corpus.AGREEMENT))
    rules = {f.rule for f in result.findings}
    assert {"inventory.account", "inventory.service"} <= rules


def test_trendnet_rootfs_shows_its_telnet_backdoor(shared: Path) -> None:
    """The real TRENDnet TEW-733GR root filesystem (LZMA squashfs that Debian's unsquashfs cannot read)."""
    unpack = pytest.importorskip("nospy.firmware.unpack", reason="needs the unpacker (issue 3) to open the image")
    tree = unpack.open_image(shared / "firmware" / "trendnet-tew733gr-rootfs.squashfs")
    result = scan_tree(tree)
    got = {(f.rule, f.path) for f in result.findings}
    for rule in ("backdoor.known", "credential.hardcoded", "service.insecure"):
        assert (rule, "/etc/init0.d/S80telnetd.sh") in got, sorted(got)
    cred = next(f for f in result.findings if f.rule == "credential.hardcoded")
    assert cred.line == 7 and cred.evidence["user"] == "Alphanetworks"  # password read from /etc/config/image_sign
    assert ("account.empty-password", "/etc/defnodes/defaultvalue.xml") in got  # the default web admin


@pytest.mark.parametrize(
    ("container", "name", "chain"),
    [
        ("ubi-ubifs", "trendnet-alphanetworks-telnetd", "ubi@0x0"),
        ("jffs2-be", "inittab-telnetd-shell", "jffs2-be@0x0"),
        ("cramfs-be", "cron-socat-shell", "cramfs-be@0x0"),
    ],
)
def test_planted_backdoor_found_through_the_container(
    container: str, name: str, chain: str, base: Path, tmp_path: Path
) -> None:
    """A planted image packed by the Debian tool of a flash format is found the same through the unpacker."""
    case = next(c for c in corpus.CASES if c.name == name)
    image = corpus.pack(corpus.build_case(base, tmp_path / case.name, case.build), container)
    tree = unpack.open_image(image)
    assert tree.issues == []
    assert tree.root_chain is not None and tree.root_chain.startswith(f"{image.name}!{chain}")
    got = {(f.rule, f.path) for f in scan_tree(tree).findings}
    assert set(case.expect) <= got, sorted(got)
