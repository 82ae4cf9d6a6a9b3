-- The ADQL service functions on PostgreSQL, in plain SQL and PL/pgSQL (no extension).
-- Same names, arguments and results as the DuckDB functions in
-- taphouse/engine/functions.py. Loaded by taphouse.engine.postgres.install_postgres_functions;
-- every statement is CREATE OR REPLACE, so loading twice is harmless.

-- --- HEALPix (nested scheme) ---------------------------------------------------------------
-- Morton code of (x, y): the bits of x on the even, those of y on the odd positions.
CREATE OR REPLACE FUNCTION taphouse_hpx_interleave(x bigint, y bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  a bigint := x;
  b bigint := y;
BEGIN
  a := (a | (a << 16)) & 281470681808895;        -- 0x0000FFFF0000FFFF
  a := (a | (a << 8)) & 71777214294589695;       -- 0x00FF00FF00FF00FF
  a := (a | (a << 4)) & 1085102592571150095;     -- 0x0F0F0F0F0F0F0F0F
  a := (a | (a << 2)) & 3689348814741910323;     -- 0x3333333333333333
  a := (a | (a << 1)) & 6148914691236517205;     -- 0x5555555555555555
  b := (b | (b << 16)) & 281470681808895;
  b := (b | (b << 8)) & 71777214294589695;
  b := (b | (b << 4)) & 1085102592571150095;
  b := (b | (b << 2)) & 3689348814741910323;
  b := (b | (b << 1)) & 6148914691236517205;
  RETURN a | (b << 1);
END $$;

-- [x, y, face] of the pixel of (lon, 0) [deg] at depth d, computed as cdshealpix computes
-- it (longitude in radians in units of pi/4; S->E and S->W cell edges inside the cell).
CREATE OR REPLACE FUNCTION taphouse_hpx_xyf_equator(d integer, lon double precision)
RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  x double precision := radians(lon - 360.0 * floor(lon / 360.0)) * 1.2732395447351628::float8;
  q integer := (floor(x)::integer | 1) & 7;
  xpm1 double precision := x - q;
  q01 integer := (xpm1 > 0)::integer;
  q12 integer := (xpm1 >= 0)::integer;
  q013 integer := q01 + 1 - q12;
  xproj double precision := xpm1 - (q01 + q12 - 1);
  half double precision := (1::bigint << d) / 2.0;
  nside bigint := 1::bigint << d;
  i bigint := trunc(half * (q013 + xproj))::bigint;
  j bigint := trunc(half * (q013 - xproj))::bigint;
BEGIN
  RETURN ARRAY[least(i, nside - 1), least(j, nside - 1),
               (q013 << 2) + (((q >> 1) + (q01 & q12)) & 3)];
END $$;

-- [x, y, face] of the pixel containing (ra, dec) [deg] at depth d (an array, not a
-- record: PL/pgSQL callers evaluate a scalar result much faster).
DROP FUNCTION IF EXISTS taphouse_hpx_xyf(integer, double precision, double precision);
CREATE OR REPLACE FUNCTION taphouse_hpx_xyf(d integer, lon double precision,
                                            lat double precision)
RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  ix bigint;
  iy bigint;
  face integer;
  nside bigint := 1::bigint << d;
  z double precision := sind(lat);
  za double precision := abs(z);
  tt double precision;
  t1 double precision;
  t2 double precision;
  tp double precision;
  tmp double precision;
  jp bigint;
  jm bigint;
  ifp bigint;
  ifm bigint;
  ntt integer;
BEGIN
  IF d < 0 OR d > 29 OR abs(lat) > 90 OR lon = 'NaN'::float8 OR lat = 'NaN'::float8
     OR lon IN ('Infinity'::float8, '-Infinity'::float8) THEN
    RETURN NULL;
  END IF;
  tt := (lon - 360.0 * floor(lon / 360.0)) / 90.0;  -- in [0, 4)
  IF tt >= 4.0 THEN tt := tt - 4.0; END IF;
  IF za <= 2.0 / 3.0 THEN
    t1 := nside * (0.5 + tt);
    t2 := nside * (z * 0.75);
    jp := floor(t1 - t2)::bigint;  -- ascending edge line index
    jm := floor(t1 + t2)::bigint;  -- descending edge line index
    IF t2 = 0 THEN
      -- On the equator, cell corners are where floating point decides: place the
      -- position as cdshealpix does (the DuckDB functions and ingest use it), so that
      -- both backends agree, e.g. (45, 0) in base cell 0 (not 5).
      RETURN taphouse_hpx_xyf_equator(d, lon);
    END IF;
    ifp := jp >> d;
    ifm := jm >> d;
    IF ifp = ifm THEN
      face := (ifp | 4)::integer;
    ELSIF ifp < ifm THEN
      face := ifp::integer;
    ELSE
      face := (ifm + 8)::integer;
    END IF;
    ix := jm & (nside - 1);
    iy := nside - (jp & (nside - 1)) - 1;
  ELSE
    ntt := least(3, floor(tt)::integer);
    tp := tt - ntt;
    -- sqrt(3 (1 - |z|)), written with the colatitude so it stays exact near the poles
    tmp := nside * sqrt(6.0) * sin(radians(90.0 - abs(lat)) / 2.0);
    jp := least(nside - 1, floor(tp * tmp)::bigint);
    jm := least(nside - 1, floor((1.0 - tp) * tmp)::bigint);
    IF z >= 0 THEN
      face := ntt;
      ix := nside - jm - 1;
      iy := nside - jp - 1;
    ELSE
      face := ntt + 8;
      ix := jp;
      iy := jm;
    END IF;
  END IF;
  RETURN ARRAY[ix, iy, face];
END $$;

-- ivo_healpix_index(order, ra, dec): nested HEALPix index at order 0..29.
CREATE OR REPLACE FUNCTION ivo_healpix_index(d integer, lon double precision,
                                             lat double precision) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  c bigint[] := taphouse_hpx_xyf(d, lon, lat);
BEGIN
  RETURN (c[3] << (2 * d)) + taphouse_hpx_interleave(c[1], c[2]);
END $$;

-- The pixel of (ra, dec) at depth d and its 7 or 8 neighbours (the 3x3 block).
CREATE OR REPLACE FUNCTION taphouse_healpix_neighbours(d integer, lon double precision,
                                                       lat double precision)
RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  -- offsets of the 8 neighbours: W, SW... in the (x, y) of a face
  xo integer[] := ARRAY[-1, -1, 0, 1, 1, 1, 0, -1];
  yo integer[] := ARRAY[0, 1, 1, 1, 0, -1, -1, -1];
  faces integer[];
  swaps integer[];
  nside bigint := 1::bigint << d;
  c bigint[];
  face integer;
  out bigint[];
  x bigint;
  y bigint;
  t bigint;
  side integer;
  f integer;
  bits integer;
BEGIN
  c := taphouse_hpx_xyf(d, lon, lat);
  IF c IS NULL THEN
    RETURN NULL;
  END IF;
  face := c[3];
  out := ARRAY[(c[3] << (2 * d)) + taphouse_hpx_interleave(c[1], c[2])];
  FOR i IN 1..8 LOOP
    x := c[1] + xo[i];
    y := c[2] + yo[i];
    side := 4;
    IF x < 0 THEN x := x + nside; side := side - 1;
    ELSIF x >= nside THEN x := x - nside; side := side + 1;
    END IF;
    IF y < 0 THEN y := y + nside; side := side - 3;
    ELSIF y >= nside THEN y := y - nside; side := side + 3;
    END IF;
    IF side <> 4 AND faces IS NULL THEN  -- only near a face's edge
      -- face of the neighbour, by the side crossed (row, 0..8) and the face (column, 0..11)
      faces := ARRAY[
        [8, 9, 10, 11, -1, -1, -1, -1, 10, 11, 8, 9],
        [5, 6, 7, 4, 8, 9, 10, 11, 9, 10, 11, 8],
        [-1, -1, -1, -1, 5, 6, 7, 4, -1, -1, -1, -1],
        [4, 5, 6, 7, 11, 8, 9, 10, 11, 8, 9, 10],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        [1, 2, 3, 0, 0, 1, 2, 3, 5, 6, 7, 4],
        [-1, -1, -1, -1, 7, 4, 5, 6, -1, -1, -1, -1],
        [3, 0, 1, 2, 3, 0, 1, 2, 4, 5, 6, 7],
        [2, 3, 0, 1, -1, -1, -1, -1, 0, 1, 2, 3]];
      -- coordinate flips and swaps when crossing to that face, by side and face row
      swaps := ARRAY[[0, 0, 3], [0, 0, 6], [0, 0, 0], [0, 0, 5], [0, 0, 0],
                 [5, 0, 0], [0, 0, 0], [6, 0, 0], [3, 0, 0]];
    END IF;
    f := CASE WHEN side = 4 THEN face ELSE faces[side + 1][face + 1] END;
    IF f >= 0 THEN
      IF side <> 4 THEN
        bits := swaps[side + 1][(face >> 2) + 1];
        IF bits & 1 <> 0 THEN x := nside - x - 1; END IF;
        IF bits & 2 <> 0 THEN y := nside - y - 1; END IF;
        IF bits & 4 <> 0 THEN t := x; x := y; y := t; END IF;
      END IF;
      -- Morton code of (x, y), inline (a function call per neighbour costs more)
      x := (x | (x << 16)) & 281470681808895;
      x := (x | (x << 8)) & 71777214294589695;
      x := (x | (x << 4)) & 1085102592571150095;
      x := (x | (x << 2)) & 3689348814741910323;
      x := (x | (x << 1)) & 6148914691236517205;
      y := (y | (y << 16)) & 281470681808895;
      y := (y | (y << 8)) & 71777214294589695;
      y := (y | (y << 4)) & 1085102592571150095;
      y := (y | (y << 2)) & 3689348814741910323;
      y := (y | (y << 1)) & 6148914691236517205;
      out := out || ((f::bigint << (2 * d)) + (x | (y << 1)));
    END IF;
  END LOOP;
  RETURN out;
END $$;

-- --- text ---------------------------------------------------------------------------------
-- ivo_hasword(haystack, needle): 1 if every word of needle is a word of haystack
-- (case-insensitive; words are runs of letters and digits), else 0.
CREATE OR REPLACE FUNCTION ivo_hasword(haystack text, needle text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE
    WHEN NOT EXISTS (SELECT 1 FROM regexp_matches(lower(needle), '[[:alnum:]]+', 'g'))
      THEN 0
    WHEN EXISTS (
      SELECT 1 FROM regexp_matches(lower(needle), '[[:alnum:]]+', 'g') AS w(m)
      WHERE NOT (w.m[1] = ANY (ARRAY(
        SELECT h.m[1] FROM regexp_matches(lower(haystack), '[[:alnum:]]+', 'g') AS h(m)))))
      THEN 0
    ELSE 1 END
$$;

-- --- polygons -----------------------------------------------------------------------------
-- Point in spherical polygon [ra1, dec1, ra2, dec2, ...] (degrees): ray casting in the
-- gnomonic projection centred on the mean vertex (polygons smaller than a hemisphere),
-- the same method as the DuckDB function.
CREATE OR REPLACE FUNCTION taphouse_polygon_contains(lon double precision,
                                                     lat double precision,
                                                     poly double precision[])
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  n integer := array_length(poly, 1) / 2;
  vx double precision[];
  vy double precision[];
  vz double precision[];
  px double precision[];
  py double precision[];
  cx double precision := 0; cy double precision := 0; cz double precision := 0;
  ex double precision; ey double precision; norm double precision;
  nx double precision; ny double precision; nz double precision;
  ux double precision; uy double precision; uz double precision;
  w double precision; x double precision; y double precision; xint double precision;
  j integer;
  inside boolean := false;
BEGIN
  IF n IS NULL OR n < 3 THEN
    RETURN false;
  END IF;
  FOR i IN 1..n LOOP
    vx[i] := cosd(poly[2 * i]) * cosd(poly[2 * i - 1]);
    vy[i] := cosd(poly[2 * i]) * sind(poly[2 * i - 1]);
    vz[i] := sind(poly[2 * i]);
    cx := cx + vx[i]; cy := cy + vy[i]; cz := cz + vz[i];
  END LOOP;
  norm := sqrt(cx * cx + cy * cy + cz * cz);
  cx := cx / norm; cy := cy / norm; cz := cz / norm;
  -- east = z x centre, north = centre x east
  ex := -cy; ey := cx;
  norm := sqrt(ex * ex + ey * ey);
  IF norm < 1e-12 THEN
    ex := 0; ey := 1; norm := 1;
  END IF;
  ex := ex / norm; ey := ey / norm;
  nx := -cz * ey; ny := cz * ex; nz := cx * ey - cy * ex;
  FOR i IN 1..n LOOP
    w := vx[i] * cx + vy[i] * cy + vz[i] * cz;
    px[i] := (vx[i] * ex + vy[i] * ey) / w;
    py[i] := (vx[i] * nx + vy[i] * ny + vz[i] * nz) / w;
  END LOOP;
  ux := cosd(lat) * cosd(lon); uy := cosd(lat) * sind(lon); uz := sind(lat);
  w := ux * cx + uy * cy + uz * cz;
  IF w <= 0 THEN
    RETURN false;
  END IF;
  x := (ux * ex + uy * ey) / w;
  y := (ux * nx + uy * ny + uz * nz) / w;
  FOR i IN 1..n LOOP
    j := i % n + 1;
    IF (py[i] > y) <> (py[j] > y) THEN
      xint := px[i] + (y - py[i]) * (px[j] - px[i]) / (py[j] - py[i]);
      IF x < xint THEN
        inside := NOT inside;
      END IF;
    END IF;
  END LOOP;
  RETURN inside;
END $$;

-- Regions as DALI arrays (2 numbers: a point, 3: a circle, 6 or more: a polygon), for
-- CONTAINS / INTERSECTS where a polygon is not constant (the translator writes constant
-- regions as plain SQL arithmetic). The same tests as taphouse.adql.sphere.

-- Angular distance in degrees (haversine).
CREATE OR REPLACE FUNCTION taphouse_angdist(lon1 double precision, lat1 double precision,
                                            lon2 double precision, lat2 double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT degrees(2 * asin(least(1.0, sqrt(sind((lat2 - lat1) / 2) ^ 2
         + cosd(lat1) * cosd(lat2) * sind((lon2 - lon1) / 2) ^ 2))))
$$;

-- Whether (lon, lat) is within r degrees of the boundary of a polygon.
CREATE OR REPLACE FUNCTION taphouse_near_boundary(lon double precision, lat double precision,
                                                  r double precision,
                                                  poly double precision[])
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  n integer := array_length(poly, 1) / 2;
  px double precision := cosd(lat) * cosd(lon);
  py double precision := cosd(lat) * sind(lon);
  pz double precision := sind(lat);
  cos_r double precision := cosd(r);
  sin_r double precision := sind(least(r, 90));
  ax double precision; ay double precision; az double precision;
  bx double precision; by_ double precision; bz double precision;
  wx double precision; wy double precision; wz double precision; norm double precision;
  j integer;
BEGIN
  FOR i IN 1..n LOOP
    j := i % n + 1;
    ax := cosd(poly[2 * i]) * cosd(poly[2 * i - 1]);
    ay := cosd(poly[2 * i]) * sind(poly[2 * i - 1]);
    az := sind(poly[2 * i]);
    bx := cosd(poly[2 * j]) * cosd(poly[2 * j - 1]);
    by_ := cosd(poly[2 * j]) * sind(poly[2 * j - 1]);
    bz := sind(poly[2 * j]);
    IF px * ax + py * ay + pz * az >= cos_r OR px * bx + py * by_ + pz * bz >= cos_r THEN
      RETURN true;
    END IF;
    wx := ay * bz - az * by_; wy := az * bx - ax * bz; wz := ax * by_ - ay * bx;
    norm := sqrt(wx * wx + wy * wy + wz * wz);
    CONTINUE WHEN norm = 0;
    wx := wx / norm; wy := wy / norm; wz := wz / norm;
    -- p projects inside the arc: p.(w x a) >= 0 and p.(b x w) >= 0
    IF px * (wy * az - wz * ay) + py * (wz * ax - wx * az) + pz * (wx * ay - wy * ax) >= 0
       AND px * (by_ * wz - bz * wy) + py * (bz * wx - bx * wz) + pz * (bx * wy - by_ * wx) >= 0
       AND abs(px * wx + py * wy + pz * wz) <= sin_r THEN
      RETURN true;
    END IF;
  END LOOP;
  RETURN false;
END $$;

-- Whether an edge of polygon a crosses an edge of polygon b (interiors of both arcs).
CREATE OR REPLACE FUNCTION taphouse_edges_cross(a double precision[], b double precision[])
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  na integer := array_length(a, 1) / 2;
  nb integer := array_length(b, 1) / 2;
  a1 double precision[]; a2 double precision[]; b1 double precision[]; b2 double precision[];
  wa double precision[]; wb double precision[]; t double precision[];
  norm double precision; s double precision;
  j integer; l integer;
BEGIN
  FOR i IN 1..na LOOP
    j := i % na + 1;
    a1 := ARRAY[cosd(a[2*i]) * cosd(a[2*i-1]), cosd(a[2*i]) * sind(a[2*i-1]), sind(a[2*i])];
    a2 := ARRAY[cosd(a[2*j]) * cosd(a[2*j-1]), cosd(a[2*j]) * sind(a[2*j-1]), sind(a[2*j])];
    wa := ARRAY[a1[2]*a2[3] - a1[3]*a2[2], a1[3]*a2[1] - a1[1]*a2[3], a1[1]*a2[2] - a1[2]*a2[1]];
    FOR k IN 1..nb LOOP
      l := k % nb + 1;
      b1 := ARRAY[cosd(b[2*k]) * cosd(b[2*k-1]), cosd(b[2*k]) * sind(b[2*k-1]), sind(b[2*k])];
      b2 := ARRAY[cosd(b[2*l]) * cosd(b[2*l-1]), cosd(b[2*l]) * sind(b[2*l-1]), sind(b[2*l])];
      wb := ARRAY[b1[2]*b2[3] - b1[3]*b2[2], b1[3]*b2[1] - b1[1]*b2[3],
                  b1[1]*b2[2] - b1[2]*b2[1]];
      t := ARRAY[wa[2]*wb[3] - wa[3]*wb[2], wa[3]*wb[1] - wa[1]*wb[3], wa[1]*wb[2] - wa[2]*wb[1]];
      norm := sqrt(t[1]*t[1] + t[2]*t[2] + t[3]*t[3]);
      CONTINUE WHEN norm <= 1e-15;
      FOREACH s IN ARRAY ARRAY[1.0, -1.0]::double precision[] LOOP
        -- q = s t strictly inside both arcs: (p1 x q).w > 0 and (q x p2).w > 0
        IF s * ((a1[2]*t[3] - a1[3]*t[2]) * wa[1] + (a1[3]*t[1] - a1[1]*t[3]) * wa[2]
                + (a1[1]*t[2] - a1[2]*t[1]) * wa[3]) > 0
           AND s * ((t[2]*a2[3] - t[3]*a2[2]) * wa[1] + (t[3]*a2[1] - t[1]*a2[3]) * wa[2]
                    + (t[1]*a2[2] - t[2]*a2[1]) * wa[3]) > 0
           AND s * ((b1[2]*t[3] - b1[3]*t[2]) * wb[1] + (b1[3]*t[1] - b1[1]*t[3]) * wb[2]
                    + (b1[1]*t[2] - b1[2]*t[1]) * wb[3]) > 0
           AND s * ((t[2]*b2[3] - t[3]*b2[2]) * wb[1] + (t[3]*b2[1] - t[1]*b2[3]) * wb[2]
                    + (t[1]*b2[2] - t[2]*b2[1]) * wb[3]) > 0 THEN
          RETURN true;
        END IF;
      END LOOP;
    END LOOP;
  END LOOP;
  RETURN false;
END $$;

CREATE OR REPLACE FUNCTION taphouse_all_vertices_in(a double precision[],
                                                    b double precision[])
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT bool_and(taphouse_polygon_contains(a[2 * i - 1], a[2 * i], b))
  FROM generate_series(1, array_length(a, 1) / 2) AS i
$$;

CREATE OR REPLACE FUNCTION taphouse_any_vertex_in(a double precision[], b double precision[])
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT bool_or(taphouse_polygon_contains(a[2 * i - 1], a[2 * i], b))
  FROM generate_series(1, array_length(a, 1) / 2) AS i
$$;

CREATE OR REPLACE FUNCTION taphouse_contains(a double precision[], b double precision[])
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  na integer := coalesce(array_length(a, 1), 0);
  nb integer := coalesce(array_length(b, 1), 0);
BEGIN
  IF array_position(a, NULL) IS NOT NULL OR array_position(b, NULL) IS NOT NULL THEN
    RETURN NULL;  -- a NULL coordinate
  END IF;
  IF (na > 3 AND (na < 6 OR na % 2 = 1)) OR (nb > 3 AND (nb < 6 OR nb % 2 = 1))
     OR na < 2 OR nb < 2 THEN
    RAISE EXCEPTION 'CONTAINS: a region in the data cannot be used (a POLYGON needs at least 3 vertices given as pairs of coordinates)';
  END IF;
  IF na = 2 THEN
    IF nb = 2 THEN RETURN taphouse_angdist(a[1], a[2], b[1], b[2]) = 0; END IF;
    IF nb = 3 THEN RETURN taphouse_angdist(a[1], a[2], b[1], b[2]) <= b[3]; END IF;
    RETURN taphouse_polygon_contains(a[1], a[2], b);
  END IF;
  IF na = 3 THEN
    IF nb = 2 THEN RETURN a[3] <= 0 AND taphouse_angdist(a[1], a[2], b[1], b[2]) = 0; END IF;
    IF nb = 3 THEN RETURN taphouse_angdist(a[1], a[2], b[1], b[2]) + a[3] <= b[3]; END IF;
    RETURN a[3] < 90 AND taphouse_polygon_contains(a[1], a[2], b)
           AND NOT taphouse_near_boundary(a[1], a[2], a[3], b);
  END IF;
  IF nb = 2 THEN RETURN false; END IF;
  IF nb = 3 THEN
    IF b[3] >= 180 THEN RETURN true; END IF;
    IF b[3] <= 90 THEN
      RETURN (SELECT bool_and(taphouse_angdist(a[2 * i - 1], a[2 * i], b[1], b[2]) <= b[3])
              FROM generate_series(1, na / 2) AS i);
    END IF;
    RETURN NOT taphouse_intersects(ARRAY[b[1] + 180, -b[2], 180 - b[3]], a);
  END IF;
  RETURN taphouse_all_vertices_in(a, b) AND NOT taphouse_edges_cross(a, b);
END $$;

CREATE OR REPLACE FUNCTION taphouse_intersects(a double precision[], b double precision[])
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  na integer := coalesce(array_length(a, 1), 0);
  nb integer := coalesce(array_length(b, 1), 0);
BEGIN
  IF array_position(a, NULL) IS NOT NULL OR array_position(b, NULL) IS NOT NULL THEN
    RETURN NULL;  -- a NULL coordinate
  END IF;
  IF na = 2 THEN RETURN taphouse_contains(a, b); END IF;
  IF nb = 2 THEN RETURN taphouse_contains(b, a); END IF;
  IF (na > 3 AND (na < 6 OR na % 2 = 1)) OR (nb > 3 AND (nb < 6 OR nb % 2 = 1))
     OR na < 2 OR nb < 2 THEN
    RAISE EXCEPTION 'INTERSECTS: a region in the data cannot be used (a POLYGON needs at least 3 vertices given as pairs of coordinates)';
  END IF;
  IF na = 3 AND nb = 3 THEN
    RETURN taphouse_angdist(a[1], a[2], b[1], b[2]) <= a[3] + b[3];
  END IF;
  IF na = 3 THEN
    RETURN taphouse_polygon_contains(a[1], a[2], b) OR taphouse_near_boundary(a[1], a[2], a[3], b);
  END IF;
  IF nb = 3 THEN
    RETURN taphouse_polygon_contains(b[1], b[2], a) OR taphouse_near_boundary(b[1], b[2], b[3], a);
  END IF;
  RETURN taphouse_any_vertex_in(a, b) OR taphouse_any_vertex_in(b, a)
         OR taphouse_edges_cross(a, b);
END $$;

-- --- astrometry ---------------------------------------------------------------------------
-- taphouse_pmsafe: ERFA's pmsafe on plain numbers (starpv, light-time corrected linear
-- motion, pvstar): position lon/lat [deg], proper motion dRA/dt and dDec/dt [rad/yr],
-- parallax px [arcsec, >= 0], radial velocity rv [km/s], time dt [days]. Returns
-- [ra, dec (deg), pmr, pmd (rad/yr), px (arcsec), rv (km/s)] at the new epoch; with
-- with_motion = false only [ra, dec] (the velocity is then not converted back).
CREATE OR REPLACE FUNCTION taphouse_pmsafe(lon double precision, lat double precision,
                                           pmr double precision, pmd double precision,
                                           px double precision, rv double precision,
                                           dt double precision, with_motion boolean DEFAULT true)
RETURNS double precision[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  dr2as constant double precision := 206264.8062470963551564734;
  daysec constant double precision := 86400.0;
  djy constant double precision := 365.25;
  dau constant double precision := 149597870.7e3;
  dc constant double precision := 86400.0 / (149597870.7e3 / 299792458.0);  -- au/day
  r1 double precision := radians(lon); d1 double precision := radians(lat);
  pm double precision;
  -- starpv
  dist double precision; rd double precision; rad double precision; decd double precision;
  x double precision; y double precision; z double precision;
  vx double precision; vy double precision; vz double precision;
  ux double precision; uy double precision; uz double precision;
  vsr double precision; vst double precision;
  sx double precision; sy double precision; sz double precision;
  betsr double precision; betst double precision; betr double precision;
  bett double precision; dd double precision; del double precision; w double precision;
  od double precision := 0; odel double precision := 0;
  -- starpm
  tl1 double precision; tl2 double precision; rdv double precision; v2 double precision;
  c2mv2 double precision; r2 double precision;
  -- pvstar
  r double precision; vr double precision; vt double precision;
  rxy2 double precision; rxy double precision; xyp double precision;
  ra double precision; dec double precision; td double precision; pd double precision;
BEGIN
  -- pmsafe: a parallax floor keeps the implied transverse speed below ~1% of c
  ux := cos(d1) * cos(r1); uy := cos(d1) * sin(r1); uz := sin(d1);
  vx := cos(d1 + pmd) * cos(r1 + pmr); vy := cos(d1 + pmd) * sin(r1 + pmr);
  vz := sin(d1 + pmd);
  sx := uy * vz - uz * vy; sy := uz * vx - ux * vz; sz := ux * vy - uy * vx;
  pm := atan2(sqrt(sx * sx + sy * sy + sz * sz), ux * vx + uy * vy + uz * vz);
  px := greatest(px, pm * 326.0, 5e-7);
  -- starpv: spherical to position (au) and velocity (au/day)
  dist := dr2as / greatest(px, 1e-7);
  rd := daysec * rv * 1e3 / dau;
  rad := pmr / djy;
  decd := pmd / djy;
  x := dist * cos(d1) * cos(r1);
  y := dist * cos(d1) * sin(r1);
  z := dist * sin(d1);
  w := dist * decd * sin(d1) - cos(d1) * rd;
  vx := -y * rad - w * cos(r1);
  vy := x * rad - w * sin(r1);
  vz := dist * decd * cos(d1) + sin(d1) * rd;
  IF sqrt(vx * vx + vy * vy + vz * vz) / dc > 0.5 THEN
    vx := 0; vy := 0; vz := 0;
  END IF;
  ux := x / dist; uy := y / dist; uz := z / dist;
  vsr := ux * vx + uy * vy + uz * vz;
  sx := vx - vsr * ux; sy := vy - vsr * uy; sz := vz - vsr * uz;  -- transverse
  vst := sqrt(sx * sx + sy * sy + sz * sz);
  betsr := vsr / dc;
  betst := vst / dc;
  betr := betsr;
  bett := betst;
  FOR i IN 0..99 LOOP
    dd := 1.0 + betr;
    w := betr * betr + bett * bett;
    del := -w / (sqrt(1.0 - w) + 1.0);
    betr := dd * betsr + del;
    bett := dd * betst;
    EXIT WHEN i > 0 AND abs(dd - od) <= 1e-14 AND abs(del - odel) <= 1e-14;
    od := dd;
    odel := del;
  END LOOP;
  -- inertial velocity: radial part scaled by (d + del / betsr), transverse by d
  w := CASE WHEN betsr <> 0 THEN dd + del / betsr ELSE 1.0 END;
  vx := w * vsr * ux + dd * sx;
  vy := w * vsr * uy + dd * sy;
  vz := w * vsr * uz + dd * sz;
  -- starpm: move along the track, with the light time at both epochs
  tl1 := dist / dc;
  x := x + (dt + tl1) * vx; y := y + (dt + tl1) * vy; z := z + (dt + tl1) * vz;
  rdv := x * vx + y * vy + z * vz;
  v2 := vx * vx + vy * vy + vz * vz;
  c2mv2 := dc * dc - v2;
  r2 := x * x + y * y + z * z;
  tl2 := (-rdv + sqrt(rdv * rdv + c2mv2 * r2)) / c2mv2;
  x := dist * ux + (dt + tl1 - tl2) * vx;
  y := dist * uy + (dt + tl1 - tl2) * vy;
  z := dist * uz + (dt + tl1 - tl2) * vz;
  IF NOT with_motion THEN  -- the position only, as pvstar converts it
    rxy2 := x * x + y * y;
    ra := CASE WHEN rxy2 <> 0 THEN degrees(atan2(y, x)) ELSE 0 END;
    ra := ra - 360.0 * floor(ra / 360.0);
    IF ra >= 360.0 THEN ra := ra - 360.0; END IF;
    RETURN ARRAY[ra, CASE WHEN rxy2 = 0 AND z = 0 THEN 0.0
                          ELSE degrees(atan2(z, sqrt(rxy2))) END]::double precision[];
  END IF;
  -- pvstar: inertial back to observed velocity (special relativity), then spherical
  r := sqrt(x * x + y * y + z * z);
  ux := x / r; uy := y / r; uz := z / r;
  vr := ux * vx + uy * vy + uz * vz;
  sx := vx - vr * ux; sy := vy - vr * uy; sz := vz - vr * uz;  -- transverse
  vt := sqrt(sx * sx + sy * sy + sz * sz);
  betr := vr / dc;
  bett := vt / dc;
  dd := 1.0 + betr;
  w := betr * betr + bett * bett;
  del := -w / (sqrt(1.0 - w) + 1.0);
  w := CASE WHEN betr <> 0 THEN (betr - del) / (betr * dd) ELSE 1.0 END;
  vx := w * vr * ux + sx / dd;
  vy := w * vr * uy + sy / dd;
  vz := w * vr * uz + sz / dd;
  rxy2 := x * x + y * y;
  xyp := x * vx + y * vy;
  IF rxy2 <> 0 THEN
    rxy := sqrt(rxy2);
    ra := atan2(y, x);
    dec := atan2(z, rxy);
    td := (x * vy - y * vx) / rxy2;
    pd := (vz * rxy2 - z * xyp) / (r * r * rxy);
  ELSE
    ra := 0;
    dec := CASE WHEN z <> 0 THEN atan2(z, 0.0) ELSE 0.0 END;
    td := 0;
    pd := 0;
  END IF;
  ra := degrees(ra);
  ra := ra - 360.0 * floor(ra / 360.0);
  IF ra >= 360.0 THEN ra := ra - 360.0; END IF;
  RETURN ARRAY[ra, degrees(dec), td * djy, pd * djy, dr2as / r,
               1e-3 * ((xyp + z * vz) / r) * dau / daysec]::double precision[];
END $$;

-- ivo_epoch_prop_pos: the position at out_epoch of a star (taphouse_pmsafe), with the
-- NULL rules of the DuckDB function: NULL proper motion (either component), parallax or
-- radial velocity count as 0; the radial velocity is ignored without a positive
-- parallax; NULL only if the position or an epoch is NULL. Result [ra, dec] in degrees.
-- Plain SQL, so that PostgreSQL inlines it: one PL/pgSQL call per row, not two.
CREATE OR REPLACE FUNCTION ivo_epoch_prop_pos(lon double precision, lat double precision,
                                              parallax double precision,
                                              pmra double precision,
                                              pmdec double precision,
                                              radial_velocity double precision,
                                              ref_epoch double precision,
                                              out_epoch double precision)
RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN lon IS NULL OR lat IS NULL OR ref_epoch IS NULL OR out_epoch IS NULL
              THEN NULL
              ELSE (taphouse_pmsafe(
                lon, lat,
                -- ERFA wants dRA/dt; pmra includes cos(dec); [mas/yr] -> [rad/yr]
                CASE WHEN pmra IS NOT NULL AND pmdec IS NOT NULL AND cos(radians(lat)) > 0
                     THEN pmra * (pi() / 648000000.0) / cos(radians(lat)) ELSE 0 END,
                CASE WHEN pmra IS NOT NULL AND pmdec IS NOT NULL
                     THEN pmdec * (pi() / 648000000.0) ELSE 0 END,
                greatest(coalesce(parallax, 0), 0) / 1000.0,
                CASE WHEN coalesce(parallax, 0) > 0 THEN coalesce(radial_velocity, 0)
                     ELSE 0 END,
                (out_epoch - ref_epoch) * 365.25, false))
         END
$$;

-- epoch_prop: the ESA Gaia archive's EPOCH_PROP, [ra, dec, parallax, pmra, pmdec,
-- radial_velocity] at out_epoch in deg, deg, mas, mas/yr (pmra with cos dec), mas/yr,
-- km/s. Each NULL parallax, proper motion component or radial velocity counts as 0;
-- without a positive parallax the radial velocity does not move the star and parallax
-- and radial velocity are returned as given. NULL if the position or an epoch is NULL.
CREATE OR REPLACE FUNCTION epoch_prop(lon double precision, lat double precision,
                                      parallax double precision, pmra double precision,
                                      pmdec double precision,
                                      radial_velocity double precision,
                                      ref_epoch double precision,
                                      out_epoch double precision)
RETURNS double precision[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  mas constant double precision := pi() / (180.0 * 3600.0 * 1000.0);
  cosd1 double precision := cos(radians(lat));
  plx double precision := coalesce(parallax, 0);
  rv double precision := coalesce(radial_velocity, 0);
  pmr double precision := 0;
  p double precision[];
BEGIN
  IF lon IS NULL OR lat IS NULL OR ref_epoch IS NULL OR out_epoch IS NULL THEN
    RETURN NULL;
  END IF;
  IF cosd1 > 0 THEN
    pmr := coalesce(pmra, 0) * mas / cosd1;
  END IF;
  p := taphouse_pmsafe(lon, lat, pmr, coalesce(pmdec, 0) * mas,
                       CASE WHEN plx > 0 THEN plx / 1000.0 ELSE 0 END,
                       CASE WHEN plx > 0 THEN rv ELSE 0 END,
                       (out_epoch - ref_epoch) * 365.25);
  RETURN ARRAY[p[1], p[2], CASE WHEN plx > 0 THEN p[5] * 1000.0 ELSE plx END,
               p[3] * cos(radians(p[2])) / mas, p[4] / mas,
               CASE WHEN plx > 0 THEN p[6] ELSE rv END]::double precision[];
END $$;
