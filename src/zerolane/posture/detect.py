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
"""

from __future__ import annotations

import re
from collections.abc import Callable

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
#: a value a pattern plugin found is a placeholder below this length (a password in a
#: URL can be short; ``user:pass@`` is not a finding, see :func:`is_placeholder`)
MIN_LENGTH = 4


class Detector:
    """The plugins, made once, run over one file's text at a time."""

    def __init__(self) -> None:
        self.plugins = [plugin() for plugin in PLUGINS]

    def hits(self, text: str, lines: Callable[[], list[str]]) -> list[Hit]:
        """What the plugins find in ``text`` (``lines()``: it split at ``\\n``, asked
        for only when a pattern matched)."""
        found: list[Hit] = []
        for plugin in self.plugins:
            touched = _touched(plugin, text)
            for number in sorted(touched):
                line = lines()[number - 1].rstrip("\r")
                pem = isinstance(plugin, PrivateKeyDetector) and "BEGIN" in line
                if pem and not _has_key_body(text, number):
                    continue
                for found_value in plugin.analyze_string(line):
                    value = whole(line, found_value)
                    if _kept(value):
                        found.append(Hit(number, value, plugin.secret_type, None, "detect-secrets"))
        return found


def _touched(plugin: RegexBasedDetector, text: str) -> set[int]:
    """The 1-based numbers of the lines a match of the plugin's patterns touches (a
    match may span lines: each of them is looked at)."""
    numbers: set[int] = set()
    for pattern in plugin.denylist:
        for match in pattern.finditer(text):
            first = text.count("\n", 0, match.start()) + 1
            last = first + text.count("\n", match.start(), match.end())
            numbers.update(range(first, last + 1))
    return numbers


#: a PEM private key's header and the start of its body (in a file, or in a JSON string
#: with ``\\n`` escapes): a header alone (a comment, a pattern in code) is no key
_PEM_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:\\r|\\n|\s)*"
    r"(?:[A-Za-z0-9+/=:,-]|\\r|\\n|\s){64}"
)


def _has_key_body(text: str, number: int) -> bool:
    """Whether a PEM header on line ``number`` is followed by a key's body."""
    start = 0
    for _ in range(number - 1):
        start = text.index("\n", start) + 1
    return _PEM_KEY.search(text, start, start + 8192) is not None


#: what a token is made of: a value a plugin yields is widened to the run of these it is
#: part of
_TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=.~")


def whole(line: str, value: str) -> str:
    """``value`` as the whole token of ``line`` it is part of: a plugin may yield only a
    group of its pattern (detect-secrets 1.5's GitHub plugin yields ``ghp`` of a
    ``ghp_...`` token), and a finding masks, dedupes and fingerprints the whole secret."""
    start = line.find(value)
    if start < 0:
        return value
    end = start + len(value)
    while start > 0 and line[start - 1] in _TOKEN:
        start -= 1
    while end < len(line) and line[end] in _TOKEN:
        end += 1
    return line[start:end]


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
