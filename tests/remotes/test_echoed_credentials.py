"""A remote that echoes its credentials back in an error does not get them shown even
when the echo is cut (the excerpt of an error page is 300 characters: a long bearer
token, a JWT, was shown up to the cut) or spelled with its padding escaped (an HTML
page writing '=' as '&#61;'): only the exact forms were redacted."""

from __future__ import annotations

import base64
import secrets
import time

import pytest
from fake_tap import FakeTap
from remote_helpers import LOOPBACK

from taphouse.outbound import Outbound, OutboundPolicy
from taphouse.remotes import RemoteError, RemoteTap, RetryPolicy

LONG_TOKEN = secrets.token_urlsafe(600)[:700]  # a JWT-sized bearer token
BASIC = base64.b64encode(b"svc:pw-" + secrets.token_hex(9).encode()).decode()


def _client(fake: FakeTap, header: str) -> RemoteTap:
    return RemoteTap("echo", fake.url, Outbound(OutboundPolicy(allow=LOOPBACK, timeout=10)),
                     retry=RetryPolicy(1, 0.05), sleep=time.sleep,
                     credentials={"Authorization": header})


@pytest.mark.parametrize("header, echoed", [
    (f"Bearer {LONG_TOKEN}", f"<html><body><h1>401</h1><p>token Bearer {LONG_TOKEN}"
                             " was refused</p></body></html>"),
    (f"Basic {BASIC}", "<html><body>refused: Basic "
                       + BASIC.replace("=", "&#61;") + "</body></html>"),
])
def test_an_echoed_credential_is_not_shown_cut_or_escaped(fake_tap: FakeTap, header: str,
                                                          echoed: str) -> None:
    fake_tap.routes["/tap/sync"] = lambda s: (401, {"Content-Type": "text/html"},
                                              echoed.encode())
    with pytest.raises(RemoteError) as err:
        _client(fake_tap, header).query_sync("SELECT 1")
    message = err.value.message
    token = header.split(" ", 1)[1].rstrip("=")
    # no run of 12 characters of the credential is left in the message
    runs = {token[i:i + 12] for i in range(len(token) - 11)}
    assert not [r for r in runs if r in message], message
    assert "********" in message and "401" in message
