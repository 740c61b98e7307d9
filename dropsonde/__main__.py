"""Allow ``python -m dropsonde``."""

from dropsonde.cli import main

raise SystemExit(main())
