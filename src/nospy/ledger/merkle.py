"""RFC 6962 Merkle trees (RFC 9162 section 2.1): hashing, inclusion and consistency proofs.

Leaves are hashed as SHA-256(0x00 || entry), interior nodes as SHA-256(0x01 || left || right).
Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2; proof generation follows RFC 6962
sections 2.1.1 and 2.1.2 over any source of *perfect* subtree hashes (tiles, or a list in memory).

Consistency from size 0: RFC 9162 defines no proof from the empty tree and transparency-dev/merkle
rejects it, but C2SP tlog-witness sends ``old 0`` with an empty proof. nospy accepts a consistency
check from size 0 only when the proof is empty and the old root is the empty-tree hash SHA-256("")
(and, as for any size, the new root is 32 bytes): the empty tree is a prefix of every tree, and
insisting on the well-defined empty root keeps a garbage old root from passing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from nospy.errors import VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "range_hash",
    "root_of_units",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# perfect(height, index) -> MTH of the perfect subtree of 2**height leaves starting at index * 2**height
PerfectHash = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_of_units(hashes: Sequence[bytes]) -> bytes:
    """MTH over ``hashes`` taken as the tree's units (leaf hashes, or roots of equal perfect subtrees,
    optionally followed by one smaller right-edge subtree).

    Pairing level by level and carrying an odd last node up unchanged builds the same tree as RFC
    6962's split at the largest power of two, and it is one pass per level instead of recursion.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    sha = hashlib.sha256
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _split(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_hash(start: int, end: int, perfect: PerfectHash) -> bytes:
    """MTH(D[start:end]) for a range that RFC 6962's recursion produces: ``start`` is aligned to
    the largest power of two not above ``end - start``."""
    n = end - start
    if n <= 0:
        raise ValueError("empty range")
    if n & (n - 1) == 0:
        height = n.bit_length() - 1
        return perfect(height, start >> height)
    k = _split(n)
    return node_hash(range_hash(start, start + k, perfect), range_hash(start + k, end, perfect))


def inclusion_proof(index: int, size: int, perfect: PerfectHash) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 section 2.1.1, leaf's sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            proof.append(range_hash(lo + k, hi, perfect))
            hi = lo + k
        else:
            proof.append(range_hash(lo, lo + k, perfect))
            lo += k
    proof.reverse()
    return proof


def consistency_proof(size1: int, size2: int, perfect: PerfectHash) -> list[bytes]:
    """PROOF(size1, D[0:size2]) of RFC 6962 section 2.1.2; empty when size1 is 0 or size1 == size2."""
    if not 0 <= size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to {size2}")
    if size1 in (0, size2):
        return []
    proof: list[bytes] = []
    lo, hi, whole = 0, size2, True
    m = size1
    while True:
        if m == hi - lo:
            if not whole:
                proof.append(range_hash(lo, hi, perfect))
            break
        k = _split(hi - lo)
        if m <= k:
            proof.append(range_hash(lo + k, hi, perfect))
            hi = lo + k
        else:
            proof.append(range_hash(lo, lo + k, perfect))
            lo += k
            m -= k
            whole = False
    proof.reverse()
    return proof


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Return if ``proof`` shows the leaf hash ``leaf`` at ``index`` in the tree ``(size, root)``."""
    if not 0 <= index < size:
        raise VerificationError(f"index {index} is not in a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    _check_hash(root, "root hash")
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(proof):
        _check_hash(p, f"proof hash {i}")
        if sn == 0:
            raise VerificationError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is too short")
    if r != root:
        raise VerificationError("inclusion proof does not lead to the root hash")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Return if ``proof`` shows the tree ``(size1, root1)`` is a prefix of ``(size2, root2)``."""
    if not 0 <= size1 <= size2:
        raise VerificationError(f"size {size1} cannot be a prefix of size {size2}")
    if size1 == 0:
        # see the module docstring: the empty tree is a prefix of every tree, with no proof
        if proof:
            raise VerificationError("a consistency proof from the empty tree must be empty")
        if root1 != EMPTY_ROOT:
            raise VerificationError("the root of the empty tree must be SHA-256 of nothing")
        if size2 == 0 and root2 != EMPTY_ROOT:
            raise VerificationError("the root of the empty tree must be SHA-256 of nothing")
        _check_hash(root2, "new root hash")
        return
    if size1 == size2:
        if proof:
            raise VerificationError("a consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise VerificationError("equal sizes with different root hashes")
        return
    _check_hash(root1, "old root hash")
    _check_hash(root2, "new root hash")
    if not proof:
        raise VerificationError("consistency proof is empty")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof hash {i}")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is too short")
    if fr != root1:
        raise VerificationError("consistency proof does not lead to the old root hash")
    if sr != root2:
        raise VerificationError("consistency proof does not lead to the new root hash")
