"""Where the repository and its example site are."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_SITE = REPO / "examples" / "site"
