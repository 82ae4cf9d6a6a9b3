"""DALI examples served at ``/examples``: each query runs on the demo data."""

EXAMPLES: list[tuple[str, str, str, str]] = [
    ("cone", "Cone search around the Pleiades",
     "Gaia DR3 bright stars within 0.5 degrees of the Pleiades centre.",
     "SELECT source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright\n"
     "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 0.5))"),
    ("brightest", "Brightest Hipparcos stars",
     "The twenty brightest stars of the Hipparcos new reduction.",
     "SELECT TOP 20 hip, ra, dec, hpmag FROM hipparcos.hip2 ORDER BY hpmag"),
    ("histogram", "Magnitude histogram",
     "Number of Gaia DR3 bright stars per G magnitude bin.",
     "SELECT FLOOR(phot_g_mean_mag) AS gmag, COUNT(*) AS n FROM gaia.dr3_bright\n"
     "GROUP BY gmag ORDER BY gmag"),
    ("crossmatch", "Hipparcos against Gaia",
     "Pairs of Hipparcos and Gaia stars closer than one arcsecond near Orion's belt.",
     "SELECT h.hip, g.source_id,\n"
     "       DISTANCE(POINT('ICRS', h.ra, h.dec), POINT('ICRS', g.ra, g.dec)) AS sep\n"
     "FROM hipparcos.hip2 AS h JOIN gaia.dr3_bright AS g\n"
     "ON 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', h.ra, h.dec, 0.0002777))\n"
     "WHERE 1 = CONTAINS(POINT('ICRS', h.ra, h.dec), CIRCLE('ICRS', 83.0, -1.0, 3.0))"),
    ("dest", "Keep a result in your user space (taphouse extension)",
     "Send DEST=mydb.bright_stars with the query to store every row of the result in "
     "your own schema; later queries can read mydb.bright_stars.",
     "SELECT source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright WHERE phot_g_mean_mag < 6"),
]
