"""Where in a ``.cedar`` file a policy, or a syntax error, is: ``file:line:column``.

The Cedar binding reports errors without source positions, and names policies by the
ids it gives them (``policy0``, ``policy1``... in the order of the text), not by their
``@id``. A policy file is a sequence of statements, each ending at a top-level ``;``
(outside string literals and ``//`` comments), one policy each: so the statement a
policy number names, and the first statement a growing prefix of the text fails to
parse at, give a line and column a person can open.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

#: "for policy `policy9`, " at the start of a validation message
_POLICY_REF = re.compile(r"^for policy `policy\d+`, ")
_POLICY_NUMBER = re.compile(r"^policy(\d+)$")


@dataclass(frozen=True, slots=True)
class Span:
    """One statement: from its first token to its ``;`` (offsets into the text)."""

    start: int
    end: int


def statements(text: str) -> list[Span]:
    """The statements of ``text``, in order; a last one without its ``;`` included."""
    spans: list[Span] = []
    start: int | None = None
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "/" and text.startswith("//", i):  # a comment runs to the line's end
            newline = text.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        if char.isspace():
            i += 1
            continue
        if start is None:
            start = i
        if char == '"':  # a string literal, with backslash escapes
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if char == ";":
            spans.append(Span(start, i + 1))
            start = None
        i += 1
    if start is not None:
        spans.append(Span(start, n))
    return spans


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def policy_position(text: str, policy_id: str) -> tuple[int, int] | None:
    """Where the policy the binding calls ``policy_id`` (``policyN``) starts."""
    match = _POLICY_NUMBER.match(policy_id)
    if match is None:
        return None
    spans = statements(text)
    number = int(match.group(1))
    return line_column(text, spans[number].start) if number < len(spans) else None


def syntax_error_position(text: str, parses: Callable[[str], bool]) -> tuple[int, int] | None:
    """Where the first statement that does not parse starts: the first prefix of whole
    statements that ``parses`` refuses ends with it (None when every prefix parses)."""
    for span in statements(text):
        if not parses(text[: span.end]):
            return line_column(text, span.start)
    return None


def without_policy_reference(message: str) -> str:
    """A validation message without its leading "for policy `policyN`, "."""
    return _POLICY_REF.sub("", message)
