"""Where the repository, its example site and the example collector's allowlist are."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_SITE = REPO / "examples" / "site"
#: a Forge list and release evidence under which a collector accepts the example site's `dev example` rows
EXAMPLE_COLLECTOR = REPO / "examples" / "collector"
