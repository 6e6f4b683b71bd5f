"""Sending one channel's messages with apprise, within a time limit, and keeping the channel
URL's secrets (tokens, passwords) out of logs and recorded errors.

The timeout (``notify.timeout_s``) applies as apprise's connect and read timeouts
(``cto``/``rto``, unless the URL sets them); they are per socket operation, so a server
trickling bytes can take longer, and SMTP uses the connect one throughout. Apprise reports why
a send failed only in its log, so its warnings are captured per thread; its debug lines carry
full URLs, so it logs at INFO at most.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import apprise

from skyhive.ports.sender import Message


class _ThreadCapture(logging.Handler):
    """Collects apprise's warnings of the current thread only (its senders log the reason of
    a failure; ``notify`` returns only False)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        lines: list[str] | None = getattr(self._local, "lines", None)
        if lines is not None:
            lines.append(record.getMessage())

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[str]]:
        lines: list[str] = []
        self._local.lines = lines
        try:
            yield lines
        finally:
            self._local.lines = None


_CAPTURE = _ThreadCapture()
_capture_lock = threading.Lock()


def install_capture() -> None:
    apprise_log = logging.getLogger("apprise")
    with _capture_lock:
        if _CAPTURE not in apprise_log.handlers:
            apprise_log.addHandler(_CAPTURE)
        # Apprise's debug lines carry the full request URLs, with their tokens.
        if apprise_log.getEffectiveLevel() < logging.INFO:
            apprise_log.setLevel(logging.INFO)


def url_secrets(url: str) -> list[str]:
    """The parts of an apprise URL that may be secret: credentials, tokens in the host or the
    path (``discord://ID/TOKEN``, ``slack://A/B/C``), query values. Longest first."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        found = [parts.username or "", parts.password or ""]
    except ValueError:
        return [url]
    if "." not in host:  # a token, not a host name or an address
        found.append(host)
    found += [p for p in parts.path.split("/") if len(p) >= 6]
    found += [v for _, v in parse_qsl(parts.query) if len(v) >= 6]
    return sorted({s for s in found if len(s) >= 3}, key=len, reverse=True)


class AppriseSender:
    """One channel's apprise object (the ``Sender`` port), with the per-send timeout and
    masked diagnostics."""

    def __init__(self, url: str, timeout_s: float) -> None:
        install_capture()
        asset = apprise.AppriseAsset(async_mode=False)  # send on the caller's thread
        self._apprise = apprise.Apprise(asset=asset)
        self._secrets = url_secrets(url)
        plugin = apprise.Apprise.instantiate(url, asset=asset)
        self.valid = plugin is not None
        if plugin is None:
            self.display = url.split("://", 1)[0] + "://(invalid URL)"
            return
        query = {k for k, _ in parse_qsl(urlsplit(url).query)}
        if "cto" not in query:
            plugin.socket_connect_timeout = timeout_s
        if "rto" not in query:
            plugin.socket_read_timeout = timeout_s
        self._apprise.add(plugin)
        self.display = self.scrub(str(plugin.url(privacy=True)))  # type: ignore[no-untyped-call]

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def send(self, msg: Message) -> str | None:
        """None once sent, else why not (secrets masked)."""
        if not self.valid:
            return "invalid apprise URL"
        with _CAPTURE.capture() as lines:
            try:
                ok = self._apprise.notify(
                    body=msg.body,
                    title=msg.title,
                    notify_type=apprise.NotifyType(msg.kind),
                    body_format=apprise.NotifyFormat.TEXT,
                )
            except Exception as exc:  # a plugin bug must not kill the worker
                ok = False
                lines.append(f"{type(exc).__name__}: {exc}")
        if ok:
            return None
        return self.scrub("; ".join(lines[-3:]) or "the notification service refused it")[:1000]
