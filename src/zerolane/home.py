"""Where a zerolane home is: ``--home``, else ``$ZEROLANE_HOME``, else ``./.zerolane``.

Kept apart from :mod:`zerolane.server.deployment` (which opens a whole home) so that a
command that only reads a home's configuration and stores finds it without importing
the rest.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "ZEROLANE_HOME"
DEFAULT_HOME = ".zerolane"


def resolve_home(home: Path | None) -> Path:
    """``--home``, else ``$ZEROLANE_HOME``, else ``./.zerolane``."""
    if home is not None:
        return home
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else Path(DEFAULT_HOME)
