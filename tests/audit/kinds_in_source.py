"""Every audit event kind the code under ``src/zerolane`` records, read from its source.

A call site is ``<something audit>.record(kind, ...)`` or ``.event(kind, ...)``, the
same method handed to another function (``run_in_threadpool(self._audit.record,
"decision", ...)``), or ``.record(**self._event(...))`` whose helper returns a dict
literal with a ``"kind"``. A kind is a string literal, a module constant, an f-string
(a pattern: ``task.{state}``), or a parameter of the enclosing function resolved at that
function's call sites in the same module. Anything else is reported as unresolved, so
a new way of recording cannot slip past the test that every kind is declared.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import zerolane

SRC = Path(zerolane.__file__).parent
METHODS = frozenset({"record", "event"})


@dataclass
class Found:
    kinds: dict[str, list[str]] = field(default_factory=dict)  # kind -> where
    patterns: dict[str, list[str]] = field(default_factory=dict)  # regex -> where
    unresolved: list[str] = field(default_factory=list)
    call_sites: int = 0


def _is_audit_method(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr in METHODS
        and "audit" in ast.unparse(node.value).lower()
    )


class _Module:
    def __init__(self, path: Path, found: Found) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text(encoding="utf-8"))
        self.found = found
        self.constants = {
            target.id: node.value.value
            for node in self.tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {
            node.name: node
            for node in ast.walk(self.tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        #: each call and the innermost function holding it (or the module)
        self.calls: list[tuple[ast.Call, ast.AST]] = []
        #: each function and the one it is nested in (or the module): closures
        self.enclosing: dict[ast.AST, ast.AST] = {}
        self._collect(self.tree, self.tree)

    def _collect(self, node: ast.AST, owner: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Call):
                self.calls.append((child, owner))
            inner = owner
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                self.enclosing[child] = owner
                inner = child
            self._collect(child, inner)

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(SRC.parent)}:{getattr(node, 'lineno', '?')}"

    def scan(self) -> None:
        for call, owner in self.calls:
            self._call(call, owner)

    def _call(self, call: ast.Call, function: ast.AST) -> None:
        if _is_audit_method(call.func):
            self.found.call_sites += 1
            if call.args:
                self._kind(call.args[0], function, call)
                return
            for keyword in call.keywords:
                if keyword.arg == "kind":
                    self._kind(keyword.value, function, call)
                    return
                if keyword.arg is None:  # **self._event(...)
                    self._spread(keyword.value, call)
                    return
            self.found.unresolved.append(f"{self.where(call)}: no kind")
            return
        for position, arg in enumerate(call.args):  # the method handed on
            if _is_audit_method(arg):
                self.found.call_sites += 1
                if position + 1 < len(call.args):
                    self._kind(call.args[position + 1], function, call)
                else:
                    self.found.unresolved.append(f"{self.where(call)}: no kind after the method")

    def _kind(self, expr: ast.expr, function: ast.AST, call: ast.Call, depth: int = 0) -> None:
        where = self.where(call)
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            self.found.kinds.setdefault(expr.value, []).append(where)
        elif isinstance(expr, ast.JoinedStr):
            pattern = "".join(
                re.escape(str(part.value)) if isinstance(part, ast.Constant) else r"[a-z_]+"
                for part in expr.values
            )
            self.found.patterns.setdefault(pattern, []).append(where)
        elif isinstance(expr, ast.Name) and expr.id in self.constants:
            self.found.kinds.setdefault(self.constants[expr.id], []).append(where)
        elif (
            isinstance(expr, ast.Name)
            and depth < 3
            and (binding := self._binding(function, expr.id)) is not None
        ):
            self._through_callers(binding, expr.id, depth)  # a parameter, maybe a closure's
        else:
            self.found.unresolved.append(f"{where}: kind {ast.unparse(expr)}")

    def _binding(
        self, function: ast.AST, name: str
    ) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The function (this one, or one it is nested in) that has ``name`` as a
        parameter."""
        while isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            if name in [a.arg for a in function.args.args + function.args.kwonlyargs]:
                return function
            function = self.enclosing[function]
        return None

    def _through_callers(
        self, function: ast.FunctionDef | ast.AsyncFunctionDef, name: str, depth: int
    ) -> None:
        params = [a.arg for a in function.args.args]
        index = params.index(name) - (1 if params and params[0] == "self" else 0)
        callers = 0
        for node, caller in self.calls:
            callee = node.func
            called = callee.attr if isinstance(callee, ast.Attribute) else None
            called = callee.id if isinstance(callee, ast.Name) else called
            if called != function.name:
                continue
            callers += 1
            passed = [k.value for k in node.keywords if k.arg == name]
            if passed:
                self._kind(passed[0], caller, node, depth + 1)
            elif 0 <= index < len(node.args):
                self._kind(node.args[index], caller, node, depth + 1)
            else:
                self.found.unresolved.append(f"{self.where(node)}: kind not passed")
        if callers == 0:
            self.found.unresolved.append(f"{self.where(function)}: {name} has no caller here")

    def _spread(self, expr: ast.expr, call: ast.Call) -> None:
        callee = expr.func if isinstance(expr, ast.Call) else None
        name = callee.attr if isinstance(callee, ast.Attribute) else None
        helper = self.functions.get(name or "")
        kinds = (
            [
                value
                for node in ast.walk(helper)
                if isinstance(node, ast.Dict)
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and key.value == "kind"
            ]
            if helper is not None
            else []
        )
        if not kinds:
            self.found.unresolved.append(f"{self.where(call)}: {ast.unparse(expr)}")
        for value in kinds:
            self._kind(value, helper or self.tree, call)


def recorded_kinds() -> Found:
    found = Found()
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(SRC / "audit"):
            continue  # the log itself: it records what it is given
        _Module(path, found).scan()
    return found
