"""``zerolane init``: create a home with keys, config, database and admin credential."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from zerolane.cli.common import HomeOption, JsonOption, console, err_console, print_json


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        trust_domain: Annotated[
            str,
            typer.Option(
                "--trust-domain", help="This deployment's trust domain, e.g. prod.example"
            ),
        ],
        home: HomeOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Create a zerolane home: signing key, X.509 CA, config, database, admin credential.

        The admin credential is printed once and stored only as a hash. Refuses (exit 2)
        when the folder already holds a zerolane home.
        """
        from zerolane.server.deployment import init_home, resolve_home

        path = resolve_home(home)
        deployment, token = init_home(path, trust_domain)
        try:
            kid = deployment.keyring.active_kid()
        finally:
            deployment.close()
        if as_json:  # the admin credential is in it: the one time it is shown
            print_json(
                {
                    "home": str(path),
                    "trust_domain": deployment.config.trust_domain,
                    "signing_key": kid,
                    "x509_ca": str(deployment.x509_ca.cert_path),
                    "admin_credential": token,
                }
            )
            return
        console.print(f"Initialized zerolane home [bold]{escape(str(path))}[/bold]")
        for line in (
            f"  trust domain   spiffe://{deployment.config.trust_domain}",
            f"  signing key    {kid} (ES256)",
            f"  X.509 CA       {deployment.x509_ca.cert_path} (X.509-SVIDs)",
        ):
            console.print(line, markup=False)
        err_console.print(
            "Admin credential (shown once, store it in a secret manager):", highlight=False
        )
        typer.echo(token)
