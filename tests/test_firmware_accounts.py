"""Accounts and default-password cracking against real hashes (libxcrypt, Apache's htpasswd)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nospy.firmware.accounts import parse_htpasswd, parse_passwd, parse_shadow
from nospy.firmware.context import Context
from nospy.firmware.crack import HashKind, crack, crypt_hash, default_credentials, hash_kind, md5crypt
from nospy.firmware.tree import DirectoryTree


def test_default_credentials_list_loads_with_sources() -> None:
    creds = default_credentials()
    assert len(creds.entries) > 2000
    assert {s.id for s in creds.sources} == {"defaultcreds", "mirai", "router-defaults"}
    assert {e.source for e in creds.entries} == {s.id for s in creds.sources}
    assert all(s.licence and s.url for s in creds.sources)
    assert ("root", "xc3511") in {(e.user, e.password) for e in creds.entries}  # Mirai's first entry
    candidates = creds.candidates("ubnt")
    assert candidates[0].user == "ubnt"
    assert len({c.password for c in candidates}) == len(candidates)


def test_md5crypt_matches_libxcrypt() -> None:
    for password, salt in ((b"admin", b"abcdefgh"), (b"", b"x"), (b"a" * 40, b"12345678")):
        assert md5crypt(password, salt) == crypt_hash(password.decode(), f"$1${salt.decode()}$")


def test_apr1_from_real_htpasswd(tmp_path: Path) -> None:
    out = subprocess.run(["htpasswd", "-nbm", "admin", "password"], capture_output=True, text=True, check=True).stdout
    user, stored = out.strip().split(":", 1)
    assert hash_kind(stored) is HashKind.APR1
    hit = crack(HashKind.APR1, stored, user)
    assert hit is not None and hit.password == "password"


def test_sha1_htpasswd() -> None:
    out = subprocess.run(["htpasswd", "-nbs", "admin", "1234"], capture_output=True, text=True, check=True).stdout
    stored = out.strip().split(":", 1)[1]
    hit = crack(HashKind.SHA1, stored, "admin")
    assert hit is not None and hit.password == "1234"


@pytest.mark.parametrize(
    ("setting", "kind", "password"),
    [
        ("Ab", HashKind.DES, "vizxv"),
        ("$1$saltsalt$", HashKind.MD5, "Zte521"),
        ("$5$rounds=5000$saltsalt$", HashKind.SHA256, "hi3518"),
        ("$6$saltsalt$", HashKind.SHA512, "7ujMko0admin"),
        ("$2b$05$abcdefghijklmnopqrstuu", HashKind.BCRYPT, "admin"),
    ],
)
def test_every_hash_kind_is_cracked(setting: str, kind: HashKind, password: str) -> None:
    stored = crypt_hash(password, setting)
    assert hash_kind(stored) is kind
    hit = crack(kind, stored, "root")
    assert hit is not None and hit.password == password
    assert hit.entry.source in {"mirai", "router-defaults", "defaultcreds"}


def test_strong_password_is_not_cracked() -> None:
    assert crack(HashKind.MD5, crypt_hash("q9!Lm#2vX8zR", "$1$abcdefgh$"), "root") is None


def test_locked_fields_are_not_hashes() -> None:
    for field in ("x", "*", "!", "!!", "!$6$abc$def", "*LK*", "NP"):
        assert hash_kind(field) is None


def test_parsers() -> None:
    rows = parse_passwd("root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\nftp:*:21:21::/srv:/bin/false\n")
    assert [(r.name, r.uid, r.shell, r.line) for r in rows] == [("root", 0, "/bin/sh", 1), ("ftp", 21, "/bin/false", 4)]
    assert parse_shadow("root::19000:0:::::\nbin:*:1::::::\n") == {"root": ("", 1), "bin": ("*", 2)}
    assert parse_htpasswd("admin:$apr1$x$y\n\n#c\nbad user:zz\n") == [("admin", "$apr1$x$y", 1)]


def test_login_capable_vs_locked(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "etc").mkdir(parents=True)
    (root / "root/.ssh").mkdir(parents=True)
    (root / "root/.ssh/authorized_keys").write_text("")
    (root / "etc/passwd").write_text(
        "root:x:0:0::/root:/bin/sh\n"  # locked password, but an authorized_keys: can log in by key
        "daemon:x:1:1::/:/usr/sbin/nologin\n"
        "op:x:1000:1000::/home/op:\n"  # empty shell field means /bin/sh
        "nobody:x:65534:65534::/:/bin/false\n"
    )
    (root / "etc/shadow").write_text("root:!:1::::::\ndaemon::1::::::\nop:$1$ab$cd:1::::::\nnobody::1::::::\n")
    from nospy.firmware.accounts import extract

    accounts = {a.name: a for a in extract(Context(DirectoryTree(root), None))}
    assert accounts["root"].login_capable and accounts["root"].authorized_keys == "/root/.ssh/authorized_keys"
    assert not accounts["daemon"].login_capable  # empty password, but a nologin shell
    assert accounts["op"].login_capable
    assert not accounts["nobody"].login_capable
