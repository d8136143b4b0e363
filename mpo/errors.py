"""The one error type of the package.

Every invalid argument raises :class:`MPOError`. It subclasses :class:`ValueError`, so code that
already catches ``ValueError`` keeps working. Messages name the value received and what was
expected, and give a valid example where one helps.
"""

from __future__ import annotations

__all__ = ["MPOError", "TruncationWarning"]


class MPOError(ValueError):
    """Invalid input to an ``mpo`` function (bad shape, dims, bond, tolerance or values)."""


class TruncationWarning(UserWarning):
    """A requested tolerance could not be met because ``bond`` capped a rank."""
