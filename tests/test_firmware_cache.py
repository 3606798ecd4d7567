"""The content cache: a cached scan gives the same report as an uncached one, on real images, and
only new contents (or a new analysis version) are analysed again."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from nospy.agreement import load
from nospy.cli import run
from nospy.firmware.cache import ContentCache, analysis_version
from nospy.firmware.rootfs import EXAMPLE_BACKDOOR, build_example, plant
from nospy.firmware.scan import scan_report, scan_tree
from nospy.firmware.unpack import open_image
from nospy.server import db
from serverlib import Postgres


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_example(tmp_path_factory.mktemp("cache") / "rootfs")


@pytest.fixture(scope="module")
def example_image(example: Path) -> Path:
    image = example.parent / "rx200.squashfs"
    subprocess.run(["mksquashfs", str(example), str(image), "-all-root", "-noappend", "-quiet"], check=True)
    return image


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ContentCache]:
    store = ContentCache.open(f"sqlite:///{tmp_path / 'cache.db'}")
    yield store
    store.close()


def _rows(store: ContentCache) -> set[tuple[str, str, str]]:
    with store.engine.connect() as conn:
        t = db.Analysis.__table__
        return {(r[0], r[1], r[2]) for r in conn.execute(select(t.c.sha256, t.c.analyser, t.c.version))}


@pytest.fixture(params=["folder", "squashfs", "trendnet"])
def sample(request: pytest.FixtureRequest, example: Path, example_image: Path, shared: Path) -> Path:
    """The example as a folder and as squashfs, and the real TRENDnet root filesystem."""
    which: str = request.param
    return {"folder": example, "squashfs": example_image}.get(which) or (
        shared / "firmware" / "trendnet-tew733gr-rootfs.squashfs"
    )


def test_cached_scan_reports_the_same(sample: Path, cache: ContentCache, tmp_path: Path) -> None:
    image = sample
    which = "folder" if sample.is_dir() else "image"
    agreement = load(Path(__file__).resolve().parents[1] / "examples" / "agreement.yaml")
    for agr in (None, agreement):
        plain = scan_report(image, agr).model_dump_json()
        cold = scan_report(image, agr, cache=cache).model_dump_json()
        assert cache.misses > 0
        hits = cache.hits
        warm = scan_report(image, agr, cache=cache).model_dump_json()
        assert cold == plain and warm == plain
        if which == "folder":  # a folder has no image hash: every file's result came from the cache
            assert cache.hits > hits and cache.reports_served == 0
        else:
            assert cache.reports_served >= 1
    if which != "folder":
        # the same image at another path: its report is not stored, its files' results are
        other = tmp_path / "copy" / image.name
        other.parent.mkdir()
        shutil.copy(image, other)
        misses, served = cache.misses, cache.reports_served
        assert scan_report(other, cache=cache).model_dump_json() == scan_report(other).model_dump_json()
        assert cache.misses == misses and cache.reports_served == served
        assert json.loads(scan_report(other).model_dump_json())["findings"]  # not an empty report compared


def test_a_changed_file_is_the_only_one_analysed_again(example: Path, cache: ContentCache, tmp_path: Path) -> None:
    release = tmp_path / "rootfs"
    shutil.copytree(example, release, symlinks=True)
    first = scan_report(release, cache=cache)
    before = _rows(cache)
    assert {a for _, a, _ in before} >= {"backdoors", "endpoints", "listeners", "components", "crack"}
    content = b"#!/bin/sh\n# factory diagnostics, moved\nutelnetd -p 2324 -l /bin/sh -u root:s3cret &\n"
    plant(release, EXAMPLE_BACKDOOR, content, 0o755)
    second = scan_report(release, cache=cache)
    new = _rows(cache) - before
    assert new, "the new content was analysed"
    assert {sha for sha, _, _ in new} == {hashlib.sha256(content).hexdigest()}
    assert second.model_dump_json() == scan_report(release).model_dump_json()
    assert second.model_dump_json() != first.model_dump_json()
    assert any(f.rule == "credential.hardcoded" and f.path == EXAMPLE_BACKDOOR for f in second.findings)


def test_a_new_analysis_version_misses_the_cache(example: Path, cache: ContentCache, tmp_path: Path) -> None:
    """Results are served only under the analysis version they were made by."""
    scan_report(example, cache=cache)
    backdoor = hashlib.sha256((example / EXAMPLE_BACKDOOR.lstrip("/")).read_bytes()).hexdigest()
    forged = json.dumps([["forged.example", "host", None, 1, None]])
    with cache.engine.begin() as conn:
        conn.execute(
            text("UPDATE analyses SET version = 'old' WHERE sha256 = :s AND analyser = 'endpoints'"), {"s": backdoor}
        )
        conn.execute(
            text(
                "INSERT INTO analyses (sha256, analyser, version, result, created) VALUES (:s, 'endpoints', 'old2', :r, '2026-01-01')"
            ),
            {"s": backdoor, "r": forged},
        )
    misses = cache.misses
    report = scan_report(example, cache=cache)
    assert cache.misses == misses + 1  # that one result, analysed again under the current version
    assert report.model_dump_json() == scan_report(example).model_dump_json()
    # the same forged result under the current version is served: the version is what keeps it out
    with cache.engine.begin() as conn:
        conn.execute(
            text("UPDATE analyses SET result = :r WHERE sha256 = :s AND analyser = 'endpoints' AND version = :v"),
            {"s": backdoor, "r": forged, "v": analysis_version("endpoints")},
        )
    forged_report = scan_report(example, cache=cache)
    assert any(f.evidence.get("host") == "forged.example" for f in forged_report.findings)


def test_a_changed_rule_file_misses_the_cache(example: Path, cache: ContentCache, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    rule = 'rule diag {{ meta: description = "{}" strings: $a = "factory diagnostics" condition: $a }}\n'
    (rules / "diag.yar").write_text(rule.format("first"))
    first = scan_report(example, rules_dirs=[rules], cache=cache)
    (rules / "diag.yar").write_text(rule.format("second"))
    second = scan_report(example, rules_dirs=[rules], cache=cache)
    messages = {f.message for f in second.findings if f.rule == "backdoor.known"}
    assert "diag: second" in messages and "diag: first" not in messages
    assert "diag: first" in {f.message for f in first.findings}
    assert second.model_dump_json() == scan_report(example, rules_dirs=[rules]).model_dump_json()


def test_scan_cli_uses_the_cache_only_when_asked(
    example_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOSPY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("NOSPY_DATABASE_URL", raising=False)
    out = tmp_path / "plain.json"
    assert run(["scan", str(example_image), "--format", "json", "-o", str(out)]) == 1
    assert not (tmp_path / "data").exists()
    for name in ("cold.json", "warm.json"):
        assert run(["scan", str(example_image), "--cache", "--format", "json", "-o", str(tmp_path / name)]) == 1
        assert (tmp_path / name).read_text() == out.read_text()
    assert (tmp_path / "data" / "nospy.db").is_file()


def test_the_cache_in_postgresql(example: Path) -> None:
    """The service's other database: the same migrations, the same results."""
    try:
        pg = Postgres()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    pg.start()
    try:
        store = ContentCache.open(pg.url)
        plain = scan_report(example).model_dump_json()
        assert scan_report(example, cache=store).model_dump_json() == plain
        misses = store.misses
        assert scan_report(example, cache=store).model_dump_json() == plain
        assert store.misses == misses and store.hits > 0 and _rows(store)
        store.close()
    finally:
        pg.stop()


