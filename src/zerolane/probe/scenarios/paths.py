"""Path normalization bypasses and method overrides: does the target decide on the
request it serves?

A path trick starts in the allowed path's directory and climbs, in a spelling the
target may decode, normalize or strip only after deciding, to the forbidden path
(``/finance/reports/q3/%2e%2e/payroll`` for ``/finance/reports/payroll``). Each attack
is sent byte for byte, with the forbidden request's method and a proof for exactly the
URL on the wire. The forbidden request sent plainly must be refused first, else
nothing is known (``inconclusive``).

A method override header names the forbidden method on the allowed request: a target
(or a framework behind it) that honours it serves another request than the one
decided on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from zerolane.probe.context import ProbeContext
from zerolane.probe.model import Exchange, Need, Outcome, Result, Scenario
from zerolane.probe.profile import Call
from zerolane.probe.runner import judge

#: the method override headers frameworks honour (Rails, Express, Symfony, ASP.NET, ...)
OVERRIDE_HEADERS = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")


@dataclass(frozen=True)
class Trick:
    """A path scenario: its id and the spellings of one climb (``../``)."""

    id: str
    climbs: tuple[str, ...]


TRICKS = (
    Trick("path.encoded_dots", ("%2e%2e/", "%2E%2E/", ".%2e/")),
    Trick("path.encoded_slash", ("..%2f", "..%2F", "%2e%2e%2f")),
    Trick("path.semicolon", ("..;/", "..;probe=1/")),
    Trick("path.backslash", ("..\\", "..%5c", "..%5C")),
    Trick("path.double_encoding", ("%252e%252e%252f", "%252e%252e/", "..%252f")),
)


def path_target(context: ProbeContext) -> Call | None:
    """The forbidden request a path trick aims at: the profile's ``forbidden_path``, or
    its ``forbidden`` request when that one is on another path than the allowed one."""
    profile = context.profile
    if profile.forbidden_path is not None:
        return profile.forbidden_path
    forbidden = profile.forbidden
    if forbidden is not None and _path(forbidden.path) != _path(profile.allowed.path):
        return forbidden
    return None


def _path(path: str) -> str:
    return path.partition("?")[0]


def _segments(path: str) -> list[str]:
    return [s for s in _path(path).split("/") if s]


def tricked_paths(allowed: str, forbidden: str, climb: str) -> list[str]:
    """Paths that start in ``allowed``'s directory (the allowed path itself taken as a
    directory, then its parent) and resolve to ``forbidden`` once ``climb`` is read as
    ``../``; ``forbidden``'s query is kept."""
    target = _segments(forbidden)
    query = forbidden.partition("?")[2]
    whole = _segments(allowed)
    found: list[str] = []
    for start in (whole, whole[:-1]):
        common = 0
        while common < min(len(start), len(target)) and start[common] == target[common]:
            common += 1
        if common == len(start):  # nothing to climb out of: climb one and come back
            common -= 1
        if common < 0:  # the root as the start: nothing to climb
            continue
        lead = "".join(f"/{s}" for s in start)
        path = f"{lead}/{climb * (len(start) - common)}{'/'.join(target[common:])}"
        found.append(path + (f"?{query}" if query else ""))
    return found


def _redirected_to(exchange: Exchange, url: str) -> bool:
    """A 3xx whose ``Location`` is ``url`` itself: the target normalized the path and
    sent the client to ask again (where the plain request is refused), no bypass."""
    location = exchange.response_headers.get("location")
    if exchange.status is None or not 300 <= exchange.status < 400 or not location:
        return False
    return urlsplit(urljoin(exchange.url, location))._replace(query="", fragment="") == urlsplit(
        url
    )._replace(query="", fragment="")


def _path_run(trick: Trick) -> Callable[[ProbeContext], Result]:
    def run(context: ProbeContext) -> Result:
        target = path_target(context)
        if target is None:
            return Result(
                trick.id,
                Outcome.NOT_APPLICABLE,
                "the forbidden request differs from the allowed one by its method only and "
                "no forbidden_path is given: a path trick has nothing to reach",
            )
        credential = context.fresh()
        twin = context.twin(credential)
        plain = context.send("setup", target, credential)
        if plain.accepted:
            return Result(
                trick.id,
                Outcome.INCONCLUSIVE,
                f"the forbidden request is not forbidden: {target.method} {target.path} "
                f"answered {plain.status}",
                (plain, twin),
            )
        plain_url = context.profile.absolute(_path(target.path))
        attacks: list[Exchange] = []
        for climb in trick.climbs:
            for raw in tricked_paths(context.profile.allowed.path, target.path, climb):
                sent = Call(target.method, raw, target.body, target.headers)
                attacks.append(context.send("attack", sent, credential, raw_path=raw))
        if not attacks:
            return Result(
                trick.id,
                Outcome.NOT_APPLICABLE,
                "the allowed path is the root: there is no directory to climb out of",
                (twin, plain),
            )
        return judge(
            trick.id,
            twin,
            attacks,
            accepted=lambda a: a.accepted and not _redirected_to(a, plain_url),
            evidence=(plain,),
        )

    return run


