"""The client package's public names, imported when first used."""

from __future__ import annotations

import subprocess
import sys

import taphouse.client


def test_every_public_name_resolves_to_its_home():
    assert sorted(taphouse.client.__all__) == sorted(taphouse.client._HOMES)
    for name in taphouse.client.__all__:
        value = getattr(taphouse.client, name)
        assert value.__module__ == f"taphouse.client.{taphouse.client._HOMES[name]}", name
    assert set(taphouse.client.__all__) <= set(dir(taphouse.client))


def test_unknown_name_is_an_attribute_error():
    try:
        taphouse.client.Nope  # noqa: B018
    except AttributeError as exc:
        assert "Nope" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_command_line_does_not_import_the_client_stack():
    """Building the command line (every `taphouse` command does) imports
    taphouse.client.commands, hence this package, but not pyvo or astropy (~0.9 s)."""
    code = ("import sys; from taphouse.cli import build_parser; build_parser();"
            " print(sorted(m for m in ('pyvo', 'astropy', 'taphouse.client.client')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
