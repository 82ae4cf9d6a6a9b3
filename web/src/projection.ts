// All-sky equal-area projections (Hammer-Aitoff, the FITS "AIT"; Mollweide, "MOL") of
// positions rotated so that a chosen point of the sky is at the centre. Projected
// coordinates are in units of the sphere's radius; x grows to the west (so that east
// is to the left, as on the sky).

export type ProjectionName = "hammer" | "mollweide";

const DEG = Math.PI / 180;
const SQRT2 = Math.SQRT2;

/** Half width and half height of the projected sphere (the same for both). */
export function extent(_p: ProjectionName): [number, number] {
  return [2 * SQRT2, SQRT2];
}

/** Rotation taking (ra0, dec0) to (0, 0): ``rotate`` gives (lon, lat) in radians. */
export class Rotation {
  private ca: number; private sa: number; private cd: number; private sd: number;

  constructor(readonly ra0: number, readonly dec0: number) {
    this.ca = Math.cos(ra0 * DEG); this.sa = Math.sin(ra0 * DEG);
    this.cd = Math.cos(dec0 * DEG); this.sd = Math.sin(dec0 * DEG);
  }

  /** (lon, lat) in radians, lon in [-pi, pi], of (ra, dec) in degrees. */
  rotate(ra: number, dec: number, out: Float64Array): void {
    const a = ra * DEG;
    const d = dec * DEG;
    const cosd = Math.cos(d);
    const x = cosd * Math.cos(a);
    const y = cosd * Math.sin(a);
    const z = Math.sin(d);
    const x1 = x * this.ca + y * this.sa;
    const y1 = -x * this.sa + y * this.ca;
    const x2 = x1 * this.cd + z * this.sd;
    const z2 = -x1 * this.sd + z * this.cd;
    out[0] = Math.atan2(y1, x2);
    out[1] = Math.asin(Math.max(-1, Math.min(1, z2)));
  }

  /** (ra, dec) in degrees of rotated (lon, lat) in radians. */
  unrotate(lon: number, lat: number, out: Float64Array): void {
    const cosl = Math.cos(lat);
    const x2 = cosl * Math.cos(lon);
    const y2 = cosl * Math.sin(lon);
    const z2 = Math.sin(lat);
    const x1 = x2 * this.cd - z2 * this.sd;
    const z = x2 * this.sd + z2 * this.cd;
    const x = x1 * this.ca - y2 * this.sa;
    const y = x1 * this.sa + y2 * this.ca;
    let ra = Math.atan2(y, x) / DEG;
    if (ra < 0) ra += 360;
    out[0] = ra;
    out[1] = Math.asin(Math.max(-1, Math.min(1, z))) / DEG;
  }
}

/** Project rotated (lon, lat) in radians; writes (x, y) with x positive to the west. */
export function project(p: ProjectionName, lon: number, lat: number, out: Float64Array): void {
  if (p === "hammer") {
    const c = Math.cos(lat);
    const z = Math.sqrt(1 + c * Math.cos(lon / 2));
    out[0] = -(2 * SQRT2 * c * Math.sin(lon / 2)) / z;
    out[1] = (SQRT2 * Math.sin(lat)) / z;
    return;
  }
  // Mollweide: solve t + sin t = pi sin(lat) for t = 2 theta (Newton).
  let t: number;
  if (Math.abs(lat) > Math.PI / 2 - 1e-9) {
    t = Math.sign(lat) * Math.PI;
  } else {
    const target = Math.PI * Math.sin(lat);
    t = 2 * lat;
    for (let i = 0; i < 30; i++) {
      const step = (t + Math.sin(t) - target) / (1 + Math.cos(t));
      t -= step;
      if (Math.abs(step) < 1e-12) break;
    }
  }
  const theta = t / 2;
  out[0] = -(2 * SQRT2 / Math.PI) * lon * Math.cos(theta);
  out[1] = SQRT2 * Math.sin(theta);
}

/** The rotated (lon, lat) in radians of projected (x, y); false outside the sphere. */
export function unproject(p: ProjectionName, x: number, y: number, out: Float64Array): boolean {
  const u = -x;
  if ((u / (2 * SQRT2)) ** 2 + (y / SQRT2) ** 2 > 1) return false;
  if (p === "hammer") {
    const z = Math.sqrt(1 - (u / 4) ** 2 - (y / 2) ** 2);
    out[0] = 2 * Math.atan2(z * u, 2 * (2 * z * z - 1));
    out[1] = Math.asin(Math.max(-1, Math.min(1, z * y)));
    return true;
  }
  const theta = Math.asin(Math.max(-1, Math.min(1, y / SQRT2)));
  const c = Math.cos(theta);
  out[0] = c > 1e-12 ? Math.PI * u / (2 * SQRT2 * c) : 0;
  out[1] = Math.asin(Math.max(-1, Math.min(1, (2 * theta + Math.sin(2 * theta)) / Math.PI)));
  return Math.abs(out[0]) <= Math.PI + 1e-9;
}

/** Project many positions: ``x``/``y`` get the projected coordinates of ``ra[i]``,
 *  ``dec[i]`` for every ``i`` of ``rows`` (NaN where a value is missing). */
export function projectAll(p: ProjectionName, rotation: Rotation, ra: Float64Array, dec: Float64Array,
                           rows: Uint32Array, x: Float32Array, y: Float32Array): void {
  const rot = new Float64Array(2);
  const xy = new Float64Array(2);
  for (let k = 0; k < rows.length; k++) {
    const i = rows[k];
    const a = ra[i];
    const d = dec[i];
    if (!Number.isFinite(a) || !Number.isFinite(d)) {
      x[k] = NaN;
      y[k] = NaN;
      continue;
    }
    rotation.rotate(a, d, rot);
    project(p, rot[0], rot[1], xy);
    x[k] = xy[0];
    y[k] = xy[1];
  }
}
