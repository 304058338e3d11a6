"""The laptop person's password for the consent page (``[oauth.local_user]``).

The file holds one line, ``scrypt$<log2 n>$<r>$<p>$<salt>$<hash>`` (base64url, no
padding), made by :func:`hash_password` (``zerolane oauth set-password``), mode 0600:
the password itself is never stored. Checking a password runs scrypt (``cryptography``'s
:class:`~cryptography.hazmat.primitives.kdf.scrypt.Scrypt`, whose ``verify`` compares
in constant time) even for a wrong username, so neither is told apart by timing, and a
file that is missing, readable by others or malformed refuses every sign-in.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from zerolane.errors import InvalidInput

log = logging.getLogger(__name__)
SCHEME = "scrypt"
LOG2_N, R, P = 15, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MAX_PASSWORD = 1024
MIN_PASSWORD = 8
_MAX_FILE = 1024
#: scrypt's parameters accepted from a file: enough work, bounded memory
_LOG2_N_RANGE = range(14, 21)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _kdf(salt: bytes, log2_n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=KEY_BYTES, n=2**log2_n, r=r, p=p)


def hash_password(password: str) -> str:
    """The file line for ``password`` (8..1024 characters)."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(
            "oauth.password", f"a password is {MIN_PASSWORD}..{MAX_PASSWORD} characters"
        )
    salt = secrets.token_bytes(SALT_BYTES)
    key = _kdf(salt, LOG2_N, R, P).derive(password.encode("utf-8"))
    return f"{SCHEME}${LOG2_N}${R}${P}${_b64(salt)}${_b64(key)}"


def _parse(line: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, log2_n, r, p, salt, key = line.split("$")
    if scheme != SCHEME or int(log2_n) not in _LOG2_N_RANGE or not 1 <= int(r) <= 16:
        raise ValueError("unsupported parameters")
    if not 1 <= int(p) <= 4:
        raise ValueError("unsupported parameters")
    return int(log2_n), int(r), int(p), _unb64(salt), _unb64(key)


def _read(path: Path) -> str | None:
    """The file's line, or None (logged, without its content) when it cannot be used."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_FILE:
            log.warning("the OAuth password file %s is not a small regular file", path)
            return None
        if info.st_mode & 0o077:
            log.warning("the OAuth password file %s is readable by others: chmod 600", path)
            return None
        return path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        log.warning("the OAuth password file %s cannot be read", path)
        return None


#: checked against when the file is unusable, so a refusal costs what a check does
_DECOY = f"{SCHEME}${LOG2_N}${R}${P}${_b64(bytes(SALT_BYTES))}${_b64(bytes(KEY_BYTES))}"


class LocalUser:
    """The one person of ``[oauth.local_user]``: ``username`` and the password file."""

    def __init__(self, username: str, password_file: Path) -> None:
        self.username = username
        self._file = password_file

    def check(self, username: str, password: str) -> bool:
        """Whether ``username`` and ``password`` are this person's (constant time)."""
        line = _read(self._file)
        usable = line is not None
        try:
            log2_n, r, p, salt, key = _parse(line if line is not None else _DECOY)
        except ValueError:
            log.warning("the OAuth password file %s is malformed", self._file)
            log2_n, r, p, salt, key = _parse(_DECOY)
            usable = False
        same_name = hmac.compare_digest(username.encode("utf-8"), self.username.encode("utf-8"))
        try:
            _kdf(salt, log2_n, r, p).verify(password.encode("utf-8")[: MAX_PASSWORD * 4], key)
            right = True
        except InvalidKey:
            right = False
        return usable and same_name and right
