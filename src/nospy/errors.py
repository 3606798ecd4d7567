"""The one exception family of nospy.

Everything that goes wrong for a reason the user can act on is a `NospyError`; the CLI turns each
kind into its exit code (DESIGN.md): `InputError` is exit 2 (bad usage, unreadable or invalid input),
`VerificationError` is exit 1 (a signature, proof or clause does not hold).
"""

from __future__ import annotations


class NospyError(Exception):
    """Base of every error nospy raises on purpose."""


class InputError(NospyError):
    """Input that cannot be read or does not follow its format."""


class VerificationError(NospyError):
    """A signature, proof or other check failed: the input was readable but is not trustworthy."""
