"""Route templates: ``METHOD /reports/{id}`` -> (action, ``finance/reports/{id}``).

A template is ``/``-separated segments, each a literal or one ``{variable}`` that
matches exactly one (non-empty) path segment. The resource template may use the
path's variables anywhere. When several routes match a path, the most literal one wins
(``/reports/latest`` before ``/reports/{id}``), so matching never depends on order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from zerolane.errors import InvalidInput
from zerolane.policy.patterns import parse_value
from zerolane.types import Sensitivity

_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")
_LITERAL = re.compile(r"[A-Za-z0-9._~!$&'()*+,=:@-]+")
_METHOD = re.compile(r"[A-Z]{1,16}")
_RESOURCE_LITERAL = re.compile(r"[\x21-\x7e]*")


@dataclass(frozen=True, slots=True)
class Route:
    """One mapped operation of an upstream."""

    method: str
    path: str
    action: str
    resource: str
    sensitivity: str | None = None
    #: in shadow mode, the name decisions give it (``route:<upstream> <METHOD> <path>``):
    #: what the policies deny is let through, audited as a would-deny; None: enforced
    shadow: str | None = None
    #: per segment: the literal, or None for a variable
    literals: tuple[str | None, ...] = field(default=(), compare=False)
    variables: tuple[str, ...] = field(default=(), compare=False)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """The variables' values when ``segments`` match this route, else ``None``."""
        if len(segments) != len(self.literals):
            return None
        values: dict[str, str] = {}
        names = iter(self.variables)
        for literal, segment in zip(self.literals, segments, strict=True):
            if literal is None:
                if not segment:
                    return None
                values[next(names)] = segment
            elif literal != segment:
                return None
        return values

    def resource_for(self, values: Mapping[str, str]) -> str:
        return _VARIABLE.sub(lambda m: values[m.group(1)], self.resource)

    @property
    def specificity(self) -> tuple[int, ...]:
        return tuple(0 if literal is not None else 1 for literal in self.literals)


def _segments(path: str, where: str) -> tuple[tuple[str | None, ...], tuple[str, ...]]:
    if not path.startswith("/"):
        raise InvalidInput("config.route_path", f"{where}path must start with '/'")
    literals: list[str | None] = []
    variables: list[str] = []
    for index, segment in enumerate(path.split("/")[1:]):
        last = index == path.count("/") - 1
        variable = _VARIABLE.fullmatch(segment)
        if variable:
            if variable.group(1) in variables:
                raise InvalidInput("config.route_path", f"{where}path repeats variable {segment!r}")
            variables.append(variable.group(1))
            literals.append(None)
        elif segment in (".", "..") or not (_LITERAL.fullmatch(segment) or (last and not segment)):
            raise InvalidInput(
                "config.route_path",
                f"{where}path segment {segment!r} must be a literal or one whole {{variable}}",
            )
        else:
            literals.append(segment)
    return tuple(literals), tuple(variables)


def _check_resource(resource: str, variables: tuple[str, ...], where: str) -> None:
    used = _VARIABLE.findall(resource)
    unknown = sorted(set(used) - set(variables))
    if unknown:
        raise InvalidInput(
            "config.route_resource", f"{where}resource uses unknown variable(s) {unknown}"
        )
    sample = _VARIABLE.sub("x", resource)
    if not _RESOURCE_LITERAL.fullmatch(sample) or "{" in sample or "}" in sample:
        raise InvalidInput("config.route_resource", f"{where}resource {resource!r} is malformed")
    try:
        parse_value(sample)
    except InvalidInput as err:
        raise InvalidInput(
            "config.route_resource", f"{where}resource {resource!r}: {err.message}"
        ) from err


def check_sensitivity(label: str, key: str) -> str:
    """``label`` if it names a sensitivity, else ``config.sensitivity`` naming ``key``."""
    try:
        Sensitivity.parse(label)
    except ValueError as err:
        raise InvalidInput("config.sensitivity", f"{key}: {err}") from None
    return label


def make_route(
    method: str,
    path: str,
    action: str,
    resource: str,
    sensitivity: str | None,
    where: str,
) -> Route:
    """A validated route (``where`` prefixes messages with the config key)."""
    method = method.upper()
    if not _METHOD.fullmatch(method):
        raise InvalidInput("config.route_method", f"{where}method {method!r} is not an HTTP method")
    literals, variables = _segments(path, where)
    if not action or len(action) > 256 or not action.isprintable():
        raise InvalidInput("config.route_action", f"{where}action must be 1..256 characters")
    _check_resource(resource, variables, where)
    if sensitivity is not None:
        check_sensitivity(sensitivity, f"{where}sensitivity")
    return Route(
        method, path, action, resource, sensitivity, literals=literals, variables=variables
    )


class RouteTable:
    """An upstream's routes indexed by method, most literal first."""

    def __init__(self, routes: Iterable[Route], where: str) -> None:
        by_method: dict[str, list[Route]] = {}
        seen: dict[tuple[str, tuple[str | None, ...]], str] = {}
        for route in routes:
            shape = (route.method, route.literals)
            if shape in seen:
                raise InvalidInput(
                    "config.route_duplicate",
                    f"{where}: {route.method} {route.path} duplicates {seen[shape]}",
                )
            seen[shape] = f"{route.method} {route.path}"
            by_method.setdefault(route.method, []).append(route)
        self._routes = {m: sorted(rs, key=lambda r: r.specificity) for m, rs in by_method.items()}

    def __len__(self) -> int:
        return sum(len(routes) for routes in self._routes.values())

    def routes(self) -> list[Route]:
        return [route for routes in self._routes.values() for route in routes]

    def match(self, method: str, rest: str) -> tuple[Route, dict[str, str]] | None:
        """The route for ``method`` and the path below the prefix, with its variables."""
        if not rest.startswith("/"):
            return None
        segments = rest.split("/")[1:]
        for route in self._routes.get(method, ()):
            values = route.match(segments)
            if values is not None:
                return route, values
        return None
