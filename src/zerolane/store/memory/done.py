"""Writes of the memory backend: done when they are handed over, so waiting returns at
once (see :class:`~zerolane.store.ports.PendingWrite`)."""

from __future__ import annotations

from typing import Generic, NoReturn, TypeVar

T = TypeVar("T")


class Done(Generic[T]):
    """A write already committed: its result."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def result(self) -> T:
        return self._value

    async def result_async(self) -> T:
        return self._value


class Failed:
    """A write that failed, nothing of it stored: its error."""

    __slots__ = ("_error",)

    def __init__(self, error: Exception) -> None:
        self._error = error

    def result(self) -> NoReturn:
        raise self._error

    async def result_async(self) -> NoReturn:
        raise self._error
