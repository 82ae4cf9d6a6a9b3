"""docs/deploy.md's figures agree with the settings they must match."""

from __future__ import annotations

import re
from pathlib import Path

from taphouse.settings import Settings, read_config_file

DOC = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
SECTION = DOC.split("## The server behind a TLS proxy", 1)[1].split("\n## ", 1)[0]


def _size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", text.lower()).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


def test_proxy_limits_cover_the_server_limits():
    s = Settings()
    body = re.search(r"client_max_body_size (\S+);", SECTION).group(1)
    assert _size(body) >= s.upload_max_bytes
    read = re.search(r"proxy_read_timeout (\d+)s;", SECTION).group(1)
    assert int(read) > s.sync_timeout
    conns = re.search(r"limit_conn taphouse_addr (\d+);", SECTION).group(1)
    assert int(conns) <= s.connections_per_address
    assert "proxy_buffering off;" in SECTION and "proxy_request_buffering off;" in SECTION


def test_systemd_unit_and_settings_example():
    s = Settings()
    nofile = int(re.search(r"LimitNOFILE=(\d+)", SECTION).group(1))
    assert nofile >= s.max_connections + s.engine_max_attached
    assert "taphouse serve" in SECTION and "User=taphouse" in SECTION
    assert "--workers" not in SECTION.split("```ini", 1)[1].split("```", 1)[0]


def test_the_toml_example_is_a_valid_configuration(tmp_path):
    block = re.search(r"```toml\n(.*?)```", SECTION, flags=re.S).group(1)
    path = tmp_path / "taphouse.toml"
    path.write_text(block)
    values = read_config_file(path)
    settings = Settings.from_env({}, file_values=values)
    assert settings.host == "127.0.0.1" and settings.base_url.startswith("https://")
    assert settings.trusted_proxies == ("127.0.0.1",)
