"""``python -m copper_async`` runs the command-line interface."""

from copper_async.cli import main

main()
