"""A loopback stand-in for the Forge v3 API, with the real API's shape.

`GET /v3/releases/<slug>-<version>` answers a release record (``slug``,
``version``, ``module``, ``metadata``, ``file_uri`` /v3/files/..., ``file_size``,
``file_md5``, ``file_sha256``, ``created_at``, ``deleted_at``...) or the Forge's
404; `GET /v3/files/<slug>-<version>.tar.gz` the tarball, built by
:func:`release_tarball` from a real module tree (Debian's puppet-module-*).
A :class:`ForgeRelease` can lie about its digest, its file_uri, or serve
another archive, for the attack tests.

`GET /v3/modules`, with the real
API's shape: a pagination object whose ``next`` is a relative URL (null on
the last page), results with ``slug``, ``updated_at`` in the Forge's
``2011-05-24 18:34:58 -0700`` format, ``deprecated_at`` and ``module_group``;
``limit`` outside 1..100 and a missing User-Agent are 400s with the Forge's
error body; ``hide_deprecated`` with any value hides deprecated modules;
``module_groups`` defaults to ``base``. Faults can be injected at an offset.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import struct
import tarfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, Iterable, List, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support.loopback import DEEP_JSON, LoopbackServer, QuietHandler

# Early enough that 5,000 hourly updates still lie before the tests' fixed "now" (2026-11-27).
EPOCH = datetime(2026, 4, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=-7)))


def forge_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %z")


@dataclass
class ForgeModule:
    slug: str
    updated_at: datetime
    deprecated: bool = False
    group: str = "base"

    def as_json(self) -> dict:
        owner, name = self.slug.split("-", 1)
        return {
            "uri": f"/v3/modules/{self.slug}",
            "slug": self.slug,
            "name": name,
            "owner": {"username": owner, "slug": owner},
            "updated_at": forge_time(self.updated_at),
            "deprecated_at": forge_time(self.updated_at) if self.deprecated else None,
            "module_group": self.group,
            "current_release": {"version": "1.0.0", "readme": "x" * 200},
        }


def generate_modules(count: int, start: int = 0) -> List[ForgeModule]:
    """``count`` modules, each updated an hour after the previous one; every
    tenth deprecated, every twenty-fifth in the pe_only group."""
    return [
        ForgeModule(
            slug=f"author{i % 97}-module{i}",
            updated_at=EPOCH + timedelta(hours=i),
            deprecated=i % 10 == 3,
            group="pe_only" if i % 25 == 7 else "base",
        )
        for i in range(start, start + count)
    ]


@dataclass
class Fault:
    """What to do to the request for page ``offset``: an HTTP status ("500", "429",
    "404"...), hang (no answer until the server stops), truncated, reset, repeat,
    redirect (to ``target``, with ``status``), next (``pagination.next`` set to ``target``),
    endless (``pagination.next`` always names the following page, past the last module),
    drip (a byte at a time, never done), deep (JSON nested too deeply to parse),
    body (``target`` as the body, with ``status``)."""

    kind: str
    offset: int = 0
    times: int = 10**9  # how many requests it affects before the server behaves
    retry_after: str = "1"
    target: str = ""
    status: int = 302


def release_tarball(module_dir: Path, slug: str, version: str) -> bytes:
    """The .tar.gz `puppet module build` / PDK would make of ``module_dir``: every
    file under one top directory ``<slug>-<version>/``, links followed."""
    buffer = io.BytesIO()
    top = f"{slug}-{version}"
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(Path(module_dir).rglob("*")):
            if path.is_file():
                archive.add(path.resolve(), arcname=f"{top}/{path.relative_to(module_dir).as_posix()}", recursive=False)
    return buffer.getvalue()


def crafted_tarball(members: Iterable[tarfile.TarInfo], contents: Optional[Dict[str, bytes]] = None) -> bytes:
    """A .tar.gz of hand-made members (links, ``..``, absolute names...), for the attack tests."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member in members:
            data = (contents or {}).get(member.name)
            if data is not None:
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


