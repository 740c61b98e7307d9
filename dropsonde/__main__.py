"""Allow ``python -m dropsonde``."""

from dropsonde.cli import main

main()
