"""Statement spans and positions in policy text (what error messages point at)."""

from __future__ import annotations

from zerolane.policy.locations import (
    line_column,
    policy_position,
    statements,
    syntax_error_position,
    without_policy_reference,
)

TEXT = (
    "// a header comment; with a semicolon\n"
    '@id("a")\npermit (principal, action, resource) when { context.x == "a;b" };\n'
    "\n"
    '  @id("b") forbid (principal, action, resource)\n'
    '  when { context.y == "esc\\";aped" };\n'
)


def test_statements_end_at_top_level_semicolons_only() -> None:
    spans = statements(TEXT)
    assert [TEXT[s.start : s.start + 8] for s in spans] == ['@id("a")', '@id("b")']
    assert all(TEXT[s.end - 1] == ";" for s in spans)


def test_policy_numbers_map_to_their_statement() -> None:
    assert policy_position(TEXT, "policy0") == (2, 1)
    assert policy_position(TEXT, "policy1") == (5, 3)
    assert policy_position(TEXT, "policy7") is None
    assert policy_position(TEXT, "not-a-number") is None


def test_an_unterminated_last_statement_is_a_statement() -> None:
    assert len(statements(TEXT + "permit (principal")) == 3


def test_the_first_statement_that_does_not_parse_is_named() -> None:
    def parses(prefix: str) -> bool:
        return "BROKEN" not in prefix

    text = TEXT + '@id("c") BROKEN;\n'
    assert syntax_error_position(text, parses) == (7, 1)
    assert syntax_error_position(TEXT, parses) is None


def test_line_column_is_one_based() -> None:
    assert line_column("ab\ncd", 0) == (1, 1)
    assert line_column("ab\ncd", 4) == (2, 2)


def test_the_bindings_policy_reference_is_dropped() -> None:
    message = "for policy `policy12`, attribute `x` not found"
    assert without_policy_reference(message) == "attribute `x` not found"
    assert without_policy_reference("other text") == "other text"
