"""Sending the report, and remembering what was sent.

``submit`` POSTs exactly the bytes ``preview --format json`` prints, to
``<endpoint>:<port>`` as the Ruby client composes it. Only a 200 with a JSON
answer counts as submitted; then the body and its time are kept (mode 0600)
so the admin can always see what left the machine (``dropsonde last``) and
the scheduler knows when the next one is due. A redirect to another scheme,
host or port is a failure, never followed (see ``http_client``). The endpoint
is https unless it is a loopback address, as for ``--forge-api``. The answer
must be complete within the policy's deadline and at most ``MAX_ANSWER_BYTES``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional
from urllib.parse import urlsplit, urlunsplit

from dropsonde import http_client
from dropsonde.errors import BadInput, Failure
from dropsonde.json_input import load_json
from dropsonde.terminal import printable

if TYPE_CHECKING:
    from dropsonde.cache_dir import CacheDir

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://updates.puppet.com"
DEFAULT_PORT = 443
STATE_FILENAME = "last-submission.json"
# The collector answers with a short JSON object (message, newer, link).
MAX_ANSWER_BYTES = 1024 * 1024
# the report it holds is a few KB to a few hundred KB
MAX_STATE_BYTES = 64 * 1024 * 1024


class SubmitError(Failure):
    """The report was not accepted; nothing is recorded as submitted."""

    def __init__(self, message: str, body: str = "") -> None:
        super().__init__(message)
        self.body = body


def submission_url(endpoint: str, port: Optional[int]) -> str:
    """``endpoint`` with ``port`` put in its authority (the Ruby client's
    ``"#{endpoint}:#{port}"``, without breaking an endpoint that has a path).
    An endpoint that names its own port keeps it unless --port is given. Plain
    http only to a loopback address: the report must not cross a network in clear."""
    scheme, hostname, _ = http_client.require_https_unless_loopback(endpoint, "--endpoint")
    parts = urlsplit(endpoint)
    own_port = parts.port
    if port is not None and not 0 < port < 65536:
        raise BadInput(f"--port: expected 1-65535, got {port}")
    chosen = port if port is not None else own_port or DEFAULT_PORT
    host = f"[{hostname}]" if ":" in hostname else hostname
    return urlunsplit((scheme, f"{host}:{chosen}", parts.path or "/", parts.query, ""))


@dataclass
class Answer:
    """The collector's answer to an accepted report (the Dujour response form)."""

    message: str
    newer: bool
    link: Optional[str]

    def text(self) -> str:
        """What to print: the server's message or link, each escaped to one line
        (a newline in either could fake a ``dropsonde: error:`` line on stdout)."""
        if self.newer:
            return f"A newer version of the telemetry client is available:\n  {printable(self.link or '')}".rstrip()
        return printable(self.message)


def post_report(url: str, body: bytes, policy: Optional[http_client.HttpPolicy] = None) -> Answer:
    """POST the report; SubmitError with a one-line reason unless a 200 with a JSON object comes back.
    Timeouts and retries as ``policy`` says (default: from the environment)."""
    import requests

    policy = policy or http_client.HttpPolicy.from_environment()
    http = http_client.session(policy, methods=frozenset({"POST"}))
    try:
        reply = http_client.fetch(http, "POST", url, policy, MAX_ANSWER_BYTES, data=body,
                                  headers={"Content-Type": "application/json"})
    except (requests.exceptions.RequestException, http_client.RedirectRefused, http_client.AnswerRefused) as exc:
        raise SubmitError(http_client.describe_failure(url, exc, policy)) from None
    text = reply.text
    if reply.status != 200:
        raise SubmitError(f"{url}: HTTP {reply.status}", text)
    try:
        data = load_json(reply.body, MAX_ANSWER_BYTES)
    except ValueError as exc:
        raise SubmitError(f"{url}: the answer is {exc}", text) from None
    if not isinstance(data, dict):
        raise SubmitError(f"{url}: the answer is not a JSON object", text)
    return Answer(str(data.get("message", "")), data.get("newer") is True, data.get("link"))


def record_submission(cache: "CacheDir", url: str, body: bytes, when: datetime) -> Path:
    """Keep what was sent and when, readable by root only."""
    state = {"submitted_at": when.isoformat(timespec="seconds"), "endpoint": url, "report": json.loads(body)}
    return cache.write(STATE_FILENAME, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode("utf-8"),
                       mode=0o600)


def last_submission(cache: "CacheDir") -> Optional[Dict[str, Any]]:
    """The recorded last submission, or None when there is none (a damaged file counts as none)."""
    try:
        state = load_json(cache.read_bytes(STATE_FILENAME, MAX_STATE_BYTES), MAX_STATE_BYTES)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the unreadable record of the last submission: %s", exc)
        return None
    if not isinstance(state, dict) or not isinstance(state.get("submitted_at"), str):
        log.warning("ignoring the malformed record of the last submission")
        return None
    return state
