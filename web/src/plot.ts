// What the sky plot and the charts share: a canvas that follows its box, numeric
// columns of a result, random samples of big results, points drawn as pixels, the
// nearest point under the mouse, a row shown in a tooltip, axis ticks and colours.

import { formatCount, h, replace } from "./dom";
import { formatValue } from "./grid";
import { type ResultTable, valueAt } from "./table";

/** Results with more rows are plotted from a random sample of this many. */
export const MAX_POINTS = 100_000;

/** A canvas sized to its box in device pixels; ``draw`` runs after every resize. */
export class PlotCanvas {
  readonly canvas: HTMLCanvasElement;
  width = 0;
  height = 0;
  dpr = 1;

  constructor(readonly host: HTMLElement, private draw: () => void) {
    this.canvas = h("canvas", { class: "plot-canvas" });
    host.appendChild(this.canvas);
    new ResizeObserver(() => this.resize()).observe(host);
  }

  /** Match the box (CSS pixels) and device pixels; true if the size changed. */
  resize(): boolean {
    const w = this.host.clientWidth;
    const hgt = this.host.clientHeight;
    const dpr = window.devicePixelRatio || 1;
    if (!w || !hgt) return false;
    if (w === this.width && hgt === this.height && dpr === this.dpr) return false;
    this.width = w;
    this.height = hgt;
    this.dpr = dpr;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(hgt * dpr);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${hgt}px`;
    this.draw();
    return true;
  }

  context(): CanvasRenderingContext2D {
    const ctx = this.canvas.getContext("2d") as CanvasRenderingContext2D;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    return ctx;
  }
}

/** Columns of a result that hold numbers (typed arrays), by index. */
export function numericColumns(table: ResultTable): number[] {
  const out: number[] = [];
  table.values.forEach((v, j) => { if (v.kind === "number") out.push(j); });
  return out;
}

export function columnData(table: ResultTable, j: number): Float64Array {
  const v = table.values[j];
  if (v.kind !== "number") throw new Error(`${table.columns[j].name} is not numeric`);
  return v.data;
}

/** ``k`` of the rows ``0..n-1`` chosen at random (always the same for the same n, k),
 *  in order; all of them when n <= k (selection sampling, one pass). */
export function sampleRows(n: number, k: number, seed = 20240501): Uint32Array {
  if (n <= k) return Uint32Array.from({ length: n }, (_, i) => i);
  const out = new Uint32Array(k);
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let chosen = 0;
  for (let i = 0; i < n && chosen < k; i++) {
    if ((n - i) * random() < k - chosen) out[chosen++] = i;
  }
  return out;
}

/** What a plot says about the rows it shows. */
export function sampleNote(plotted: number, total: number, missing: number, what = "rows"): string {
  const parts = [total > plotted + missing
    ? `${formatCount(plotted)} of ${formatCount(total)} ${what} plotted (a random sample)`
    : `${formatCount(plotted)} ${what} plotted`];
  if (missing) parts.push(`${formatCount(missing)} without values`);
  return parts.join(" · ");
}

/** Points drawn as squares of pixels in one image, then composited onto the canvas. */
export class PointLayer {
  private layer = document.createElement("canvas");
  private image: ImageData | null = null;
  private pixels: Uint32Array | null = null;

  begin(width: number, height: number): void {
    if (this.layer.width !== width || this.layer.height !== height || !this.image) {
      this.layer.width = width;
      this.layer.height = height;
      this.image = new ImageData(width, height);
      this.pixels = new Uint32Array(this.image.data.buffer);
    } else {
      (this.pixels as Uint32Array).fill(0);
    }
  }

  /** A square of ``size`` device pixels centred at (x, y) in device pixels. */
  dot(x: number, y: number, size: number, rgba: number): void {
    const image = this.image as ImageData;
    const pixels = this.pixels as Uint32Array;
    const w = image.width;
    const x0 = Math.round(x - size / 2);
    const y0 = Math.round(y - size / 2);
    const x1 = Math.min(w, x0 + size);
    const y1 = Math.min(image.height, y0 + size);
    for (let yy = Math.max(0, y0); yy < y1; yy++) {
      const row = yy * w;
      for (let xx = Math.max(0, x0); xx < x1; xx++) pixels[row + xx] = rgba;
    }
  }

  /** Composite the points onto ``ctx`` (which may be scaled for device pixels). */
  finish(ctx: CanvasRenderingContext2D): void {
    const layerCtx = this.layer.getContext("2d") as CanvasRenderingContext2D;
    layerCtx.putImageData(this.image as ImageData, 0, 0);
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(this.layer, 0, 0);
    ctx.restore();
  }
}

/** An RGBA colour as the little-endian 32-bit word ImageData's buffer holds. */
export function rgba(r: number, g: number, b: number, a = 255): number {
  return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

// Viridis at nine stops (the matplotlib colour map, CC0).
const VIRIDIS = [[68, 1, 84], [71, 45, 123], [59, 82, 139], [44, 114, 142], [33, 145, 140],
  [40, 174, 128], [94, 201, 98], [170, 220, 50], [253, 231, 37]];

/** Colour of t in [0, 1] on the viridis map, as [r, g, b]. */
export function viridis(t: number): [number, number, number] {
  const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i];
  const b = VIRIDIS[i + 1];
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * f)) as [number, number, number];
}

/** The 2nd and 98th percentiles of the finite values at ``rows``. */
export function robustRange(data: Float64Array, rows: Uint32Array): [number, number] {
  const values: number[] = [];
  const step = Math.max(1, Math.floor(rows.length / 20000));
  for (let k = 0; k < rows.length; k += step) {
    const v = data[rows[k]];
    if (Number.isFinite(v)) values.push(v);
  }
  if (!values.length) return [0, 1];
  values.sort((a, b) => a - b);
  const lo = values[Math.floor(values.length * 0.02)];
  const hi = values[Math.min(values.length - 1, Math.floor(values.length * 0.98))];
  return lo === hi ? [lo - 0.5, hi + 0.5] : [lo, hi];
}

/** Point size in CSS pixels for a number of points. */
export function pointSize(n: number): number {
  return n <= 2_000 ? 4 : n <= 20_000 ? 3 : n <= 60_000 ? 2 : 1;
}

/** Ticks at a 1-2-5 step covering [lo, hi] with about ``count`` of them. */
export function ticks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || 10 * power;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** A tick label: as few digits as the step needs. */
export function tickLabel(v: number, step: number): string {
  if (Math.abs(v) >= 1e6 || (Math.abs(v) < 1e-3 && v !== 0)) return v.toExponential(2).replace(/\.?0+e/, "e");
  const digits = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(digits);
}

/** The index of points on screen, for the nearest point under the mouse. */
export class PointIndex {
  private cellOf = new Int32Array(0);
  private starts = new Int32Array(1);
  private order = new Int32Array(0);
  private cols = 0;
  private rows = 0;
  private x: Float32Array = new Float32Array(0);
  private y: Float32Array = new Float32Array(0);

  constructor(private cell = 8) {}

  /** Index points at (x[k], y[k]) in CSS pixels (NaN: not drawn) in a w x h box. */
  build(x: Float32Array, y: Float32Array, w: number, hgt: number): void {
    this.x = x;
    this.y = y;
    this.cols = Math.max(1, Math.ceil(w / this.cell));
    this.rows = Math.max(1, Math.ceil(hgt / this.cell));
    const n = x.length;
    const cells = this.cols * this.rows;
    this.cellOf = new Int32Array(n);
    const counts = new Int32Array(cells + 1);
    for (let k = 0; k < n; k++) {
      const cx = Math.floor(x[k] / this.cell);
      const cy = Math.floor(y[k] / this.cell);
      if (!(cx >= 0 && cx < this.cols && cy >= 0 && cy < this.rows)) { this.cellOf[k] = -1; continue; }
      const c = cy * this.cols + cx;
      this.cellOf[k] = c;
      counts[c + 1]++;
    }
    for (let c = 0; c < cells; c++) counts[c + 1] += counts[c];
    this.starts = counts.slice();
    this.order = new Int32Array(counts[cells]);
    const fill = counts;
    for (let k = 0; k < n; k++) {
      const c = this.cellOf[k];
      if (c >= 0) this.order[fill[c]++] = k;
    }
  }

  /** The point nearest to (px, py) within ``radius`` CSS pixels (its k), or -1. The
   *  last drawn wins among equals (it is the one on top). */
  nearest(px: number, py: number, radius = 6): number {
    const c0 = Math.floor((px - radius) / this.cell);
    const c1 = Math.floor((px + radius) / this.cell);
    const r0 = Math.floor((py - radius) / this.cell);
    const r1 = Math.floor((py + radius) / this.cell);
    let best = -1;
    let bestD = radius * radius;
    for (let r = Math.max(0, r0); r <= Math.min(this.rows - 1, r1); r++) {
      for (let c = Math.max(0, c0); c <= Math.min(this.cols - 1, c1); c++) {
        const cell = r * this.cols + c;
        for (let i = this.starts[cell]; i < this.starts[cell + 1]; i++) {
          const k = this.order[i];
          const dx = this.x[k] - px;
          const dy = this.y[k] - py;
          const d = dx * dx + dy * dy;
          if (d < bestD || (d === bestD && k > best)) { bestD = d; best = k; }
        }
      }
    }
    return best;
  }
}

/** A box beside the mouse showing one row of the result (values as text). */
export class RowTip {
  readonly element: HTMLElement;

  constructor() {
    this.element = h("div", { class: "plot-tip", role: "tooltip", hidden: true });
  }

  show(table: ResultTable, row: number, x: number, y: number, first: number[], box: HTMLElement): void {
    const order = [...first, ...table.columns.map((_, j) => j).filter((j) => !first.includes(j))].slice(0, 12);
    replace(this.element,
      h("div", { class: "plot-tip-title" }, `row ${formatCount(row + 1)}`),
      h("table", null, h("tbody", null, ...order.map((j) => {
        const c = table.columns[j];
        return h("tr", null, h("th", null, c.name),
          h("td", null, formatValue(valueAt(table.values[j], row), c), c.unit ? h("span", { class: "plot-tip-unit" }, ` ${c.unit}`) : null));
      }))),
      table.columns.length > order.length ? h("div", { class: "plot-tip-more" }, `${table.columns.length - order.length} more columns in the table`) : null,
      h("div", { class: "plot-tip-more" }, "click: show the row in the table"));
    this.element.hidden = false;
    const w = box.clientWidth;
    const hgt = box.clientHeight;
    const tw = this.element.offsetWidth;
    const th = this.element.offsetHeight;
    this.element.style.left = `${x + 14 + tw > w ? Math.max(0, x - 14 - tw) : x + 14}px`;
    this.element.style.top = `${Math.max(0, Math.min(hgt - th, y - th / 2))}px`;
  }

  hide(): void {
    this.element.hidden = true;
  }
}

/** A <select> of columns (``none`` adds a first option with value -1). */
export function columnSelect(label: string, table: ResultTable | null, columns: number[], chosen: number,
                             none?: string): HTMLSelectElement {
  const select = h("select", { "aria-label": label });
  if (none) select.appendChild(h("option", { value: -1 }, none));
  for (const j of columns) {
    const c = table!.columns[j];
    select.appendChild(h("option", { value: j, selected: j === chosen }, c.unit ? `${c.name} [${c.unit}]` : c.name));
  }
  if (chosen < 0 && none) select.value = "-1";
  return select;
}
