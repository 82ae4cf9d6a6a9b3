// Quick charts of a result: a histogram of one numeric column (every row), or a scatter
// plot of two (a random sample of big results); magnitudes can run bright-up, the
// mouse over a point shows its row and a click shows it in the table.

import { formatCount, h, replace } from "./dom";
import { columnData, columnSelect, MAX_POINTS, numericColumns, PlotCanvas, PointIndex, PointLayer,
  pointSize, rgba, RowTip, sampleNote, sampleRows, tickLabel, ticks } from "./plot";
import type { ResultTable } from "./table";

const MARGIN = { left: 66, right: 18, top: 14, bottom: 46 };
const POINT = rgba(31, 111, 235);
const BAR = "rgba(31, 111, 235, 0.72)";
const BAR_HOVER = "#0b4fc0";

interface Axis { lo: number; hi: number; flip: boolean; log: boolean }

/** A sensible first column to chart: a photometric one, else any that is not an id. */
function firstColumn(table: ResultTable, numeric: number[]): number {
  const ucd = (j: number) => (table.columns[j].ucd || "").toLowerCase();
  const isId = (j: number) => ucd(j).startsWith("meta.id") || /(^|_)id$/i.test(table.columns[j].name);
  return numeric.find((j) => ucd(j).startsWith("phot.")) ?? numeric.find((j) => !isId(j) && !ucd(j).startsWith("pos.")) ??
    numeric.find((j) => !isId(j)) ?? numeric[0] ?? -1;
}

function isMagnitude(table: ResultTable, j: number): boolean {
  const c = table.columns[j];
  return (c.unit || "").toLowerCase() === "mag" || (c.ucd || "").toLowerCase().startsWith("phot.mag");
}

/** Number of histogram bins for values (Freedman-Diaconis, between 10 and 200). */
export function autoBins(values: Float64Array, rows: Uint32Array, lo: number, hi: number): number {
  const sample: number[] = [];
  const step = Math.max(1, Math.floor(rows.length / 20000));
  for (let k = 0; k < rows.length; k += step) { const v = values[rows[k]]; if (Number.isFinite(v)) sample.push(v); }
  if (sample.length < 2 || !(hi > lo)) return 10;
  sample.sort((a, b) => a - b);
  const iqr = sample[Math.floor(sample.length * 0.75)] - sample[Math.floor(sample.length * 0.25)];
  const n = rows.length;
  const width = iqr > 0 ? 2 * iqr / Math.cbrt(n) : (hi - lo) / Math.sqrt(n);
  return Math.max(10, Math.min(200, Math.ceil((hi - lo) / width)));
}

export class Chart {
  readonly element: HTMLElement;
  private controls: HTMLElement;
  private note: HTMLElement;
  private area: HTMLElement;
  private plot: PlotCanvas;
  private tip = new RowTip();
  private binTip: HTMLElement;
  private mark: HTMLElement;
  private layer = new PointLayer();
  private index = new PointIndex();
  private table: ResultTable | null = null;
  private x = -1;
  private y = -1;
  private bins = 0;  // 0: automatic
  private logY = false;
  private flipX = false;
  private flipY = false;
  private rows = new Uint32Array(0);
  private sx = new Float32Array(0);
  private sy = new Float32Array(0);
  private histogram: { lo: number; width: number; counts: Uint32Array; total: number; missing: number } | null = null;
  private hoverBin = -1;
  private visible = false;

  constructor(private pick: (row: number) => void) {
    this.controls = h("div", { class: "plot-controls" });
    this.note = h("span", { class: "plot-note", role: "status" });
    this.area = h("div", { class: "plot-area chart-area" });
    this.mark = h("div", { class: "plot-mark", hidden: true });
    this.binTip = h("div", { class: "plot-tip bin-tip", role: "tooltip", hidden: true });
    this.plot = new PlotCanvas(this.area, () => this.draw());
    this.plot.canvas.classList.add("chart-canvas");
    this.plot.canvas.setAttribute("aria-label", "chart of the result's columns");
    this.area.append(this.mark, this.note, this.tip.element, this.binTip);
    this.element = h("div", { class: "plot chart", hidden: true }, this.controls, this.area);
    this.listen();
  }

  setData(table: ResultTable | null): void {
    this.table = table;
    const numeric = table ? numericColumns(table) : [];
    this.x = table ? firstColumn(table, numeric) : -1;
    this.y = -1;
    this.flipX = false;
    this.flipY = false;
    this.logY = false;
    this.bins = 0;
    this.note.textContent = "";
    this.buildControls();
    if (this.visible) this.redraw();
  }

  show(): void {
    this.visible = true;
    this.plot.resize();
    this.redraw();
  }

