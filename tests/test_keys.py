from __future__ import annotations

import json
from pathlib import Path

import pytest

from nospy import keys
from nospy.errors import InputError, VerificationError


def _cases(shared: Path) -> list[dict[str, str]]:
    cases: list[dict[str, str]] = json.loads((shared / "vectors" / "signed-note.json").read_text())["cases"]
    assert len(cases) >= 3
    return cases


def test_vectors_open(shared: Path) -> None:
    for case in _cases(shared):
        vkey = keys.parse_verifier_key(case["vkey"])
        assert str(vkey) == case["vkey"]
        note = keys.open_note(case["note"], [vkey])
        assert note.verified_by == (vkey,)
        assert case["note"].startswith(note.text)


def test_vectors_sign_reproduces_signature_line(shared: Path) -> None:
    signed = [c for c in _cases(shared) if "skey" in c]
    assert signed
    for case in signed:
        skey = keys.parse_signing_key(case["skey"])
        assert str(skey) == case["skey"]
        assert str(skey.verifier) == case["vkey"]
        text = case["note"][: case["note"].rindex("\n\n") + 1]
        assert keys.sign_note(text, [skey]) == case["note"]


def test_vector_note_tampered_fails(shared: Path) -> None:
    case = _cases(shared)[0]
    vkey = keys.parse_verifier_key(case["vkey"])
    with pytest.raises(VerificationError):
        keys.open_note(case["note"].replace("example", "exbmple", 1), [vkey])


def test_open_note_needs_known_key(shared: Path) -> None:
    cases = _cases(shared)
    other = keys.parse_verifier_key(cases[2]["vkey"])
    with pytest.raises(VerificationError, match="not signed by any"):
        keys.open_note(cases[0]["note"], [other])
    with pytest.raises(VerificationError, match="no verifier key"):
        keys.open_note(cases[0]["note"], [])


def test_generate_round_trip() -> None:
    key = keys.generate("acme.example")
    again = keys.parse_signing_key(str(key))
    assert again == key
    assert keys.parse_verifier_key(str(key.verifier)) == key.verifier
    note = keys.sign_note("hello\n", [key])
    assert keys.open_note(note, [key.verifier]).text == "hello\n"
    assert "seed" not in repr(key) and str(key) not in repr(key)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name+abcd+AAAA",
        "name+zzzzzzzz+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # hash off by one
        "PeterNeumann+c74f20a3+AhpTc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # algorithm byte 2
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQ!!wxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not base64
        "a b+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys(text: str) -> None:
    with pytest.raises(InputError):
        keys.parse_verifier_key(text)


def test_signing_key_must_be_private() -> None:
    with pytest.raises(InputError, match="PRIVATE"):
        keys.parse_signing_key("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


@pytest.mark.parametrize("name", ["", "a+b", "a b", "tab\there"])
def test_bad_key_names(name: str) -> None:
    with pytest.raises(InputError):
        keys.generate(name)


def test_note_text_rules() -> None:
    key = keys.generate("k")
    with pytest.raises(InputError, match="newline"):
        keys.sign_note("no newline", [key])
    with pytest.raises(InputError, match="control"):
        keys.sign_note("bell\a\n", [key])


def test_unknown_signatures_are_kept_not_trusted() -> None:
    a, b = keys.generate("a"), keys.generate("b")
    note = keys.sign_note("text\n", [a, b])
    opened = keys.open_note(note, [a.verifier])
    assert opened.verified_by == (a.verifier,)
    assert [name for name, _ in opened.unverified] == ["b"]


def test_known_key_with_bad_signature_fails() -> None:
    a = keys.generate("a")
    note = keys.sign_note("text\n", [a])
    line = note.rsplit("\n", 2)[-2]
    forged = note.replace(line, line[:-6] + ("AAAA==" if not line.endswith("AAAA==") else "BBBB=="))
    with pytest.raises(VerificationError):
        keys.open_note(forged, [a.verifier])


def test_read_key_files(tmp_path: Path) -> None:
    key = keys.generate("file")
    (tmp_path / "k.skey").write_text(f"{key}\n")
    (tmp_path / "k.vkey").write_text(f"{key.verifier}\n")
    assert keys.read_signing_key(tmp_path / "k.skey") == key
    assert keys.read_verifier_key(tmp_path / "k.vkey") == key.verifier
    with pytest.raises(InputError, match="missing"):
        keys.read_verifier_key(tmp_path / "missing.vkey")
    (tmp_path / "big.vkey").write_bytes(b"x" * 10000)
    with pytest.raises(InputError, match="too large"):
        keys.read_verifier_key(tmp_path / "big.vkey")
