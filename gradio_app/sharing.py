"""Public links and who may use them.

Gradio's own launch(share=True) prints a multi-line message when it cannot make a link, and on a
machine without internet its message blames a missing tunnel program rather than the network.
The app therefore starts locally first and then asks Gradio's share server itself (the same call
launch() makes), so it can say in one line why there is no public link and keep serving.
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlparse, urlunparse

from impasto.errors import ImpastoError

log = logging.getLogger(__name__)

SHARE_SERVER = "api.gradio.app"


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """USER:PASS (the password may itself contain ':') -> (user, password)."""
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ImpastoError("--auth must be USER:PASS, both non-empty (e.g. --auth ana:long-secret)")
    return user, password


def is_loopback(host: str) -> bool:
    """True when only this machine can reach the server."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warnings(host: str, share: bool, auth: tuple[str, str] | None) -> list[str]:
    """What to warn about before serving: anyone who can reach the page can run jobs on this
    machine and see its results, and a public link reaches everyone who gets hold of it."""
    if auth is not None:
        return []
    warnings = []
    if share:
        warnings.append(
            "sharing without --auth: anyone who gets the link can use this app and this "
            "machine's CPU; add --auth USER:PASS"
        )
    if not is_loopback(host):
        warnings.append(
            f"serving on {host} without --auth: anyone on your network can use this app; "
            "add --auth USER:PASS"
        )
    return warnings


def open_public_link(demo) -> tuple[str | None, str | None]:
    """Ask Gradio's share server for a public link to the running app: (url, None) when it
    worked, (None, one-line reason) when it did not. The local server is untouched either way."""
    from gradio import networking

    try:
        url = networking.setup_tunnel(
            local_host=demo.server_name,
            local_port=demo.server_port,
            share_token=demo.share_token,
            share_server_address=demo.share_server_address,
            share_server_tls_certificate=demo.share_server_tls_certificate,
        )
    except Exception as exc:  # the reason is all the user needs; the log keeps the rest
        log.info("share link failed", exc_info=True)
        return None, share_failure_reason(exc)
    protocol = getattr(demo, "share_server_protocol", None) or "https"
    url = urlunparse((protocol, *urlparse(url)[1:]))
    demo.share_url, demo.share = url, True
    return url, None


def share_failure_reason(exc: BaseException) -> str:
    """One line from an exception chain: what failed and the lowest-level cause."""
    chain = [exc]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        if nxt in chain:
            break
        chain.append(nxt)
    root = chain[-1]
    detail = " ".join(str(root).split()) or type(root).__name__
    if "share link from Gradio API Server" in str(exc) or _is_network_error(root):
        return f"cannot reach Gradio's share server ({SHARE_SERVER}): {detail}"
    first = " ".join(str(exc).split()) or type(exc).__name__
    return first if root is exc else f"{first} ({detail})"


def _is_network_error(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, httpx.TransportError | ConnectionError | TimeoutError)