@dataclass
class ForgeRelease:
    """One release as the Forge serves it; ``file_sha256``/``file_md5``/``file_uri``
    replace the true values when set (a lying record)."""

    slug: str
    version: str
    tarball: bytes
    file_sha256: Optional[str] = None
    file_md5: Optional[str] = None
    file_uri: Optional[str] = None
    digests: tuple = ("sha256", "md5")

    @property
    def key(self) -> str:
        return f"{self.slug}-{self.version}"

    @classmethod
    def of(cls, module_dir: Path, slug: Optional[str] = None, version: Optional[str] = None) -> "ForgeRelease":
        """The release of a module tree, slug and version from its metadata.json unless given."""
        metadata = json.loads((Path(module_dir) / "metadata.json").read_text())
        slug = slug or metadata["name"].replace("/", "-").lower()
        version = version or metadata["version"]
        return cls(slug, version, release_tarball(Path(module_dir), slug, version))

    def as_json(self) -> dict:
        owner, name = self.slug.split("-", 1)
        record = {
            "uri": f"/v3/releases/{self.key}",
            "slug": self.key,
            "module": {"uri": f"/v3/modules/{self.slug}", "slug": self.slug, "name": name,
                       "deprecated_at": None, "owner": {"username": owner, "slug": owner}},
            "version": self.version,
            "metadata": {"name": self.slug, "version": self.version},
            "tags": [], "supported": False, "pdk": True, "validation_score": 100,
            "file_uri": self.file_uri or f"/v3/files/{self.key}.tar.gz",
            "file_size": len(self.tarball),
            "downloads": 0, "readme": "x" * 200, "changelog": None, "license": None, "reference": None,
            "created_at": forge_time(EPOCH), "updated_at": forge_time(EPOCH), "deleted_at": None, "deleted_for": None,
        }
        if "md5" in self.digests:
            record["file_md5"] = self.file_md5 or hashlib.md5(self.tarball).hexdigest()
        if "sha256" in self.digests:
            record["file_sha256"] = self.file_sha256 or hashlib.sha256(self.tarball).hexdigest()
        return record


@dataclass
class ForgeState:
    modules: List[ForgeModule] = field(default_factory=list)
    faults: List[Fault] = field(default_factory=list)
    requests: List[Dict[str, str]] = field(default_factory=list)
    user_agents: List[Optional[str]] = field(default_factory=list)
    paths: List[str] = field(default_factory=list)
    releases: Dict[str, ForgeRelease] = field(default_factory=dict)

    def module_requests(self) -> List[str]:
        """The requests for the module list (the Forge cache's refresh)."""
        return [path for path in self.paths if path.startswith("/v3/modules")]

    def release_requests(self) -> List[str]:
        """The requests for release records and tarballs (the evidence's cost)."""
        return [path for path in self.paths if path.startswith(("/v3/releases/", "/v3/files/"))]