def _pack(root: Path, image: Path, compression: str) -> Path:
    pack = ["mksquashfs", str(root), str(image), "-all-root", "-noappend", "-quiet", "-comp", compression]
    subprocess.run(pack, check=True)
    return image


@pytest.mark.parametrize("compression", ["gzip", "xz"])
def test_squashfs_files_stored_as_before_are_not_decompressed(
    example: Path, cache: ContentCache, tmp_path: Path, compression: str
) -> None:
    """A release's files are known by their compressed blocks; files changed in place with the same size are not."""
    release = tmp_path / "rootfs"
    shutil.copytree(example, release, symlinks=True)
    scan_report(_pack(release, tmp_path / "one.sqsh", compression), cache=cache)
    script = release / EXAMPLE_BACKDOOR.lstrip("/")  # a small file: its tail lies in a fragment block
    program = release / "usr/sbin/dropbear"  # larger than a block
    changed = {
        script: script.read_bytes().replace(b"2323", b"2324"),
        program: program.read_bytes().replace(b"dropbear", b"dropbeaR", 1),
    }
    for path, content in changed.items():
        assert content != path.read_bytes() and len(content) == path.stat().st_size
        path.write_bytes(content)
    two = _pack(release, tmp_path / "two.sqsh", compression)
    plain = scan_report(two).model_dump_json()

    tree = open_image(two)
    files = [e.path for e in tree.files()]
    read: list[str] = []
    real_read = tree.read

    def counted(path: str, limit: int | None = None) -> bytes:
        read.append(path)
        return real_read(path, limit)

    tree.read = counted  # type: ignore[method-assign]
    scan_tree(tree, cache=cache)
    changed_paths = {"/" + str(p.relative_to(release)) for p in changed}
    assert changed_paths <= set(read), "a file changed in place is read"
    size = {e.path: e.size for e in tree.files()}
    assert sum(size[p] for p in set(read)) < sum(size.values()) // 5, f"most bytes are not decompressed: {read}"

    # every key the cache knows unpacks to the file's bytes as they are in the folder
    keys = {p: tree.storage_key(p) for p in files}
    stored = cache.get_stored(k for k in keys.values() if k)
    assert len(stored) == len(files)
    for p, k in keys.items():
        content = (release / p.lstrip("/")).read_bytes()
        assert k is not None and stored[k] == (hashlib.sha256(content).hexdigest(), len(content)), p

    cached = scan_report(two, cache=cache).model_dump_json()
    assert cached == plain
    assert "2324" in plain and "2323" not in plain  # the change is in the report