  hide(): void {
    this.visible = false;
    this.tip.hide();
    this.binTip.hidden = true;
    this.mark.hidden = true;
  }

  private buildControls(): void {
    const table = this.table;
    if (!table) { replace(this.controls); return; }
    const numeric = numericColumns(table);
    if (!numeric.length) {
      replace(this.controls, h("span", { class: "small muted" }, "The result has no numeric columns to chart."));
      return;
    }
    const x = columnSelect("x column", table, numeric, this.x);
    const y = columnSelect("y column", table, numeric, this.y, "histogram (count)");
    const bins = h("select", { "aria-label": "bins" }, h("option", { value: 0 }, "auto"),
      ...[10, 20, 50, 100, 200].map((n) => h("option", { value: n }, String(n))));
    const check = (label: string, title: string, get: () => boolean, set: (v: boolean) => void) => {
      const box = h("input", { type: "checkbox", checked: get() });
      box.addEventListener("change", () => { set(box.checked); this.redraw(); });
      return h("label", { class: "check", title }, box, label);
    };
    const binsLabel = h("label", null, "bins ", bins);
    const logLabel = check("log", "logarithmic counts", () => this.logY, (v) => { this.logY = v; });
    const flipY = check("flip y", "y growing downwards (magnitudes: bright at the top)", () => this.flipY, (v) => { this.flipY = v; });
    const sync = () => {
      binsLabel.hidden = logLabel.hidden = this.y >= 0;
      flipY.hidden = this.y < 0;
    };
    x.addEventListener("change", () => { this.x = Number(x.value); this.redraw(); });
    y.addEventListener("change", () => {
      this.y = Number(y.value);
      this.flipY = this.y >= 0 && isMagnitude(table, this.y);
      (flipY.querySelector("input") as HTMLInputElement).checked = this.flipY;
      sync();
      this.redraw();
    });
    bins.addEventListener("change", () => { this.bins = Number(bins.value); this.redraw(); });
    replace(this.controls, h("label", null, "x ", x), h("label", null, "y ", y), binsLabel, logLabel,
      check("flip x", "x growing to the left", () => this.flipX, (v) => { this.flipX = v; }), flipY);
    sync();
  }

  private redraw(): void {
    if (!this.visible) return;
    performance.mark("chart-plot");
    this.prepare();
    this.draw();
    requestAnimationFrame(() => setTimeout(() => performance.measure("chart-plot", "chart-plot"), 0));
  }

  /** The rows to plot (a sample for a scatter plot) or the histogram's counts. */
  private prepare(): void {
    const table = this.table;
    this.histogram = null;
    this.rows = new Uint32Array(0);
    if (!table || this.x < 0) return;
    const xs = columnData(table, this.x);
    if (this.y < 0) {
      let lo = Infinity, hi = -Infinity, missing = 0;
      for (let i = 0; i < table.length; i++) {
        const v = xs[i];
        if (!Number.isFinite(v)) { missing++; continue; }
        if (v < lo) lo = v; if (v > hi) hi = v;
      }
      const total = table.length - missing;
      if (!total) { this.histogram = { lo: 0, width: 1, counts: new Uint32Array(0), total, missing }; return; }
      if (hi === lo) { lo -= 0.5; hi += 0.5; }
      const all = Uint32Array.from({ length: table.length }, (_, i) => i);
      const n = this.bins || autoBins(xs, all, lo, hi);
      const width = (hi - lo) / n;
      const counts = new Uint32Array(n);
      for (let i = 0; i < table.length; i++) {
        const v = xs[i];
        if (Number.isFinite(v)) counts[Math.min(n - 1, Math.floor((v - lo) / width))]++;
      }
      this.histogram = { lo, width, counts, total, missing };
      return;
    }
    const ys = columnData(table, this.y);
    const usable: number[] = [];
    for (let i = 0; i < table.length; i++) if (Number.isFinite(xs[i]) && Number.isFinite(ys[i])) usable.push(i);
    const chosen = sampleRows(usable.length, MAX_POINTS);
    this.rows = chosen.map((k) => usable[k]);
  }

