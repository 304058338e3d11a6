"""Yelp's detect-secrets, through its public plugin API: which secrets have a known shape.

Its pattern plugins (:data:`PLUGINS`) run on a file's text once (each plugin's
``denylist`` of compiled patterns over the whole text): only the lines a pattern
touches are handed to the plugin's ``analyze_string``, which confirms and yields the
secret (the JWT plugin, for one, checks the token decodes). Then detect-secrets'
heuristic filters apply; its allowlist comment (``pragma: allowlist secret``) is honoured
for every finding (:func:`allowlisted`).

Left out, because they report what is not a secret in ordinary code, config and docs:
``KeywordDetector`` (any ``password = ...``; zerolane's own rules read secret-named keys
only where automation keeps them, :mod:`zerolane.posture.secret_rules`), the two
high-entropy detectors (hashes, ids, lock files) and ``IPPublicDetector`` (an address
is not a credential). Nothing is ever verified against a provider (no secret leaves the
machine).

Three of its patterns backtrack quadratically on a long crafted line (``//`` repeated
for the npm one, ``sk-`` for OpenAI's, ``eyJ`` for the JWT one: minutes for a
100,000-character line, hours for a 4 MiB one); :data:`HARDENED` replaces them with
patterns that find the same secrets in linear time (see each one), so no file makes a
scan hang.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import accumulate

from detect_secrets.filters.allowlist import is_line_allowlisted
from detect_secrets.filters.heuristic import is_potential_uuid, is_sequential_string
from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector
from detect_secrets.util.code_snippet import get_code_snippet

from zerolane.posture.secret_rules import Hit, is_placeholder

#: the detect-secrets plugins run: every pattern plugin of 1.5 but the public-IP one
PLUGINS: tuple[type[RegexBasedDetector], ...] = (
    ArtifactoryDetector,
    AWSKeyDetector,
    AzureStorageKeyDetector,
    BasicAuthDetector,
    CloudantDetector,
    DiscordBotTokenDetector,
    GitHubTokenDetector,
    GitLabTokenDetector,
    IbmCloudIamDetector,
    IbmCosHmacDetector,
    JwtTokenDetector,
    MailchimpDetector,
    NpmDetector,
    OpenAIDetector,
    PrivateKeyDetector,
    PypiTokenDetector,
    SendGridDetector,
    SlackDetector,
    SoftlayerDetector,
    SquareOAuthDetector,
    StripeDetector,
    TelegramBotTokenDetector,
    TwilioKeyDetector,
)
#: the patterns of :data:`PLUGINS` that backtrack quadratically on a crafted line, and
#: what replaces each: the same secret in linear time
HARDENED: dict[str, re.Pattern[str]] = {
    # npm: ``.+`` from every ``//`` to the end of the line, then back to the last
    # ``/:_authToken=``: a registry's address is bounded (256 characters), the
    # whitespace before the token too, so each ``//`` (not one of a ``///...`` run)
    # costs a constant
    NpmDetector.denylist[0].pattern: re.compile(
        r"(?<!/)//.{1,256}/:_authToken=\s{0,64}+((npm_.+)|([A-Fa-f0-9-]{36})).*"
    ),
    # OpenAI: ``[A-Za-z0-9-_]*`` from every ``sk-`` of a run (``sk-sk-sk-...``) to its end:
    # a key starts where a run of its characters starts (the first ``sk-`` of a run
    # finds whatever a later one would: its characters are all in the run)
    OpenAIDetector.denylist[0].pattern: re.compile(
        r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}"
    ),
    # JWT: the header's run from every ``eyJ`` (``eyJeyJ...``, ``=eyJ=eyJ...``): a JOSE
    # header is bounded (1,024 characters of base64url), taken whole (it cannot end
    # elsewhere: a dot follows it)
    JwtTokenDetector.denylist[0].pattern: re.compile(
        r"eyJ[A-Za-z0-9-_=]{1,1024}+\.[A-Za-z0-9-_=]+\.?[A-Za-z0-9-_.+/=]*?"
    ),
}
#: a value a pattern plugin found is a placeholder below this length (a password in a
#: URL can be short; ``user:pass@`` is not a finding, see :func:`is_placeholder`)
MIN_LENGTH = 4


class Detector:
    """The plugins, made once, run over one file's text at a time."""

    def __init__(self) -> None:
        self.plugins = [_hardened(plugin) for plugin in PLUGINS]

    def hits(self, text: str, lines: Callable[[], list[str]]) -> list[Hit]:
        """What the plugins find in ``text`` (``lines()``: it split at ``\\n``, asked
        for only when a pattern matched)."""
        found: list[Hit] = []
        starts: list[int] = []  # each line's offset in ``text``, when a PEM needs them
        for plugin in self.plugins:
            touched = _touched(plugin, text)
            for number in sorted(touched):
                line = lines()[number - 1].rstrip("\r")
                pem = isinstance(plugin, PrivateKeyDetector) and "BEGIN" in line
                if pem and not _has_key_body(text, _line_start(starts, lines(), number)):
                    continue
                after: dict[str, int] = {}  # where the next of one value is looked for
                for found_value in plugin.analyze_string(line):
                    value, after[found_value] = whole_at(
                        line, found_value, after.get(found_value, 0)
                    )
                    if _kept(value):
                        found.append(Hit(number, value, plugin.secret_type, None, "detect-secrets"))
        return found


