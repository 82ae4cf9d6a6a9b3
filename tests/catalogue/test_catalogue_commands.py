"""The catalogue sub-commands, through an argparse parser like the main CLI's."""

from __future__ import annotations


def test_synth_ingest_list(run, tmp_path):
    out_file = tmp_path / "s.parquet"
    status, out, _ = run("demo", "synth", "--rows", "300", "--out", str(out_file), "--seed", "3")
    assert status == 0 and out_file.exists() and "300 synthetic rows" in out
    status, out, _ = run("ingest", str(out_file), "--database", "bench", "--table", "synth",
                         "--quiet")
    assert status == 0 and out.strip() == ("bench.synth: 300 rows, 8 columns, "
                                           "positions ra/dec")
    status, out, _ = run("databases")
    assert status == 0 and out.startswith("bench\t1 tables")
    status, out, _ = run("tables", "bench")
    assert status == 0 and out.startswith("bench.synth\t300 rows\t8 columns")


def test_ingest_with_meta_and_description(run, tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("x,lon,lat\n1,10,20\n")
    meta = tmp_path / "m.yaml"
    meta.write_text("epoch: 2000\ncolumns:\n  x: {unit: km}\n")
    status, out, _ = run("ingest", str(csv), "-d", "survey", "-t", "t", "--ra", "lon",
                         "--dec", "lat", "--meta", str(meta), "--description", "Hello", "-q")
    assert status == 0 and "positions lon/lat" in out
    status, out, _ = run("tables", "survey")
    assert "\tJ2000\tHello" in out


def test_errors_are_one_line_and_exit_2(run, tmp_path):
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"SIMPLE  = nonsense")
    status, out, err = run("ingest", str(bad), "-d", "survey", "-t", "t", "-q")
    assert status == 2 and out == ""
    assert err.startswith(f"taphouse: error: {bad}: cannot read as fits")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    status, _, err = run("tables", "nosuch")
    assert status == 2 and err == "taphouse: error: unknown database 'nosuch'; " \
                                  "see 'taphouse databases'\n"
    status, _, err = run("ingest", str(bad), "-d", "user_x", "-t", "t", "-q")
    assert status == 2 and "reserved" in err