  private axes(): [Axis, Axis] {
    const table = this.table as ResultTable;
    const pad = (lo: number, hi: number): [number, number] => {
      if (!(hi > lo)) return [lo - 0.5, hi + 0.5];
      const m = (hi - lo) * 0.03;
      return [lo - m, hi + m];
    };
    if (this.histogram) {
      const hst = this.histogram;
      const max = Math.max(1, ...hst.counts);
      const y: Axis = this.logY ? { lo: 0.7, hi: max * 1.6, flip: false, log: true } : { lo: 0, hi: max * 1.06, flip: false, log: false };
      return [{ lo: hst.lo, hi: hst.lo + hst.width * hst.counts.length, flip: this.flipX, log: false }, y];
    }
    const range = (j: number): [number, number] => {
      const d = columnData(table, j);
      let lo = Infinity, hi = -Infinity;
      for (let k = 0; k < this.rows.length; k++) { const v = d[this.rows[k]]; if (v < lo) lo = v; if (v > hi) hi = v; }
      return this.rows.length ? pad(lo, hi) : [0, 1];
    };
    const [x0, x1] = range(this.x);
    const [y0, y1] = range(this.y);
    return [{ lo: x0, hi: x1, flip: this.flipX, log: false }, { lo: y0, hi: y1, flip: this.flipY, log: false }];
  }

