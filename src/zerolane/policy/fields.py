"""A strict reader over one mapping of a policy test file: typed fields, clear errors.

Every error names the place (``file: cases[3] (name): task.ceiling``) and what was
expected; unknown keys are refused so a typo never silently becomes a default.
"""

from __future__ import annotations

import enum
from typing import Final, NoReturn, TypeVar

from zerolane.errors import InvalidInput
from zerolane.types import Sensitivity

E = TypeVar("E", bound=enum.Enum)
REASON = "policy_test.invalid"
_REQUIRED: Final = object()


class Fields:
    """Typed access to the keys of one mapping; ``where`` prefixes every error."""

    def __init__(self, data: object, where: str, allowed: set[str], path: str = "") -> None:
        self.where, self.path = where, path
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidInput(REASON, f"{self._at('')}must be a mapping")
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise InvalidInput(
                REASON,
                f"{self._at('')}unknown key(s) {', '.join(unknown)} "
                f"(allowed: {', '.join(sorted(allowed))})",
            )
        self.data: dict[str, object] = data

    def _at(self, key: str) -> str:
        name = f"{self.path}.{key}" if self.path and key else self.path or key
        return f"{self.where}: {name}: " if name else f"{self.where}: "

    def fail(self, key: str, message: str) -> NoReturn:
        raise InvalidInput(REASON, f"{self._at(key)}{message}")

    def renamed(self, where: str) -> Fields:
        copy = Fields.__new__(Fields)
        copy.where, copy.path, copy.data = where, self.path, self.data
        return copy

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, default: object) -> object:
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            self.fail(key, "required")
        return default

    def text(self, key: str, default: object = _REQUIRED) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            self.fail(key, f"must be a string, not {type(value).__name__}")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            self.fail(key, f"must be a string, not {type(value).__name__}")
        return value

    def integer(self, key: str, default: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"must be an integer, not {type(value).__name__}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"must be a number, not {type(value).__name__}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {type(value).__name__}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self._get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, "must be a list of strings")
        return tuple(value)

    def mapping(self, key: str) -> dict[str, object]:
        """A free-form mapping with string keys (``{}`` when absent)."""
        value = self._get(key, {})
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            self.fail(key, "must be a mapping with string keys")
        return value

    def items(self, key: str) -> list[object]:
        value = self._get(key, _REQUIRED)
        if not isinstance(value, list):
            self.fail(key, "must be a list")
        return value

    def sensitivity(self, key: str, default: str) -> Sensitivity:
        label = self.text(key, default)
        try:
            return Sensitivity.parse(label)
        except ValueError as err:
            self.fail(key, str(err))

    def choice(self, key: str, kind: type[E], default: str) -> E:
        label = self.text(key, default)
        try:
            return kind(label)
        except ValueError:
            self.fail(key, f"must be one of {', '.join(str(m.value) for m in kind)}, not {label!r}")

    def section(self, key: str, allowed: set[str]) -> Fields:
        """The nested mapping under ``key`` (an absent section is empty)."""
        path = f"{self.path}.{key}" if self.path else key
        return Fields(self.data.get(key), self.where, allowed, path)
