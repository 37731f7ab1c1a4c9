"""A string wrapper that keeps API keys out of reprs, logs and error messages."""

from __future__ import annotations

import hmac

__all__ = ["SecretStr"]

_MASK = "**********"


class SecretStr:
    """An API key or other secret whose ``repr()`` and ``str()`` show only asterisks.

    Call `get_secret_value` at the one place that needs the real value, such as the
    code that builds an ``Authorization`` header. Instances pickle with their value,
    because configuration objects travel to actor processes.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"SecretStr needs a str, got {type(value).__name__}")
        self._value = value

    def get_secret_value(self) -> str:
        """Return the secret itself. Never log or print the result."""
        return self._value

    def __repr__(self) -> str:
        return f"SecretStr('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretStr):
            return NotImplemented
        # Constant-time comparison, so comparing keys does not leak their prefix by timing.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((SecretStr, self._value))

    def __getstate__(self) -> tuple[str]:
        # A tuple, because pickle skips __setstate__ for a false state such as "".
        return (self._value,)

    def __setstate__(self, state: tuple[str]) -> None:
        (self._value,) = state
