"""Which address a request counts against: the client's, also behind a
reverse proxy, and the source whose budgets it draws on (an IPv4 address, an
IPv6 /48).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from dropsonde.collector.options import OptionError

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
# The IPv6 prefix one source holds: registries assign a site a /48 (RIPE-690,
# ARIN's end-site policy), so a client with a /48 holds 65,536 /64s — a budget
# per /64 would give it 65,536 budgets.
IPV6_PREFIX = 48
log = logging.getLogger(__name__)


def parse_networks(values: Sequence[str]) -> Tuple[Network, ...]:
    """Trusted proxies (CIDR or a single address) as networks; OptionError naming the bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise OptionError("trusted_proxies", None, f"not an address or CIDR: {value!r:.60}") from None
    return tuple(networks)


def _ip(text: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    """An address as a peer or an X-Forwarded-For hop writes it: bare,
    ``[v6]``, ``a.b.c.d:port`` or ``[v6]:port`` (some load balancers add the
    port); an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) as the IPv4
    address it is, so that one client does not get two budgets. None otherwise."""
    text = text.strip()
    if text.startswith("["):
        inside, closed, port = text[1:].partition("]")
        if not closed or (port and not (port[:1] == ":" and port[1:].isdigit())):
            return None
        text = inside
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def rate_key(address: str) -> str:
    """The source an address belongs to, whose budgets it draws on: an IPv4
    address alone, an IPv6 address by its /48 (see :data:`IPV6_PREFIX`)."""
    parsed = _ip(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)


def _trusted(address: Any, proxies: Tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(environ: Dict[str, Any], proxies: Tuple[Network, ...]) -> str:
    """The address a request counts against. ``X-Forwarded-For`` is honoured only
    when the peer is a trusted proxy, and then read from the right: each proxy
    appends the address it saw, so the rightmost address that is not a trusted
    proxy is the first one no trusted party vouches for — the client (anything
    left of it was written by the client and may be forged)."""
    raw = str(environ.get("REMOTE_ADDR", ""))
    parsed = _ip(raw)
    peer = str(parsed) if parsed is not None else raw
    if not _trusted(parsed, proxies):
        return peer
    for hop in reversed(environ.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _ip(hop)
        if address is None:
            # A malformed chain vouches for nothing: count it against the proxy, and say so,
            # as every client behind that proxy now shares one budget.
            log.warning("X-Forwarded-For from trusted proxy %s: hop %r is not an address; the request counts "
                        "against the proxy", peer, hop.strip()[:60])
            return peer
        if not _trusted(address, proxies):
            return str(address)
    return peer
