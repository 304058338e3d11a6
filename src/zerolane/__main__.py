"""``python -m zerolane`` runs the CLI."""

from zerolane.cli.main import main

main()
