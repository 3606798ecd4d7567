"""RFC 6962 hashing and proofs against every transparency-dev/merkle vector, plus properties."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nospy.errors import VerificationError
from nospy.ledger import merkle

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "merkle"


def _cases(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(value: list[str] | None) -> list[bytes]:
    return [base64.b64decode(p) for p in value or []]


def test_every_vector_is_found(shared: Path) -> None:
    assert len(_cases("inclusion")) == 98
    assert len(_cases("consistency")) == 98


@pytest.mark.parametrize("path", _cases("inclusion"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_inclusion_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), _proof(case["proof"]), _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _cases("consistency"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_consistency_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["size1"], case["size2"], _proof(case["proof"]), _b64(case["root1"]), _b64(case["root2"]))
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_consistency_from_empty_tree_policy() -> None:
    """Our documented choice for size1 == 0 (no vector accepts it): empty proof, empty-tree root."""
    root = merkle.root_of_units([merkle.leaf_hash(b"a")])
    merkle.verify_consistency(0, 1, [], merkle.EMPTY_ROOT, root)
    merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(0, 1, [], b"\x00" * 32, root)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(0, 1, [root], merkle.EMPTY_ROOT, root)


def _recursive_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH written exactly as the RFC recursion, as an independent reference."""
    if not leaves:
        return merkle.EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(_recursive_mth(leaves[:k]), _recursive_mth(leaves[k:]))


def _perfect(leaves: list[bytes]) -> merkle.PerfectHash:
    def perfect(height: int, index: int) -> bytes:
        return _recursive_mth(leaves[index << height : (index + 1) << height])

    return perfect


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_generated_proofs_verify(size: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    root = merkle.root_of_units(leaves)
    assert root == _recursive_mth(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(index, size, _perfect(leaves))
    merkle.verify_inclusion(index, size, leaves[index], proof, root)
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(index, size, merkle.leaf_hash(b"other"), proof, root)
    size1 = data.draw(st.integers(1, size))
    old_root = merkle.root_of_units(leaves[:size1])
    cproof = merkle.consistency_proof(size1, size, _perfect(leaves))
    merkle.verify_consistency(size1, size, cproof, old_root, root)
    if size1 < size:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(size1, size, cproof, old_root, merkle.leaf_hash(b"x"))


def test_known_root() -> None:
    # RFC 6962's empty tree and one-leaf tree, as in every implementation
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.root_of_units([merkle.leaf_hash(b"")]).hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
