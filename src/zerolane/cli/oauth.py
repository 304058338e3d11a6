"""``zerolane oauth``: the authorization server of standard MCP clients (``[oauth]``)."""

from __future__ import annotations

import sys

import typer

from zerolane.cli.common import HomeOption, JsonOption, console, print_json
from zerolane.errors import InvalidInput

app = typer.Typer(
    help="Standard MCP clients' sign-in: the laptop person's password.", no_args_is_help=True
)


def _read_password() -> str:
    """From the terminal (asked twice), or the first line of stdin when piped."""
    if sys.stdin.isatty():
        first = typer.prompt("Password", hide_input=True)
        if typer.prompt("Again", hide_input=True) != first:
            raise InvalidInput("oauth.password", "the two passwords differ")
        return str(first)
    return sys.stdin.readline().rstrip("\r\n")


@app.command("set-password")
def set_password(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Set the password of [oauth.local_user], who signs in on the consent page. Only
    its scrypt hash is written, to the password_file (mode 0600, in the home)."""
    from zerolane.config import load_config
    from zerolane.fsutil import write_private
    from zerolane.home import resolve_home
    from zerolane.server.oauth_password import hash_password

    folder = resolve_home(home)
    user = load_config(folder).oauth.local_user
    if user is None:
        raise InvalidInput(
            "oauth.local_user", "set [oauth.local_user] username in zerolane.toml first"
        )
    path = folder / user.password_file
    write_private(path, (hash_password(_read_password()) + "\n").encode("ascii"))
    if as_json:
        print_json({"username": user.username, "password_file": str(path)})
        return
    console.print(f"Password set for {user.username} ({path}, mode 0600)", markup=False)
