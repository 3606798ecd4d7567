from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from nospy import agreement as agr
from nospy import dsse
from nospy.errors import InputError, VerificationError
from nospy.keys import SigningKey, generate


def test_pae_matches_spec_example() -> None:
    # from the DSSE protocol document
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.fixture
def signed(tmp_path: Path, examples: Path) -> tuple[Path, tuple[SigningKey, SigningKey]]:
    a, b = generate("acme"), generate("bharat")
    env = agr.sign(examples / "agreement.yaml", a)
    path = tmp_path / "agreement.dsse.json"
    path.write_text(env.to_json())
    path.write_text(agr.sign(path, b).to_json())
    return path, (a, b)


def test_two_party_round_trip(signed: tuple[Path, tuple[SigningKey, SigningKey]], examples: Path) -> None:
    path, (a, b) = signed
    env = agr.read_envelope(path)
    assert [s.keyid for s in env.signatures] == [a.verifier.label, b.verifier.label]
    got = agr.verify(env, [a.verifier, b.verifier])
    assert got == agr.load(examples / "agreement.yaml")
    assert env.payload_bytes == agr.canonical_json(got)


def test_every_byte_of_the_payload_is_covered(signed: tuple[Path, tuple[SigningKey, SigningKey]]) -> None:
    path, (a, _) = signed
    env = agr.read_envelope(path)
    payload = env.payload_bytes
    for i in range(0, len(payload), max(1, len(payload) // 64)):
        changed = bytearray(payload)
        changed[i] ^= 0x01
        forged = env.model_copy(update={"payload": base64.b64encode(bytes(changed)).decode()})
        with pytest.raises(VerificationError, match="does not match the payload"):
            dsse.verify(forged, [a.verifier], agr.PAYLOAD_TYPE)


def test_payload_type_is_signed(signed: tuple[Path, tuple[SigningKey, SigningKey]]) -> None:
    path, (a, _) = signed
    env = agr.read_envelope(path).model_copy(update={"payload_type": "application/other"})
    with pytest.raises(VerificationError):
        dsse.verify(env, [a.verifier], "application/other")


def test_missing_signer_wrong_key_and_no_key(signed: tuple[Path, tuple[SigningKey, SigningKey]]) -> None:
    path, (a, b) = signed
    stranger = generate("stranger")
    env = agr.read_envelope(path)
    with pytest.raises(VerificationError, match=r"stranger.* did not sign"):
        agr.verify(env, [a.verifier, stranger.verifier])
    only_a = env.model_copy(update={"signatures": env.signatures[:1]})
    with pytest.raises(VerificationError, match=r"bharat.* did not sign"):
        agr.verify(only_a, [a.verifier, b.verifier])
    with pytest.raises(VerificationError, match="no verifier key"):
        agr.verify(env, [])


def test_signature_under_wrong_keyid_does_not_count(signed: tuple[Path, tuple[SigningKey, SigningKey]]) -> None:
    path, (a, _b) = signed
    env = agr.read_envelope(path)
    # b's signature relabelled as a's, a's removed: a did not sign
    relabelled = env.model_copy(
        update={"signatures": (env.signatures[1].model_copy(update={"keyid": a.verifier.label}),)}
    )
    with pytest.raises(VerificationError, match="does not match"):
        agr.verify(relabelled, [a.verifier])


@pytest.mark.parametrize("sig", ["not base64!!", base64.b64encode(b"short").decode(), ""])
def test_malformed_signature(signed: tuple[Path, tuple[SigningKey, SigningKey]], sig: str) -> None:
    path, (a, _) = signed
    env = agr.read_envelope(path)
    bad = env.model_copy(update={"signatures": (env.signatures[0].model_copy(update={"sig": sig}),)})
    with pytest.raises(VerificationError, match="malformed signature"):
        agr.verify(bad, [a.verifier])


def test_countersign_refuses_same_key_and_noncanonical(
    signed: tuple[Path, tuple[SigningKey, SigningKey]], tmp_path: Path
) -> None:
    path, (a, _) = signed
    with pytest.raises(InputError, match="already signed"):
        agr.sign(path, a)
    env = json.loads(path.read_text())
    payload = json.loads(base64.b64decode(env["payload"]))
    env["payload"] = base64.b64encode(json.dumps(payload, indent=1).encode()).decode()
    odd = tmp_path / "odd.dsse.json"
    odd.write_text(json.dumps(env))
    with pytest.raises(InputError, match="not the canonical JSON"):
        agr.sign(odd, generate("c"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{}",
        '{"payload": "x", "payloadType": "t"}',
        '{"payload": "%%%", "payloadType": "t", "signatures": []}',
        '{"payload": "", "payloadType": "t", "signatures": [], "extra": 1}',
        "[" * 100000,
    ],
)
def test_malformed_envelopes(text: str) -> None:
    with pytest.raises(InputError):
        dsse.parse(text)


def test_envelope_of_other_type_is_not_an_agreement(tmp_path: Path) -> None:
    env = dsse.sign("application/vnd.in-toto+json", b"{}", generate("k"))
    path = tmp_path / "x.json"
    path.write_text(env.to_json())
    with pytest.raises(InputError, match="not a nospy agreement"):
        agr.read_envelope(path)
