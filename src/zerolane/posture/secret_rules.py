"""zerolane's own rules for long-lived secrets, where automation keeps them.

detect-secrets (:mod:`zerolane.posture.detect`) knows what a secret of a provider looks
like (``AKIA...``, ``ghp_...``, a PEM header); these rules know where automation writes
secrets whatever their shape: a literal under a secret-named key of a CI workflow, a
``.env`` file, a shell script, a kubeconfig, a cloud credential file, Docker's
``config.json`` and a Terraform state. A file is first given its :class:`Place` (from
its name, and for a few JSON and YAML files a glance at its content); only the rules of
that place run on it, line by line, so a file of no such place costs nothing here.

A value is a finding only when it is a literal: a reference (``${{ secrets.X }}``,
``$VAR``, ``${VAR}``, ``{{ x }}``, ``<token>``), a placeholder (``changeme``,
``example``, ``xxxx``), a path or a URL without a password, or anything shorter than
:data:`MIN_LENGTH` is not (:func:`is_placeholder`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

#: the shortest literal under a secret-named key that is reported
MIN_LENGTH = 8


class Place(enum.StrEnum):
    """Where a secret was found: the rule id is ``secret.<place>``."""

    GITHUB_ACTIONS = "github_actions"
    GITLAB_CI = "gitlab_ci"
    DOTENV = "dotenv"
    SHELL = "shell"
    KUBECONFIG = "kubeconfig"
    AWS_CREDENTIALS = "aws_credentials"
    GCP_SERVICE_ACCOUNT = "gcp_service_account"
    AZURE_CREDENTIALS = "azure_credentials"
    DOCKER_CONFIG = "docker_config"
    TERRAFORM_STATE = "terraform_state"
    #: any other file (only detect-secrets' patterns run on it)
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Hit:
    """One secret on one line (1-based): its raw value (never reported, only masked),
    what kind of secret it is, the key it was stored under (if any) and who saw it."""

    line: int
    value: str
    secret_type: str
    key: str | None = None
    detector: str = "zerolane"


# -- values ------------------------------------------------------------------------

_REFERENCE = re.compile(r"^\$|\$\{|\$\(|\{\{|\{%|^%\w+%$|^<.*>$|^@\w")
_PLACEHOLDER_WORDS = (
    "example",
    "changeme",
    "change_me",
    "change-me",
    "replace_me",
    "replace-me",
    "replaceme",
    "placeholder",
    "dummy",
    "redacted",
    "your_",
    "your-",
    "xxxx",
    "****",
    "...",
    "<",
    ">",
)
_PLACEHOLDER_VALUES = frozenset(
    {
        "secret",
        "password",
        "passwd",
        "pass",
        "token",
        "pwd",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "disabled",
        "enabled",
        "required",
        "optional",
        "undefined",
    }
)


def is_placeholder(value: str, *, min_length: int = MIN_LENGTH) -> bool:
    """Whether ``value`` is not a literal secret: empty or shorter than ``min_length``, a
    reference to one held elsewhere, a placeholder, a number, a path or a URL."""
    text = value.strip()
    lower = text.lower()
    if len(text) < min_length or lower in _PLACEHOLDER_VALUES:
        return True
    if _REFERENCE.search(text) or any(word in lower for word in _PLACEHOLDER_WORDS):
        return True
    if text.isdigit() or len(set(text)) == 1:
        return True
    if text.startswith(("/", "./", "../", "~/", "file:")):
        return True
    return lower.startswith(("http://", "https://")) and "@" not in text


# -- keys --------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: a key whose value is a secret, once normalized (``clientSecret`` -> ``CLIENT_SECRET``):
#: it ends with one of these words
_SECRET_KEY = re.compile(
    r"(?:^|_)(?:PASSWORD|PASSWD|PWD|PASS|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|SECRET_?KEY"
    r"|PRIVATE_?KEY(?:_PEM|_DATA|_OPENSSH)?|CLIENT_KEY_DATA|SIGNING_?KEY|ENCRYPTION_?KEY"
    r"|MASTER_?KEY|AUTH|CREDENTIALS?|IDENTITYTOKEN|REGISTRYTOKEN)$"
)
_TYPES = (
    ("PRIVATE", "Private key"),
    ("KEY_DATA", "Private key"),
    ("PASS", "Password"),
    ("PWD", "Password"),
    ("CLIENT_SECRET", "Client secret"),
    ("ACCESS_KEY", "Access key"),
    ("SECRET_KEY", "Secret key"),
    ("TOKEN", "Token"),
    ("API_KEY", "API key"),
    ("APIKEY", "API key"),
    ("KEY", "Key"),
    ("AUTH", "Credentials"),
    ("CREDENTIAL", "Credentials"),
)


def normalized(key: str) -> str:
    """``clientSecret``, ``client-secret`` and ``client.secret`` as ``CLIENT_SECRET``."""
    return re.sub(r"[-.\s]+", "_", _CAMEL.sub("_", key)).upper()


def is_secret_key(key: str) -> bool:
    """Whether a value stored under ``key`` is a secret by its name."""
    return _SECRET_KEY.search(normalized(key)) is not None


def type_of_key(key: str) -> str:
    """The kind of secret a key names (``AWS_SECRET_ACCESS_KEY`` -> ``Access key``)."""
    name = normalized(key)
    return next((kind for word, kind in _TYPES if word in name), "Secret")


# -- how each syntax stores key and value --------------------------------------------

_ENV = re.compile(
    r"^\s*(?:(?:export|readonly|local|declare(?:\s+-\w+)?)\s+)?([A-Za-z_][\w.-]*)=(.*)$"
)
_YAML = re.compile(r"^\s*(?:-\s+)?[\"']?([A-Za-z_][\w.-]*)[\"']?\s*:[ \t]+(.+)$")
_INI = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*[=:]\s*(.+)$")
_JSON = re.compile(r"\"([^\"\\]+)\"\s*:\s*\"((?:[^\"\\]|\\.)*)\"")


def _unquoted(raw: str) -> str:
    """A shell, YAML or INI value as written: quoted (up to its closing quote) or bare
    (up to a comment or whitespace)."""
    text = raw.strip()
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        return text[1:end] if end > 0 else text[1:]
    return re.split(r"\s+#|\s|;", text, maxsplit=1)[0]


KeyFilter = Callable[[str], bool]


def _assignments(lines: list[str], pattern: re.Pattern[str]) -> Iterator[tuple[int, str, str]]:
    for number, line in enumerate(lines, start=1):
        match = pattern.match(line)
        if match:
            yield number, match.group(1), _unquoted(match.group(2))


def _json_pairs(lines: list[str]) -> Iterator[tuple[int, str, str]]:
    for number, line in enumerate(lines, start=1):
        for match in _JSON.finditer(line):
            yield number, match.group(1), match.group(2)


def _keyed(pairs: Iterable[tuple[int, str, str]], keys: KeyFilter = is_secret_key) -> Iterator[Hit]:
    for number, key, value in pairs:
        if not keys(key):
            continue
        # a PEM value has spaces (``BEGIN PRIVATE KEY``); any other with one is prose
        if (" " in value and "PRIVATE KEY" not in value) or is_placeholder(value):
            continue
        yield Hit(number, value, type_of_key(key), key)


# -- shell: headers and passwords on a command line ----------------------------------

_HEADER = re.compile(
    r"(?i)\b(authorization:\s*(?:bearer|token|basic)|x-api-key:|private-token:)\s*"
    r"([A-Za-z0-9._~+/=:-]+)"
)
#: ``[\s=]++``: taken whole, never given back to the user (``-u====...``, no colon, would
#: otherwise split the run every way: quadratic on a long line)
_USER = re.compile(r"(?:^|\s)(?:-u|--user)[\s=]++[\"']?[^\s\"':]++:([^\s\"']+)")


def _commands(lines: list[str]) -> Iterator[Hit]:
    for number, line in enumerate(lines, start=1):
        for match in _HEADER.finditer(line):
            if not is_placeholder(match.group(2)):
                name = match.group(1).split(":")[0].strip()
                yield Hit(number, match.group(2), "Token", name)
        for match in _USER.finditer(line):
            if not is_placeholder(match.group(1)):
                yield Hit(number, match.group(1), "Password", "--user")


# -- the rules of each place ---------------------------------------------------------


def _ci(lines: list[str]) -> Iterator[Hit]:
    """A CI file: literals under secret-named keys (``env:``, ``with:``, ``variables:``),
    and the headers and passwords of the commands it runs."""
    yield from _keyed(_assignments(lines, _YAML))
    yield from _keyed(_assignments(lines, _ENV))
    yield from _commands(lines)


def _shell(lines: list[str]) -> Iterator[Hit]:
    yield from _keyed(_assignments(lines, _ENV))
    yield from _commands(lines)


def _dotenv(lines: list[str]) -> Iterator[Hit]:
    yield from _keyed(_assignments(lines, _ENV))


_KUBE_KEYS = frozenset(
    {"client-key-data", "token", "password", "id-token", "refresh-token", "access-token"}
)


def _kubeconfig(lines: list[str]) -> Iterator[Hit]:
    """A kubeconfig: a user's private key, token or password (a client certificate is
    public: its key is the secret)."""
    yield from _keyed(_assignments(lines, _YAML), lambda key: key in _KUBE_KEYS)


def _ini(lines: list[str]) -> Iterator[Hit]:
    yield from _keyed(_assignments(lines, _INI))


def _json(lines: list[str]) -> Iterator[Hit]:
    yield from _keyed(_json_pairs(lines))


def _azure(lines: list[str]) -> Iterator[Hit]:
    yield from _json(lines)
    yield from _ini(lines)


def _docker(lines: list[str]) -> Iterator[Hit]:
    """Docker's ``config.json``: ``auths.<registry>.auth`` (base64 of user:password),
    identity and registry tokens."""
    for hit in _keyed(_json_pairs(lines)):
        kind = "Registry credentials" if hit.key == "auth" else hit.secret_type
        yield Hit(hit.line, hit.value, kind, hit.key)


RULES: dict[Place, Callable[[list[str]], Iterator[Hit]]] = {
    Place.GITHUB_ACTIONS: _ci,
    Place.GITLAB_CI: _ci,
    Place.DOTENV: _dotenv,
    Place.SHELL: _shell,
    Place.KUBECONFIG: _kubeconfig,
    Place.AWS_CREDENTIALS: _ini,
    Place.GCP_SERVICE_ACCOUNT: _json,
    Place.AZURE_CREDENTIALS: _azure,
    Place.DOCKER_CONFIG: _docker,
    Place.TERRAFORM_STATE: _json,
}

# -- which place a file is -----------------------------------------------------------

_SHELLS = (".sh", ".bash", ".zsh", ".ksh")
_SHEBANG = re.compile(r"#!\s*\S*(?:/|env\s+)(?:ba|z|k|da)?sh\b")
_SERVICE_ACCOUNT = re.compile(r"\"type\"\s*:\s*\"service_account\"")
_KUBE_CONFIG = re.compile(r"^kind:\s*[\"']?Config[\"']?\s*$", re.MULTILINE)


def place_of(shown: str, text: str) -> Place:
    """The place of a file, from its name (as the report shows it) and its text."""
    path = PurePosixPath(shown)
    name, parts, posix = path.name, path.parts, path.as_posix()
    if name.endswith((".tfstate", ".tfstate.backup")):
        return Place.TERRAFORM_STATE
    if ".github" in parts and "workflows" in parts and name.endswith((".yml", ".yaml")):
        return Place.GITHUB_ACTIONS
    if name.endswith((".gitlab-ci.yml", ".gitlab-ci.yaml")):
        return Place.GITLAB_CI
    if name == ".env" or name.startswith(".env.") or name.endswith(".env"):
        return Place.DOTENV
    if posix.endswith((".aws/credentials", ".aws/config")):
        return Place.AWS_CREDENTIALS
    if ".azure" in parts:
        return Place.AZURE_CREDENTIALS
    if posix.endswith(".docker/config.json"):
        return Place.DOCKER_CONFIG
    if posix.endswith(".kube/config") or _is_kubeconfig_name(name):
        return Place.KUBECONFIG
    return _by_content(name, text)


def _is_kubeconfig_name(name: str) -> bool:
    return name.endswith(".kubeconfig") or (
        name.startswith("kubeconfig") and name.endswith(("kubeconfig", ".yml", ".yaml"))
    )


def _by_content(name: str, text: str) -> Place:
    if name.endswith(_SHELLS) or (text.startswith("#!") and _SHEBANG.match(text)):
        return Place.SHELL
    if name.endswith(".json"):
        if _SERVICE_ACCOUNT.search(text):
            return Place.GCP_SERVICE_ACCOUNT
        if '"clientSecret"' in text and '"tenantId"' in text:  # az ... --sdk-auth
            return Place.AZURE_CREDENTIALS
        if '"auths"' in text and name == "config.json":
            return Place.DOCKER_CONFIG
    if name == "credentials" and "aws_secret_access_key" in text:
        return Place.AWS_CREDENTIALS
    if name.endswith((".yml", ".yaml", "config")) and _KUBE_CONFIG.search(text):
        return Place.KUBECONFIG
    return Place.FILE


def rule_hits(place: Place, lines: list[str]) -> list[Hit]:
    """What the rules of ``place`` find in ``lines`` (a file's text split at ``\\n``)."""
    rules = RULES.get(place)
    return list(rules(lines)) if rules else []