# method override


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _json(body: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(body)
    except ValueError:
        return False, None


def agrees(first: Any, second: Any, other: Any) -> bool:
    """Whether ``other`` agrees with what ``first`` and ``second`` (two answers to the
    same plain request) agree on: a part that differs between the two is volatile (a
    timestamp, a signature, a request id) and left out; a part they share must be the
    same in ``other``, shape included."""
    if first == second:
        return bool(other == first)
    if isinstance(first, dict) and isinstance(second, dict) and first.keys() == second.keys():
        return (
            isinstance(other, dict)
            and other.keys() == first.keys()
            and all(agrees(first[k], second[k], other[k]) for k in first)
        )
    if isinstance(first, list) and isinstance(second, list) and len(first) == len(second):
        return (
            isinstance(other, list)
            and len(other) == len(first)
            and all(agrees(a, b, c) for a, b, c in zip(first, second, other, strict=True))
        )
    return True  # differs between two plain answers: volatile


def _override(context: ProbeContext) -> Result:
    scenario = "method.override"
    allowed, forbidden = context.profile.allowed, context.profile.forbidden
    verb = forbidden.method.upper() if forbidden is not None else allowed.method.upper()
    if verb == allowed.method.upper():
        return Result(
            scenario,
            Outcome.NOT_APPLICABLE,
            "the forbidden request has the allowed one's method: there is no method to name",
        )
    credential = context.fresh()
    twin = context.twin(credential)
    again = context.send("setup", allowed, credential)
    attacks = [
        context.send("attack", allowed, credential, headers={name: verb})
        for name in OVERRIDE_HEADERS
    ]
    if not (twin.accepted and again.accepted):
        return judge(scenario, twin, attacks, evidence=(again,))
    stable = twin.status == again.status and _digest(twin.body) == _digest(again.body)
    parsed = _json(twin.body), _json(again.body)
    comparable = stable or (parsed[0][0] and parsed[1][0])

    def took_effect(attack: Exchange) -> bool:
        """Accepted with another answer than the plain request's: the override was
        honoured (an override dropped or ignored leaves the answer as it was)."""
        if not attack.accepted:
            return False
        if attack.status != twin.status:
            return True
        if not comparable:
            return False
        if stable:
            return _digest(attack.body) != _digest(twin.body)
        ok, answer = _json(attack.body)
        return not ok or not agrees(parsed[0][1], parsed[1][1], answer)

    if not comparable and not any(took_effect(a) for a in attacks):
        return Result(
            scenario,
            Outcome.INCONCLUSIVE,
            "the override was accepted and the allowed request's answer changes from one "
            "request to the next (not JSON): whether the override took effect is unknown",
            (again, twin, *attacks),
        )
    result = judge(scenario, twin, attacks, accepted=took_effect, evidence=(again,))
    if result.outcome is Outcome.PASS and any(a.accepted for a in attacks):
        answers = sorted({str(a.status) for a in attacks})
        reason = (
            "the override was dropped or ignored: the answer is the plain request's "
            f"({', '.join(answers)})"
        )
        return dataclasses.replace(result, reason=reason)
    return result


def _path_scenario(trick: Trick, title: str, attack: str) -> Scenario:
    return Scenario(
        id=trick.id,
        title=title,
        attack=attack,
        expect="Refused: the target decides on the path it serves, or refuses a path "
        "another parser could read differently.",
        surface="http",
        run=_path_run(trick),
        needs=frozenset({Need.FORBIDDEN_REQUEST}),
    )


SCENARIOS: Sequence[Scenario] = (
    _path_scenario(
        TRICKS[0],
        "Path with encoded dots",
        "Climb from the allowed path to the forbidden one with %2e%2e segments.",
    ),
    _path_scenario(
        TRICKS[1],
        "Path with an encoded slash",
        "Climb from the allowed path to the forbidden one with ..%2f.",
    ),
    _path_scenario(
        TRICKS[2],
        "Path with ; parameters",
        "Climb from the allowed path to the forbidden one with ..;/ segments.",
    ),
    _path_scenario(
        TRICKS[3],
        "Path with backslashes",
        "Climb from the allowed path to the forbidden one with ..\\ and ..%5c.",
    ),
    _path_scenario(
        TRICKS[4],
        "Path double encoded",
        "Climb from the allowed path to the forbidden one with %252e%252e%252f.",
    ),
    Scenario(
        id="method.override",
        title="Method override header",
        attack="Send the allowed request with X-HTTP-Method-Override, X-HTTP-Method and "
        "X-Method-Override naming the forbidden request's method.",
        expect="Refused, or the header dropped or ignored: the answer is the plain "
        "allowed request's.",
        surface="http",
        run=_override,
        needs=frozenset({Need.FORBIDDEN_REQUEST}),
    ),
)
