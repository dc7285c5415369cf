"""Who may use the app: --auth parsing, the warnings before exposing it, and the one-line reason
when Gradio cannot make a public link. No network: the share server is never contacted here."""

from __future__ import annotations

import httpx
import pytest

from impasto.errors import ImpastoError
from impasto.gradio_app.sharing import (
    exposure_warnings,
    is_loopback,
    open_public_link,
    parse_auth,
    share_failure_reason,
)


def test_auth_is_user_and_password_and_the_password_may_contain_colons():
    assert parse_auth("ana:s3cret:with:colons") == ("ana", "s3cret:with:colons")
    assert parse_auth(None) is None


@pytest.mark.parametrize("bad", ["ana", "ana:", ":secret", ""])
def test_incomplete_auth_is_refused_with_an_example(bad):
    with pytest.raises(ImpastoError, match="USER:PASS"):
        parse_auth(bad)


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
    ],
)
def test_loopback_hosts(host, local):
    assert is_loopback(host) is local


def test_sharing_without_auth_warns_and_with_auth_does_not():
    (warning,) = exposure_warnings("127.0.0.1", share=True, auth=None)
    assert "without --auth" in warning and "anyone who gets the link" in warning
    assert exposure_warnings("127.0.0.1", share=True, auth=("ana", "pw")) == []
    assert exposure_warnings("127.0.0.1", share=False, auth=None) == []


def test_serving_on_the_network_without_auth_warns():
    (warning,) = exposure_warnings("0.0.0.0", share=False, auth=None)
    assert "anyone on your network" in warning


def no_internet_error() -> RuntimeError:
    """What gradio.networking.setup_tunnel raises on a machine without internet."""
    try:
        try:
            raise httpx.ConnectError("[Errno -2] Name or service not known")
        except httpx.ConnectError as exc:
            raise RuntimeError("Could not get share link from Gradio API Server.") from exc
    except RuntimeError as exc:
        return exc


def test_the_reason_for_no_link_is_one_line_naming_the_share_server():
    reason = share_failure_reason(no_internet_error())
    assert reason == (
        "cannot reach Gradio's share server (api.gradio.app): [Errno -2] Name or service not known"
    )
    assert "\n" not in reason


def test_other_failures_keep_their_own_words():
    reason = share_failure_reason(OSError("Could not write\nthe certificate"))
    assert reason == "Could not write the certificate"


def test_a_failed_link_leaves_the_app_as_it_was(monkeypatch):
    import gradio.networking

    def refuse(**_):
        raise no_internet_error()

    monkeypatch.setattr(gradio.networking, "setup_tunnel", refuse)

    class RunningApp:
        server_name, server_port = "127.0.0.1", 7860
        share_token, share_server_address, share_server_tls_certificate = "t", None, None
        share_url, share = None, False

    app = RunningApp()
    url, reason = open_public_link(app)
    assert url is None and reason.startswith("cannot reach Gradio's share server")
    assert (app.share_url, app.share) == (None, False)


def test_a_made_link_is_recorded_on_the_app(monkeypatch):
    import gradio.networking

    calls = []

    def tunnel(**kwargs):
        calls.append(kwargs)
        return "http://abc123.gradio.live"

    monkeypatch.setattr(gradio.networking, "setup_tunnel", tunnel)

    class RunningApp:
        server_name, server_port = "127.0.0.1", 7861
        share_token, share_server_address, share_server_tls_certificate = "tok", None, None
        share_server_protocol = "https"
        share_url, share = None, False

    app = RunningApp()
    url, reason = open_public_link(app)
    assert (url, reason) == ("https://abc123.gradio.live", None)
    assert (app.share_url, app.share) == (url, True)
    assert calls[0]["local_port"] == 7861 and calls[0]["share_token"] == "tok"
