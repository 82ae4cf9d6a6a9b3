"""docs/settings.md documents every setting (and its --meta example is valid);
`taphouse settings` prints the values in force with their source, secrets masked."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from taphouse.settings import Settings, is_secret, settings_in_force

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "settings.md"


def documented() -> set[str]:
    """Setting names in the first column of the doc's tables."""
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", DOC.read_text(), flags=re.M))


def test_every_setting_is_documented_and_nothing_else():
    fields = {f.name for f in dataclasses.fields(Settings)}
    missing = sorted(fields - documented())
    assert not missing, f"add these settings to docs/settings.md: {missing}"
    stale = sorted(documented() - fields)
    assert not stale, f"docs/settings.md documents settings that do not exist: {stale}"


def test_documented_defaults_are_the_real_ones():
    text = DOC.read_text()
    for f in dataclasses.fields(Settings):
        row = re.search(rf"^\| `{f.name}` \| ([^|]*) \|", text, flags=re.M)
        assert row, f.name
        shown = row.group(1).strip()
        default = f.default
        if isinstance(default, bool):
            assert shown == str(default).lower(), (f.name, shown)
        elif isinstance(default, (int, float)):
            first = shown.split(" ")[0]
            assert float(first) == float(default), (f.name, shown, default)
        elif default in ("", ()):
            assert shown.startswith("(empty"), (f.name, shown)
        else:
            assert shown.strip("`") == str(default), (f.name, shown, default)


def test_the_readme_links_the_settings_page():
    assert "docs/settings.md" in (ROOT / "README.md").read_text()


def test_the_meta_example_is_a_valid_metadata_file(tmp_path):
    from taphouse.catalogue.ingest import ingest_files, load_meta_file
    from taphouse.catalogue.store import CatalogueStore
    from taphouse.metadata import MetadataDB

    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S).group(1)
    meta_path = tmp_path / "stars.yaml"
    meta_path.write_text(block)
    meta = load_meta_file(meta_path)
    assert meta.epoch == 2016.0 and meta.ra == "ra_deg"
    doc = yaml.safe_load(block)
    cols = list(doc["columns"])
    csv = tmp_path / "stars.csv"
    csv.write_text(",".join(cols) + "\n" + ",".join(
        ["10.5", "-3.25", "120.0", "45.0", "1.5", "12.5", "60000.5", "V"]) + "\n")
    store = CatalogueStore(MetadataDB(tmp_path / "data" / "meta.sqlite"),
                           tmp_path / "data" / "tables")
    table = ingest_files(store, [csv], "survey", "stars", meta_file=meta_path)
    by_name = {c.name: c for c in table.columns}
    assert by_name["pmra"].unit == "mas/yr" and by_name["ra_deg"].principal
    assert table.description.startswith("Bright stars") and table.epoch == 2016.0


def test_settings_in_force_names_sources_and_masks_secrets(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class WithSecret(Settings):
        remote_password: str = "hunter2-long-secret"

    s = WithSecret(base_url="https://user:pw@tap.example.org", quota_rows=5, port=9)
    rows = {r["name"]: r for r in settings_in_force(
        s, flags={"port": 9}, environ={"TAPHOUSE_QUOTA_ROWS": "5"},
        file_values={"base_url": "x"}, config=Path("/etc/taphouse/taphouse.toml"))}
    assert rows["remote_password"]["value"] == "********"
    assert rows["base_url"]["value"] == "https://****@tap.example.org"
    assert rows["base_url"]["source"] == "/etc/taphouse/taphouse.toml"
    assert rows["quota_rows"]["source"] == "environment (TAPHOUSE_QUOTA_ROWS)"
    assert rows["port"]["source"] == "flag" and rows["host"]["source"] == "default"
    assert is_secret("hub_api_token") and not is_secret("token_lifetime")
    assert not is_secret("hub_notebook_token_lifetime")


def test_taphouse_settings_command(tmp_path):
    (tmp_path / "taphouse.toml").write_text('quota_rows = 1234\nbase_url = "https://a:b@x.org"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPHOUSE_")}
    env["TAPHOUSE_PORT"] = "8123"
    proc = subprocess.run([sys.executable, "-m", "taphouse.cli", "settings", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {f.name for f in dataclasses.fields(Settings)}
    assert rows["quota_rows"] == {"name": "quota_rows", "value": 1234,
                                  "source": str(tmp_path / "taphouse.toml")}
    assert rows["port"]["value"] == 8123 and rows["port"]["source"].startswith("environment")
    assert "a:b" not in proc.stdout
    assert not (tmp_path / "taphouse-data").exists()  # printing settings opens no store
    text = subprocess.run([sys.executable, "-m", "taphouse.cli", "settings"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60).stdout
    assert re.search(r"^quota_rows\s+1234\s+# .*taphouse.toml$", text, flags=re.M)
