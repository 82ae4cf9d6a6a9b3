"""The HEALPix index stored with every table that has positions (computed by cdshealpix)."""

from __future__ import annotations

import numpy as np

from taphouse.catalogue.model import HEALPIX_ORDER


def healpix_index(ra_deg: np.ndarray, dec_deg: np.ndarray, order: int = HEALPIX_ORDER,
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Nested HEALPix index of each position, as int64.

    Parameters
    ----------
    ra_deg, dec_deg
        ICRS right ascension in [0, 360] and declination in [-90, 90], degrees.
        NaN marks a missing position.
    order
        HEALPix order (depth); 29 by default, the deepest that fits in an int64.

    Returns
    -------
    (index, missing)
        ``index`` int64 array (0 where the position is missing) and a boolean mask of the
        missing positions, or ``None`` when every position is present.
    """
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix.nested import lonlat_to_healpix

    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    nan = np.isnan(ra) | np.isnan(dec)
    missing: np.ndarray | None = nan if nan.any() else None
    if missing is not None:
        ra = np.where(missing, 0.0, ra)
        dec = np.where(missing, 0.0, dec)
    # Longitude wraps 360 to 0; both wrap and Latitude range-check without copying much.
    index = lonlat_to_healpix(Longitude(ra, u.deg, copy=False),
                              Latitude(dec, u.deg, copy=False), order)
    index = index.astype(np.int64, copy=False)
    if missing is not None:
        index[missing] = 0
    return index, missing
