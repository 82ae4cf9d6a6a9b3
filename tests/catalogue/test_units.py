"""Units: canonical VOUnit storage, refusal of non-units at ingest (or --allow-bad-units),
and the read-time normalisation of versions written before units were checked."""

from __future__ import annotations

import json

import pytest

from taphouse.catalogue.ingest import ingest_files
from taphouse.catalogue.model import CatalogueError, ColumnMeta
from taphouse.catalogue.units import InvalidUnit, canonical_unit, check_unit

CANONICAL = [
    ("mas/yr", "mas/yr"), ("mas yr-1", "mas/yr"), ("mas.yr**-1", "mas/yr"),
    ("km s-1", "km/s"), ("km/s", "km/s"), ("deg", "deg"), ("deg2", "deg**2"),
    ("erg/cm2/s", "erg.s**-1.cm**-2"), ("mas/yr/yr", "mas/yr**2"), ("ct", "count"),
    ("Jy/beam", "Jy/beam"), ("1/yr", "yr**-1"), ("%", "%"), ("mag", "mag"),
    ("uas", "uarcsec"), ("---", None), ("", None), ("  ", None),
]


@pytest.mark.parametrize(("given", "stored"), CANONICAL)
def test_canonical_spelling(given, stored):
    assert canonical_unit(given) == stored


@pytest.mark.parametrize("canonical", sorted({s for _, s in CANONICAL if s and s != "%"}))
def test_canonical_spellings_are_vounit_and_mean_the_same(canonical):
    import astropy.units as u

    assert u.Unit(canonical, format="vounit", parse_strict="raise") is not None


@pytest.mark.parametrize(("given", "problem"), [
    ("not a unit!!", "is not a unit"), ("e-/s", "is not a unit"),
    ("DEG", "did you mean 'deg'?"), ("Mag", "did you mean 'mag'?"),
    ("dex", "cannot be written as a VOUnit"),
])
def test_invalid_units(given, problem):
    check = check_unit(given)
    assert not check.valid and check.unit == given and problem in check.problem
    with pytest.raises(InvalidUnit, match=problem.replace("?", r"\?")):
        canonical_unit(given)


def _csv(tmp_path, name="t.csv"):
    path = tmp_path / name
    path.write_text("id,ra,dec,pm,flux\n1,10,20,5.5,1.0\n")
    return path


def _meta(tmp_path, units: dict[str, str]):
    path = tmp_path / "meta.yaml"
    path.write_text("columns:\n" + "".join(
        f"  {name}:\n    unit: {json.dumps(unit)}\n" for name, unit in units.items()))
    return path


def test_ingest_stores_canonical_units(store, tmp_path):
    table = ingest_files(store, [_csv(tmp_path)], "survey", "t",
                         meta_file=_meta(tmp_path, {"pm": "mas yr-1", "flux": "erg/cm2/s"}))
    assert table.column("pm").unit == "mas/yr" and not table.column("pm").bad_unit
    assert table.column("flux").unit == "erg.s**-1.cm**-2"
    # and as stored: read back from the metadata database
    again = store.table("survey", "t")
    assert again.column("pm").unit == "mas/yr"


def test_ingest_refuses_a_bad_unit_naming_the_column(store, tmp_path):
    meta = _meta(tmp_path, {"pm": "not a unit!!"})
    with pytest.raises(CatalogueError) as info:
        ingest_files(store, [_csv(tmp_path)], "survey", "t", meta_file=meta)
    message = str(info.value)
    assert "column 'pm'" in message and "'not a unit!!' is not a unit" in message
    assert "--allow-bad-units" in message and str(meta) in message
    assert store.table("survey", "t") is None


def test_bad_unit_from_the_file_itself(store, tmp_path):
    from astropy.table import Table

    t = Table({"ra": [1.0], "dec": [2.0], "rate": [3.0]})
    t["ra"].unit = "deg"
    t["dec"].unit = "deg"
    path = tmp_path / "t.vot"
    t.write(path, format="votable")
    text = path.read_text().replace('name="rate"', 'name="rate" unit="e-/s"')
    path.write_text(text)
    with pytest.raises(CatalogueError, match=r"t.vot: column 'rate': bad unit: 'e-/s'"):
        ingest_files(store, [path], "survey", "t")


def test_allow_bad_units_keeps_them_flagged(store, tmp_path):
    table = ingest_files(store, [_csv(tmp_path)], "survey", "t", allow_bad_units=True,
                         meta_file=_meta(tmp_path, {"pm": "e-/s", "flux": "mas yr-1"}))
    assert (table.column("pm").unit, table.column("pm").bad_unit) == ("e-/s", True)
    assert (table.column("flux").unit, table.column("flux").bad_unit) == ("mas/yr", False)
    stored = store.table("survey", "t")
    assert (stored.column("pm").unit, stored.column("pm").bad_unit) == ("e-/s", True)


def test_positions_with_a_careless_unit_say_what_to_write(store, tmp_path):
    meta = _meta(tmp_path, {"ra": "DEG", "dec": "deg"})
    with pytest.raises(CatalogueError, match=r"column 'ra'.*did you mean 'deg'\?"):
        ingest_files(store, [_csv(tmp_path)], "survey", "t", meta_file=meta)


def test_versions_written_before_are_normalised_when_read():
    # ColumnMeta as stored by earlier versions of taphouse: units as typed
    old = {"name": "pm", "datatype": "double", "unit": "mas yr-1"}
    assert ColumnMeta.from_dict(old).unit == "mas/yr"
    garbage = ColumnMeta.from_dict({"name": "x", "datatype": "double",
                                    "unit": "not a unit!!"})
    assert (garbage.unit, garbage.bad_unit) == ("not a unit!!", True)
    kept = ColumnMeta.from_dict({"name": "x", "datatype": "double", "unit": "e-/s",
                                 "bad_unit": True})
    assert (kept.unit, kept.bad_unit) == ("e-/s", True)


def test_cli_flag(tmp_path, monkeypatch, capsys):
    from taphouse.cli import main

    monkeypatch.setenv("TAPHOUSE_DATA_DIR", str(tmp_path / "data"))
    meta = _meta(tmp_path, {"pm": "furlong/fortnight!"})
    args = ["--init", "ingest", str(_csv(tmp_path)), "-d", "survey", "-t", "t", "-q", "--meta",
            str(meta)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2 and "--allow-bad-units" in capsys.readouterr().err
    assert main(args + ["--allow-bad-units"]) == 0
    assert "unit 'furlong/fortnight!' kept as given" in capsys.readouterr().err
