"""DALI examples served at ``/examples``: each query runs on the demo data, and each
description says what the example shows."""

#: The epoch propagation of Hipparcos stars (J1991.25) to Gaia's epoch (J2016.0).
HIP_AT_2016 = "ivo_epoch_prop_pos(h.ra, h.dec, h.plx, h.pmra, h.pmde, 0, 1991.25, 2016.0)"

EXAMPLES: list[tuple[str, str, str, str]] = [
    ("cone", "Cone search around the Pleiades",
     "Shows a cone search: CONTAINS of a position in a CIRCLE selects the Gaia DR3 bright "
     "stars within 0.5 degrees of the Pleiades centre, using the table's HEALPix index. "
     "The positions in the result refer to a COOSYS: ICRS at epoch J2016.0.",
     "SELECT source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright\n"
     "WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 56.75, 24.12, 0.5))"),
    ("brightest", "Brightest Hipparcos stars",
     "Shows TOP with ORDER BY: the twenty brightest stars of the Hipparcos new reduction "
     "by Hp magnitude, positions at epoch J1991.25.",
     "SELECT TOP 20 hip, ra, dec, hpmag FROM hipparcos.hip2 ORDER BY hpmag"),
    ("histogram", "Magnitude histogram",
     "Shows GROUP BY on an expression: the number of Gaia DR3 bright stars per whole G "
     "magnitude.",
     "SELECT FLOOR(phot_g_mean_mag) AS gmag, COUNT(*) AS n FROM gaia.dr3_bright\n"
     "GROUP BY gmag ORDER BY gmag"),
    ("crossmatch", "Hipparcos against Gaia, at the same epoch",
     "Shows a positional crossmatch done right: Hipparcos positions are for J1991.25, "
     "Gaia's for J2016.0, and in 24.75 years a star moves by its proper motion (Barnard's "
     "star by over 4 arcminutes). ivo_epoch_prop_pos brings each Hipparcos star to "
     "J2016.0 before the 1 arcsecond match, here near Orion's belt. Over the whole sky the "
     "same join finds 110,349 pairs; without the propagation only 76,757. The result "
     "carries one COOSYS per epoch: h_ra/h_dec at J1991.25, g_ra/g_dec and h_2016 at "
     "J2016.0.",
     "SELECT h.hip, g.source_id, h.ra AS h_ra, h.dec AS h_dec, g.ra AS g_ra, g.dec AS g_dec,\n"
     f"       {HIP_AT_2016} AS h_2016,\n"
     f"       DISTANCE({HIP_AT_2016}, POINT('ICRS', g.ra, g.dec)) * 3600 AS sep\n"
     "FROM hipparcos.hip2 AS h JOIN gaia.dr3_bright AS g\n"
     "ON 1 = CONTAINS(POINT('ICRS', g.ra, g.dec),\n"
     f"               CIRCLE('ICRS', {HIP_AT_2016}, 1.0 / 3600))\n"
     "WHERE 1 = CONTAINS(POINT('ICRS', h.ra, h.dec), CIRCLE('ICRS', 83.0, -1.0, 3.0))"),
    ("gaia-cells", "Gaia stars per HEALPix cell, from the source_id",
     "Shows gaia_healpix_index, a function of the ESA Gaia archive: a Gaia source_id "
     "holds the HEALPix cell of its source, so stars can be counted per order-3 cell "
     "without using positions (rows from Hipparcos, with negative ids, are left out).",
     "SELECT gaia_healpix_index(3, source_id) AS cell, COUNT(*) AS n\n"
     "FROM gaia.dr3_bright WHERE source_id > 0\n"
     "GROUP BY cell ORDER BY n DESC"),
    ("dest", "Keep a result in your user space (taphouse extension)",
     "Shows the DEST parameter: send DEST=mydb.bright_stars with the query to store every "
     "row of the result in your own schema; later queries can read mydb.bright_stars, "
     "with the same units, UCDs and frames.",
     "SELECT source_id, ra, dec, phot_g_mean_mag FROM gaia.dr3_bright WHERE phot_g_mean_mag < 6"),
]
