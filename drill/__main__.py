"""`python -m drill` is the `drill` command."""

from drill.cli import main

main()
