"""Fixtures of the hub tests: one real taphouse server (compute on, demo data) and one
real ``taphouse hub`` (JupyterHub with configurable-http-proxy on 127.0.0.1) per
session; users are created per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hub_helpers import (
    CHECK_INTERVAL,
    KERNEL_ENV,
    HubProcess,
    UserServer,
    add_user,
    api_token,
    browser,
    free_ports,
    login_form,
    require_hub_machine,
    sandbox_data_dir,
    start_hub,
)

from servers import LiveServer, start_live


@dataclass
class Platform:
    server: LiveServer
    hub: HubProcess

    @property
    def hub_url(self) -> str:
        return self.hub.url


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    require_hub_machine()
    base = sandbox_data_dir()
    hub_port = free_ports(3)
    server = start_live(base / "data", demo=True, compute="on", compute_env=str(KERNEL_ENV),
                        compute_workers=2, hub_port=hub_port)
    hub = None
    try:
        hub = start_hub(server, hub_port, base / "hub.log",
                        hub_check_interval=CHECK_INTERVAL)
        yield Platform(server, hub)
    finally:
        if hub is not None:
            hub.stop()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def hub_user(platform: Platform) -> Iterator[Any]:
    """A taphouse user logged in to the hub, with an API token: (name, browser, server)."""
    name = add_user(platform.server)
    client = browser(platform.hub_url)
    r = login_form(client, name)
    assert r.status_code == 302, r.text[:500]
    server = UserServer(platform.hub_url, name, api_token(client, name))
    yield name, client, server
    client.close()


@pytest.fixture(scope="module")
def running(platform: Platform) -> Iterator[Any]:
    """One user with a running server and a kernel, shared by a module's tests."""
    name = add_user(platform.server, "run")
    client = browser(platform.hub_url)
    assert login_form(client, name).status_code == 302
    server = UserServer(platform.hub_url, name, api_token(client, name))
    server.start()
    kernel = server.new_kernel()
    yield name, client, server, kernel
    kernel.close()
    client.close()
