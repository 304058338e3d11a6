"""Small filesystem helpers for secret material: 0600 files, 0700 folders, atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SECRET_FILE_MODE = 0o600
SECRET_DIR_MODE = 0o700


def ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=SECRET_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, SECRET_DIR_MODE)


def write_private(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` with mode 0600 (never briefly wider)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, SECRET_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
