"""The collector commands' options and their defaults, in one place:
``dropsonde collector serve`` and ``aggregate`` take their defaults from here,
and so does the code that runs without those commands (tests, WSGI servers).

Imports nothing heavy, so ``dropsonde --help`` can show the defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Tuple

from dropsonde.errors import DropsondeError

if TYPE_CHECKING:
    from dropsonde.collector.limits import Network

DEFAULT_LISTEN = "127.0.0.1:8745"  # not 8140: that is Puppet Server's
DEFAULT_CONNECTIONS = 1000
#: least number of distinct sites behind every published row
DEFAULT_K = 5
#: privacy loss per published number (noise scale 1/epsilon)
DEFAULT_EPSILON = 1.0

_RELEASE_RE = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass
class ServeOptions:
    """How ``collector serve`` answers: limits, the newer-client hint, what is kept."""

    # 512 KiB: the example site's reports are under 3 KB; a 93-module report listing every class
    # of the largest Debian modules (1,376) as used, on 3 platforms and in profiles, is 464 KB.
    max_body: int = 512 * 1024
    rate_per_minute: int = 60
    latest_version: Optional[str] = None
    download_link: str = "https://pypi.org/project/dropsonde/"
    store_ip: bool = False
    trusted_proxies: Tuple["Network", ...] = ()
    read_timeout: int = 10

    def __post_init__(self) -> None:
        if self.latest_version is not None and not _RELEASE_RE.match(self.latest_version):
            raise DropsondeError(f"--latest-version: expected X.Y.Z, got {self.latest_version!r}")
