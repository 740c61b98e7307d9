"""The anonymous site id: one per Puppet site, never reversible to the site.

We hash the DER bytes of the site's CA certificate (the first certificate in
Puppet's ``localcacert``), which every server of a site shares and no two
sites share. The Ruby client hashed certname + the ``cacert`` setting's value
(a path) instead, so default installs with the same certname collided and
compile servers of one site got different ids; we fall back to that formula
only when no CA certificate can be read, and say so.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

_PEM_CERT_RE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", re.DOTALL
)


@dataclass(frozen=True)
class SiteId:
    """The id and how it was derived (shown in the human preview)."""

    value: str
    source: str  # "ca-certificate", "certname-fallback" or "override"
    note: Optional[str] = None


def first_certificate_der(path: Path) -> bytes:
    """DER bytes of the first PEM certificate in ``path``; ValueError when there is none."""
    match = _PEM_CERT_RE.search(Path(path).read_bytes())
    if not match:
        raise ValueError("no PEM certificate in file")
    try:
        return base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except binascii.Error:
        raise ValueError("malformed PEM certificate") from None


def site_id_from_ca(der: bytes, seed: str = "") -> str:
    """SHA-512 hex of the CA certificate's DER bytes followed by the seed."""
    return hashlib.sha512(der + seed.encode("utf-8")).hexdigest()


def ruby_site_id(certname: str, cacert_setting: str, seed: str = "") -> str:
    """The Ruby client's formula: SHA-512 hex of certname + cacert path + seed, no separator."""
    return hashlib.sha512((certname + cacert_setting + seed).encode("utf-8")).hexdigest()


def compute_site_id(
    localcacert: Path, certname: str, cacert_setting: str, seed: Optional[str], override: Optional[str]
) -> SiteId:
    """The site id for this run: ``--siteid`` if given, else from the CA certificate,
    else the Ruby formula with a note explaining why."""
    if override:
        return SiteId(override, "override")
    seed = seed or ""
    try:
        der = first_certificate_der(localcacert)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        note = (
            f"no CA certificate readable at the localcacert setting ({reason}); "
            "site id computed from certname and the cacert setting, as the Ruby client does"
        )
        return SiteId(ruby_site_id(certname, cacert_setting, seed), "certname-fallback", note)
    return SiteId(site_id_from_ca(der, seed), "ca-certificate")