class ForgeHandler(QuietHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: with Nagle's algorithm, each answer on a
    # kept-alive connection would wait ~40 ms for the client's delayed ACK
    disable_nagle_algorithm = True

    def do_GET(self):  # noqa: N802 - http.server's naming
        state: ForgeState = self.server.state
        parts = urlsplit(self.path)  # absolute when we are used as a proxy
        state.paths.append(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        state.requests.append(query)
        state.user_agents.append(self.headers.get("User-Agent"))
        if parts.path.startswith(("/v3/releases/", "/v3/files/")):
            return self._release(state, parts.path)
        if parts.path != "/v3/modules":
            return self._json(404, {"message": "404 Not Found", "errors": [f"no route {parts.path}"]})
        if not self.headers.get("User-Agent"):
            return self._json(400, {"message": "400 Bad Request", "errors": ["User-Agent header is required"]})
        try:
            limit = int(query.get("limit", "20"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return self._json(400, {"message": "400 Bad Request", "errors": ["limit and offset must be integers"]})
        if not 1 <= limit <= 100:
            return self._json(400, {"message": "400 Bad Request", "errors": ["'limit' must be between 1 and 100"]})
        fault = self._fault(state, offset)
        if fault is not None and (fault.kind.isdigit() or fault.kind in ("hang", "reset", "truncated", "redirect", "drip", "deep", "body")):
            return self._inject(fault)
        groups = query.get("module_groups", "base").split()
        modules = [m for m in state.modules if m.group in groups]
        if "hide_deprecated" in query:
            modules = [m for m in modules if not m.deprecated]
        if query.get("sort_by") == "latest_release":
            modules = sorted(modules, key=lambda m: m.updated_at, reverse=True)
        page = modules[offset:offset + limit]
        following = {k: v for k, v in query.items()}
        following["offset"] = str(offset + limit)
        next_url = f"/v3/modules?{urlencode(following)}" if offset + limit < len(modules) else None
        if fault is not None and fault.kind == "repeat":
            next_url = f"/v3/modules?{urlencode({**query, 'offset': str(offset)})}"
        if fault is not None and fault.kind == "next":
            next_url = fault.target
        if any(f.kind == "endless" for f in state.faults):
            next_url = f"/v3/modules?{urlencode(following)}"
        body = {
            "pagination": {
                "limit": limit, "offset": offset, "first": f"/v3/modules?{urlencode({**query, 'offset': '0'})}",
                "previous": None, "current": f"/v3/modules?{parts.query}", "next": next_url, "total": len(modules),
            },
            "results": [m.as_json() for m in page],
        }
        self._json(200, body)

    def _release(self, state: ForgeState, path: str) -> None:
        if not self.headers.get("User-Agent"):
            return self._json(400, {"message": "400 Bad Request", "errors": ["User-Agent header is required"]})
        fault = self._fault(state, 0)
        if fault is not None:
            return self._inject(fault)
        if path.startswith("/v3/releases/"):
            release = state.releases.get(path[len("/v3/releases/"):])
            if release is None:
                return self._json(404, {"message": "404 Not Found", "errors": ["The requested resource could not be found"]})
            return self._json(200, release.as_json())
        name = path[len("/v3/files/"):]
        release = state.releases.get(name[: -len(".tar.gz")]) if name.endswith(".tar.gz") else None
        if release is None:
            return self._json(404, {"message": "404 Not Found", "errors": ["The requested resource could not be found"]})
        return self.send(200, release.tarball, "application/octet-stream")

    def _fault(self, state: ForgeState, offset: int) -> Optional[Fault]:
        for fault in state.faults:
            if fault.offset == offset and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def _inject(self, fault: Fault) -> None:
        if fault.kind == "500":
            return self._json(500, {"message": "500 Internal Server Error", "errors": []})
        if fault.kind == "429":
            body = json.dumps({"message": "429 Too Many Requests", "errors": []}).encode()
            return self.send(429, body, "application/json", {"Retry-After": fault.retry_after})
        if fault.kind.isdigit():  # any other status, worded as the Forge words its errors
            return self._json(int(fault.kind), {"message": f"{fault.kind} Refused", "errors": ["injected"]})
        if fault.kind == "redirect":
            return self.send(fault.status, b"", "text/plain", {"Location": fault.target})
        if fault.kind == "hang":
            return self.hang()
        if fault.kind == "drip":
            return self.drip()
        if fault.kind == "deep":
            return self.send(200, DEEP_JSON, "application/json")
        if fault.kind == "body":
            return self.send(fault.status, fault.target.encode(), "application/json")
        if fault.kind == "truncated":
            return self.send(200, b'{"pagination": {"next": null}, "results": [{"slug": "a-b", "upd', "application/json")
        # "reset": close the connection with an RST, as the field report's firewall did
        # (detach, so the buffered reader and writer cannot keep the descriptor open)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        os.close(self.connection.detach())
        self.close_connection = True
        return None

    def _json(self, status: int, body: dict) -> None:
        self.send(status, json.dumps(body).encode(), "application/json")


class ForgeServer(LoopbackServer):
    """The stand-in on 127.0.0.1, in a thread; a context manager."""

    def __init__(self, modules: List[ForgeModule], releases: Iterable[ForgeRelease] = ()) -> None:
        super().__init__(ForgeHandler, ForgeState(modules=list(modules),
                                                  releases={release.key: release for release in releases}))


def forge_publishing(*module_dirs: Path) -> ForgeServer:
    """A loopback Forge listing the slugs of ``module_dirs`` and publishing each as
    its release (tarball built from the tree as it is now)."""
    releases = [ForgeRelease.of(Path(d)) for d in module_dirs]
    modules = [ForgeModule(slug, EPOCH + timedelta(hours=i))
               for i, slug in enumerate(sorted({r.slug for r in releases}))]
    return ForgeServer(modules, releases)