def _hardened(plugin: type[RegexBasedDetector]) -> RegexBasedDetector:
    """The plugin, with the patterns of :data:`HARDENED` in place of its own (a
    subclass naming its ``denylist``, as every detect-secrets plugin does)."""
    own = list(plugin().denylist)
    patterns = [HARDENED.get(pattern.pattern, pattern) for pattern in own]
    if patterns == own:
        return plugin()
    hardened: type[RegexBasedDetector] = type(plugin.__name__, (plugin,), {"denylist": patterns})
    return hardened()


def _touched(plugin: RegexBasedDetector, text: str) -> set[int]:
    """The 1-based numbers of the lines a match of the plugin's patterns touches (a
    match may span lines: each of them is looked at). Matches come in order: the lines
    before each are counted from the previous one, never again from the start."""
    numbers: set[int] = set()
    for pattern in plugin.denylist:
        at, line = 0, 1
        for match in pattern.finditer(text):
            line += text.count("\n", at, match.start())
            at = match.start()
            last = line + text.count("\n", match.start(), match.end())
            numbers.update(range(line, last + 1))
    return numbers


def _line_start(starts: list[int], lines: list[str], number: int) -> int:
    """The offset of line ``number`` (1-based) in the text ``lines`` were split from;
    ``starts`` is filled the first time."""
    if not starts:
        starts.extend(accumulate((len(line) + 1 for line in lines), initial=0))
    return starts[number - 1]


#: a PEM private key's header and the start of its body (in a file, or in a JSON string
#: with ``\\n`` escapes): a header alone (a comment, a pattern in code) is no key
_PEM_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:\\r|\\n|\s)*"
    r"(?:[A-Za-z0-9+/=:,-]|\\r|\\n|\s){64}"
)


#: how far past its line a PEM header's key body is looked for (whitespace and ``\\n``
#: escapes, then 64 characters of it)
_PEM_BODY = 1024


def _has_key_body(text: str, start: int) -> bool:
    """Whether a PEM header on the line at offset ``start`` is followed by a key's
    body (looked for from that line to :data:`_PEM_BODY` characters past its end)."""
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    key = _PEM_KEY.search(text, start, end + _PEM_BODY)
    return key is not None and key.start() < end  # a header of this line, not a later one


#: what a token is made of: a value a plugin yields is widened to the run of these it is
#: part of
_TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=.~")


def whole(line: str, value: str) -> str:
    """``value`` as the whole token of ``line`` it is part of: a plugin may yield only a
    group of its pattern (detect-secrets 1.5's GitHub plugin yields ``ghp`` of a
    ``ghp_...`` token), and a finding masks, dedupes and fingerprints the whole secret."""
    return whole_at(line, value)[0]


def whole_at(line: str, value: str, after: int = 0) -> tuple[str, int]:
    """:func:`whole` of the first ``value`` at or after ``after`` in ``line`` (else of
    the first one), and where its token ends: a plugin yields ``ghp`` once per token of
    a line, and each is widened to its own token (a placeholder first on a line does not
    hide the real token after it)."""
    start = line.find(value, after)
    if start < 0:
        start = line.find(value)
    if start < 0:
        return value, after
    end = start + len(value)
    while start > 0 and line[start - 1] in _TOKEN:
        start -= 1
    while end < len(line) and line[end] in _TOKEN:
        end += 1
    return line[start:end], end


def _kept(value: str) -> bool:
    """detect-secrets' own heuristic filters for pattern plugins' values (its
    ``is_likely_id_string`` skips pattern plugins), then the placeholders zerolane's
    rules ignore too."""
    if is_sequential_string(value) or is_potential_uuid(value):
        return False
    return not is_placeholder(value, min_length=MIN_LENGTH)


def allowlisted(filename: str, lines: list[str], number: int) -> bool:
    """The line (or the one before it) carries detect-secrets' allowlist comment."""
    snippet = get_code_snippet(lines, number)
    return bool(is_line_allowlisted(filename, lines[number - 1], snippet))
