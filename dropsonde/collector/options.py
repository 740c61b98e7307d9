"""The collector commands' options and their defaults, in one place:
``dropsonde collector serve`` and ``aggregate`` take their defaults from here,
and so does the code that runs without those commands (tests, WSGI servers).

Imports nothing heavy, so ``dropsonde --help`` can show the defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Tuple

from dropsonde.errors import DropsondeError, ExitStatus

if TYPE_CHECKING:
    from dropsonde.collector.client_address import Network

DEFAULT_LISTEN = "127.0.0.1:8745"  # not 8140: that is Puppet Server's
DEFAULT_CONNECTIONS = 1000
#: least noisy count of a published row (on top of the differential-privacy threshold)
DEFAULT_K = 5

_RELEASE_RE = re.compile(r"^\d+\.\d+\.\d+$")


class OptionError(DropsondeError):
    """An option the collector cannot use: ``setting`` is its name here (the
    field of :class:`ServeOptions`, or ``listen``, ``db``...), ``value``
    what was given (None when the reason shows it), ``reason`` what is wrong.
    The CLI phrases it with its own option name, as a BadInput, or as a
    Failure when ``status`` says the option was fine but could not be used
    (a port in use)."""

    def __init__(self, setting: str, value: Optional[str], reason: str,
                 status: ExitStatus = ExitStatus.USAGE) -> None:
        self.setting, self.value, self.reason, self.status = setting, value, reason, status
        super().__init__(self.phrased(setting))

    def phrased(self, name: str) -> str:
        """The message with the setting called ``name`` (an option, a key)."""
        return f"{name} {self.value}: {self.reason}" if self.value is not None else f"{name}: {self.reason}"


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
    #: distinct site ids one source (an IPv4 address, an IPv6 /48) may report for in an ISO week
    sites_per_source: int = 10

    def __post_init__(self) -> None:
        if self.latest_version is not None and not _RELEASE_RE.match(self.latest_version):
            raise OptionError("latest_version", None, f"expected X.Y.Z, got {self.latest_version!r}")