  private draw(): void {
    const table = this.table;
    if (!this.visible || !this.plot.width) return;
    const ctx = this.plot.context();
    const W = this.plot.width, H = this.plot.height;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, W, H);
    if (!table || this.x < 0 || (!this.histogram && this.y < 0)) return;
    const [ax, ay] = this.axes();
    const box = { x0: MARGIN.left, x1: W - MARGIN.right, y0: MARGIN.top, y1: H - MARGIN.bottom };
    const fx = (v: number) => {
      const t = (v - ax.lo) / (ax.hi - ax.lo);
      return box.x0 + (ax.flip ? 1 - t : t) * (box.x1 - box.x0);
    };
    const fy = (v: number) => {
      const t = ay.log ? (Math.log10(Math.max(v, ay.lo)) - Math.log10(ay.lo)) / (Math.log10(ay.hi) - Math.log10(ay.lo))
        : (v - ay.lo) / (ay.hi - ay.lo);
      return box.y1 - (ay.flip ? 1 - t : t) * (box.y1 - box.y0);
    };
    this.frame(ctx, box, ax, ay, fx, fy);
    const c = table.columns[this.x];
    if (this.histogram) {
      const hst = this.histogram;
      ctx.fillStyle = BAR;
      for (let b = 0; b < hst.counts.length; b++) {
        if (!hst.counts[b]) continue;
        const xa = fx(hst.lo + b * hst.width), xb = fx(hst.lo + (b + 1) * hst.width);
        const top = fy(hst.counts[b]);
        ctx.fillStyle = b === this.hoverBin ? BAR_HOVER : BAR;
        ctx.fillRect(Math.min(xa, xb) + 0.5, top, Math.max(1, Math.abs(xb - xa) - 1), box.y1 - top);
      }
      this.note.textContent = `${sampleNote(hst.total, hst.total, hst.missing)} · ${hst.counts.length} bins of ${tickLabel(hst.width, hst.width / 100)}${c.unit ? " " + c.unit : ""}`;
    } else {
      const xs = columnData(table, this.x), ys = columnData(table, this.y);
      const n = this.rows.length;
      const dpr = this.plot.dpr;
      const size = Math.max(1, Math.round(pointSize(n) * dpr));
      this.sx = new Float32Array(n);
      this.sy = new Float32Array(n);
      this.layer.begin(this.plot.canvas.width, this.plot.canvas.height);
      for (let k = 0; k < n; k++) {
        const i = this.rows[k];
        const X = fx(xs[i]), Y = fy(ys[i]);
        this.sx[k] = X;
        this.sy[k] = Y;
        this.layer.dot(X * dpr, Y * dpr, size, POINT);
      }
      this.layer.finish(ctx);
      this.index.build(this.sx, this.sy, W, H);
      let missing = 0;
      for (let i = 0; i < table.length; i++) if (!(Number.isFinite(xs[i]) && Number.isFinite(ys[i]))) missing++;
      this.note.textContent = sampleNote(n, table.length, missing);
    }
    this.plot.canvas.dataset.kind = this.histogram ? "histogram" : "scatter";
    this.plot.canvas.dataset.box = JSON.stringify({ ...box, x: [ax.lo, ax.hi, ax.flip], y: [ay.lo, ay.hi, ay.flip, ay.log] });
  }

  private frame(ctx: CanvasRenderingContext2D, box: { x0: number; x1: number; y0: number; y1: number },
                ax: Axis, ay: Axis, fx: (v: number) => number, fy: (v: number) => number): void {
    const table = this.table as ResultTable;
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    const xt = ticks(ax.lo, ax.hi, Math.max(2, Math.floor((box.x1 - box.x0) / 90)));
    const xstep = xt.length > 1 ? xt[1] - xt[0] : 1;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const v of xt) {
      const X = Math.round(fx(v)) + 0.5;
      ctx.strokeStyle = "#edf1f6";
      ctx.beginPath(); ctx.moveTo(X, box.y0); ctx.lineTo(X, box.y1); ctx.stroke();
      ctx.fillStyle = "#5f6b7a";
      ctx.fillText(tickLabel(v, xstep), X, box.y1 + 5);
    }
    let yt: number[];
    let ystep = 1;
    if (ay.log) {
      yt = [];
      for (let p = 0; 10 ** p <= ay.hi; p++) yt.push(10 ** p);
    } else {
      yt = ticks(ay.lo, ay.hi, Math.max(2, Math.floor((box.y1 - box.y0) / 50)));
      ystep = yt.length > 1 ? yt[1] - yt[0] : 1;
    }
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of yt) {
      const Y = Math.round(fy(v)) + 0.5;
      ctx.strokeStyle = "#edf1f6";
      ctx.beginPath(); ctx.moveTo(box.x0, Y); ctx.lineTo(box.x1, Y); ctx.stroke();
      ctx.fillStyle = "#5f6b7a";
      ctx.fillText(ay.log ? formatCount(v) : tickLabel(v, ystep), box.x0 - 6, Y);
    }
    ctx.strokeStyle = "#aab4c0";
    ctx.strokeRect(box.x0 + 0.5, box.y0 + 0.5, box.x1 - box.x0 - 1, box.y1 - box.y0 - 1);
    const title = (j: number) => { const c = table.columns[j]; return c.unit ? `${c.name} [${c.unit}]` : c.name; };
    ctx.fillStyle = "#1d2733";
    ctx.font = "600 12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.fillText(title(this.x), (box.x0 + box.x1) / 2, this.plot.height - 6);
    ctx.save();
    ctx.translate(14, (box.y0 + box.y1) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText(this.y < 0 ? (this.logY ? "rows (log)" : "rows") : title(this.y), 0, 0);
    ctx.restore();
  }

  private listen(): void {
    const canvas = this.plot.canvas;
    const at = (e: MouseEvent): [number, number] => {
      const r = canvas.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    canvas.addEventListener("pointermove", (e) => {
      const [x, y] = at(e);
      if (this.histogram) this.hoverHistogram(x, y); else this.hoverPoint(x, y);
    });
    canvas.addEventListener("pointerleave", () => {
      this.tip.hide();
      this.binTip.hidden = true;
      this.mark.hidden = true;
      if (this.hoverBin >= 0) { this.hoverBin = -1; this.draw(); }
    });
    canvas.addEventListener("click", (e) => {
      if (this.histogram) return;
      const [x, y] = at(e);
      const k = this.index.nearest(x, y);
      if (k >= 0) this.pick(this.rows[k]);
    });
  }

  private hoverPoint(x: number, y: number): void {
    const table = this.table;
    const k = table ? this.index.nearest(x, y) : -1;
    if (!table || k < 0) { this.tip.hide(); this.mark.hidden = true; this.plot.canvas.style.cursor = ""; return; }
    this.plot.canvas.style.cursor = "pointer";
    this.mark.hidden = false;
    this.mark.style.transform = `translate(${this.sx[k] - 7}px, ${this.sy[k] - 7}px)`;
    this.tip.show(table, this.rows[k], this.sx[k], this.sy[k], [this.x, this.y], this.area);
  }

  private hoverHistogram(x: number, y: number): void {
    const hst = this.histogram;
    const table = this.table;
    if (!hst || !table) return;
    const [ax] = this.axes();
    const W = this.plot.width;
    let t = (x - MARGIN.left) / (W - MARGIN.right - MARGIN.left);
    if (ax.flip) t = 1 - t;
    const b = Math.floor(t * hst.counts.length);
    const inside = t >= 0 && t < 1 && y >= MARGIN.top && y <= this.plot.height - MARGIN.bottom;
    const bin = inside ? b : -1;
    if (bin !== this.hoverBin) { this.hoverBin = bin; this.draw(); }
    if (bin < 0) { this.binTip.hidden = true; return; }
    const c = table.columns[this.x];
    const lo = hst.lo + bin * hst.width;
    const step = hst.width / 100;
    replace(this.binTip, h("div", { class: "plot-tip-title" }, `${formatCount(hst.counts[bin])} rows`),
      h("div", null, `${c.name} from ${tickLabel(lo, step)} to ${tickLabel(lo + hst.width, step)}${c.unit ? " " + c.unit : ""}`));
    this.binTip.hidden = false;
    this.binTip.style.left = `${Math.min(x + 14, W - this.binTip.offsetWidth - 4)}px`;
    this.binTip.style.top = `${Math.max(0, y - 40)}px`;
  }
}
