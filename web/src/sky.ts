// The sky plot of a result: its RA/Dec columns in an all-sky equal-area projection
// (Hammer-Aitoff or Mollweide) drawn on a canvas, centred on the data, with a coordinate grid; wheel or
// buttons zoom, dragging pans, the mouse over a point shows its row, a click shows the
// row in the table. Big results are plotted from a random sample.

import { h, replace } from "./dom";
import { columnData, columnSelect, MAX_POINTS, numericColumns, PlotCanvas, PointIndex, PointLayer,
  pointSize, rgba, robustRange, RowTip, sampleNote, sampleRows, viridis } from "./plot";
import { extent, project, type ProjectionName, projectAll, Rotation, unproject } from "./projection";
import type { ResultTable } from "./table";

const DEG = Math.PI / 180;
const SKY = "#0c1a33";
const OUTSIDE = "#eef2f7";
const GRID = "rgba(190, 210, 240, 0.22)";
const LABEL = "#9fb3cf";
const POINT = rgba(255, 209, 102);
const RA_NAMES = ["ra", "ra_icrs", "raj2000", "ra_j2000", "ra_deg", "alpha", "ra2000", "_raj2000"];
const DEC_NAMES = ["dec", "de", "dec_icrs", "de_icrs", "dej2000", "dec_j2000", "dec_deg", "delta", "dec2000", "_dej2000"];
/** Grid steps in degrees (decimal degrees, as ADQL writes positions). */
const STEPS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30];

/** Where t in [0, 1] falls on the colour map: its lighter two thirds (the darkest colours
 *  vanish on the night-blue sky), reversed on request. */
function rampAt(t: number, reversed: boolean): number {
  return 0.35 + 0.65 * (reversed ? 1 - t : t);
}

/** The RA and Dec columns of a result: by UCD (the main position first), else by name. */
export function positionColumns(table: ResultTable): [number, number] {
  const numeric = numericColumns(table);
  const find = (word: string, names: string[]) => {
    const ucd = (j: number) => (table.columns[j].ucd || "").toLowerCase().split(";").map((s) => s.trim());
    return numeric.find((j) => ucd(j)[0] === word && ucd(j).includes("meta.main"))
      ?? numeric.find((j) => ucd(j)[0] === word)
      ?? numeric.find((j) => names.includes(table.columns[j].name.toLowerCase()))
      ?? -1;
  };
  return [find("pos.eq.ra", RA_NAMES), find("pos.eq.dec", DEC_NAMES)];
}

interface View { scale: number; cx: number; cy: number }

export class SkyPlot {
  readonly element: HTMLElement;
  private area: HTMLElement;
  private plot: PlotCanvas;
  private controls: HTMLElement;
  private note: HTMLElement;
  private tip = new RowTip();
  private mark: HTMLElement;
  private layer = new PointLayer();
  private index = new PointIndex();
  private table: ResultTable | null = null;
  private ra = -1;
  private dec = -1;
  private colour = -1;
  private projection: ProjectionName = "hammer";
  private rotation = new Rotation(0, 0);
  private rows = new Uint32Array(0);
  private ux = new Float32Array(0);
  private uy = new Float32Array(0);
  private sx = new Float32Array(0);
  private sy = new Float32Array(0);
  private view: View | null = null;
  private missing = 0;
  private visible = false;
  private frame = 0;
  private drag: { x: number; y: number; moved: boolean } | null = null;
  /** The user zoomed or panned: a resize keeps their view instead of fitting again. */
  private moved = false;

  constructor(private pick: (row: number) => void) {
    this.controls = h("div", { class: "plot-controls" });
    this.note = h("span", { class: "plot-note", role: "status" });
    this.area = h("div", { class: "plot-area sky-area" });
    this.mark = h("div", { class: "plot-mark", hidden: true });
    this.plot = new PlotCanvas(this.area, () => this.fitIfNeeded());
    this.plot.canvas.classList.add("sky-canvas");
    this.plot.canvas.setAttribute("aria-label", "sky plot of the result's positions");
    this.area.append(this.mark, this.note, this.tip.element);
    this.element = h("div", { class: "plot sky", hidden: true }, this.controls, this.area);
    this.listen();
  }

  /** A new result (null: none); drawn when the plot is shown. */
  setData(table: ResultTable | null): void {
    this.table = table;
    this.view = null;
    [this.ra, this.dec] = table ? positionColumns(table) : [-1, -1];
    this.colour = -1;
    this.rows = new Uint32Array(0);
    this.buildControls();
    if (this.visible) this.redraw(true);
  }

  /** The plot became visible (its tab): draw it, and measure how long that took. */
  show(): void {
    this.visible = true;
    this.plot.resize();
    this.redraw(!this.view);
  }

  hide(): void {
    this.visible = false;
    this.tip.hide();
    this.mark.hidden = true;
  }

  private buildControls(): void {
    const table = this.table;
    if (!table) { replace(this.controls); return; }
    const numeric = numericColumns(table);
    const ra = columnSelect("RA column", table, numeric, this.ra);
    const dec = columnSelect("Dec column", table, numeric, this.dec);
    const colour = columnSelect("colour by", table, numeric, -1, "one colour");
    const projection = h("select", { "aria-label": "projection" },
      h("option", { value: "hammer", selected: this.projection === "hammer" }, "Hammer-Aitoff"),
      h("option", { value: "mollweide", selected: this.projection === "mollweide" }, "Mollweide"));
    ra.addEventListener("change", () => { this.ra = Number(ra.value); this.redraw(true); });
    dec.addEventListener("change", () => { this.dec = Number(dec.value); this.redraw(true); });
    colour.addEventListener("change", () => { this.colour = Number(colour.value); this.redraw(false); });
    projection.addEventListener("change", () => {
      this.projection = projection.value as ProjectionName;
      this.reproject();
      this.view = null;
      this.redraw(false);
    });
    const button = (label: string, title: string, action: () => void) =>
      h("button", { type: "button", class: "small", title, onclick: action }, label);
    replace(this.controls,
      h("label", null, "RA ", ra), h("label", null, "Dec ", dec), h("label", null, "colour ", colour), projection,
      h("span", { class: "plot-buttons" },
        button("−", "zoom out", () => this.zoom(1 / 1.6)), button("+", "zoom in", () => this.zoom(1.6)),
        button("Fit", "fit the view to the data", () => { this.recentre(false); this.fit(); this.draw(); }),
        button("All sky", "show the whole sky", () => { this.recentre(true); this.fit(); this.draw(); })));
    if (numeric.length < 2) this.note.textContent = "The result has no RA/Dec columns to plot.";
  }

  /** Pick the rows (a sample of big results), centre the projection and project them. */
  private prepare(): boolean {
    const table = this.table;
    if (!table || this.ra < 0 || this.dec < 0) {
      this.rows = new Uint32Array(0);
      this.missing = 0;
      return false;
    }
    const ra = columnData(table, this.ra);
    const dec = columnData(table, this.dec);
    let valid = 0;
    for (let i = 0; i < table.length; i++) if (Number.isFinite(ra[i]) && Number.isFinite(dec[i])) valid++;
    this.missing = table.length - valid;
    const usable = new Uint32Array(valid);
    for (let i = 0, k = 0; i < table.length; i++) if (Number.isFinite(ra[i]) && Number.isFinite(dec[i])) usable[k++] = i;
    const chosen = sampleRows(valid, MAX_POINTS);
    this.rows = chosen.length === valid ? usable : chosen.map((k) => usable[k]);
    this.recentre(false);
    return true;
  }

  /** Centre on the data's mean direction (or RA 0, Dec 0 for data spread over the sky). */
  private recentre(allSky: boolean): void {
    const table = this.table;
    let ra0 = 0;
    let dec0 = 0;
    if (!allSky && table && this.rows.length) {
      const ra = columnData(table, this.ra);
      const dec = columnData(table, this.dec);
      let x = 0, y = 0, z = 0;
      for (let k = 0; k < this.rows.length; k++) {
        const i = this.rows[k];
        const a = ra[i] * DEG, d = dec[i] * DEG;
        x += Math.cos(d) * Math.cos(a); y += Math.cos(d) * Math.sin(a); z += Math.sin(d);
      }
      const r = Math.hypot(x, y, z) / this.rows.length;
      if (r > 0.7) {
        ra0 = (Math.atan2(y, x) / DEG + 360) % 360;
        dec0 = Math.atan2(z, Math.hypot(x, y)) / DEG;
      }
    }
    this.rotation = new Rotation(ra0, dec0);
    this.reproject();
  }

  private reproject(): void {
    const table = this.table;
    const n = this.rows.length;
    this.ux = new Float32Array(n);
    this.uy = new Float32Array(n);
    if (!table || !n) return;
    projectAll(this.projection, this.rotation, columnData(table, this.ra), columnData(table, this.dec),
      this.rows, this.ux, this.uy);
  }

  private allSky(): View {
    const [ex, ey] = extent(this.projection);
    const scale = 0.94 * Math.min(this.plot.width / (2 * ex), this.plot.height / (2 * ey));
    return { scale, cx: this.plot.width / 2, cy: this.plot.height / 2 };
  }

  /** Fit the view to the plotted points (the whole sky if they spread over it). */
  private fit(): void {
    this.moved = false;
    const all = this.allSky();
    if (!this.rows.length || (this.rotation.ra0 === 0 && this.rotation.dec0 === 0)) {
      this.view = all;
      return;
    }
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let k = 0; k < this.ux.length; k++) {
      const x = this.ux[k], y = this.uy[k];
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    const w = Math.max(x1 - x0, 1e-4), hgt = Math.max(y1 - y0, 1e-4);
    const scale = Math.max(all.scale, 0.85 * Math.min(this.plot.width / w, this.plot.height / hgt));
    this.view = { scale, cx: this.plot.width / 2 - scale * (x0 + x1) / 2, cy: this.plot.height / 2 + scale * (y0 + y1) / 2 };
  }

  private fitIfNeeded(): void {
    if (!this.visible) return;
    if (!this.view || !this.moved) this.fit();
    this.draw();
  }

  /** Draw again; ``fresh``: choose the rows and the view anew. Measured for the tests. */
  private redraw(fresh: boolean): void {
    if (!this.visible) return;
    performance.mark("sky-plot");
    if (fresh || !this.rows.length) {
      this.prepare();
      this.view = null;
    }
    if (!this.view) this.fit();
    this.draw();
    requestAnimationFrame(() => setTimeout(() => performance.measure("sky-plot", "sky-plot"), 0));
  }

  private zoom(factor: number, px = this.plot.width / 2, py = this.plot.height / 2): void {
    const v = this.view;
    if (!v) return;
    const min = this.allSky().scale / 2;
    const scale = Math.min(min * 2e7, Math.max(min, v.scale * factor));
    const f = scale / v.scale;
    this.view = { scale, cx: px - (px - v.cx) * f, cy: py - (py - v.cy) * f };
    this.moved = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  private toScreen(x: number, y: number): [number, number] {
    const v = this.view as View;
    return [v.cx + v.scale * x, v.cy - v.scale * y];
  }

  // --- drawing --------------------------------------------------------------------
  private draw(): void {
    const table = this.table;
    if (!this.visible || !this.view || !this.plot.width) return;
    const ctx = this.plot.context();
    const W = this.plot.width, H = this.plot.height;
    ctx.fillStyle = OUTSIDE;
    ctx.fillRect(0, 0, W, H);
    const outline = this.outline();
    ctx.save();
    ctx.fillStyle = SKY;
    ctx.fill(outline);
    ctx.clip(outline);
    const labels = this.grid(ctx);
    this.points(ctx);
    ctx.restore();
    ctx.strokeStyle = "#7d8da3";
    ctx.lineWidth = 1;
    ctx.stroke(outline);
    this.labels(ctx, labels);
    if (table && this.colour >= 0) this.legend(ctx);
    const v = this.view;
    this.plot.canvas.dataset.view = JSON.stringify({ projection: this.projection, ra0: this.rotation.ra0,
      dec0: this.rotation.dec0, scale: v.scale, cx: v.cx, cy: v.cy });
    this.plot.canvas.dataset.points = String(this.rows.length);
    if (table) this.note.textContent = this.ra < 0 || this.dec < 0
      ? "Choose the RA and Dec columns."
      : sampleNote(this.rows.length, table.length, this.missing);
    this.mark.hidden = true;
  }

  private outline(): Path2D {
    const path = new Path2D();
    const xy = new Float64Array(2);
    const steps = 90;
    for (let i = 0; i <= 2 * steps; i++) {
      const side = i <= steps ? 1 : -1;
      const t = i <= steps ? i / steps : (i - steps) / steps;
      const lat = side > 0 ? -Math.PI / 2 + t * Math.PI : Math.PI / 2 - t * Math.PI;
      project(this.projection, side * (Math.PI - 1e-9), lat, xy);
      const [X, Y] = this.toScreen(xy[0], xy[1]);
      if (i === 0) path.moveTo(X, Y); else path.lineTo(X, Y);
    }
    path.closePath();
    return path;
  }

  /** The coordinate grid; returns where its labels go. */
  private grid(ctx: CanvasRenderingContext2D): Array<{ text: string; x: number; y: number; align: CanvasTextAlign }> {
    const v = this.view as View;
    const W = this.plot.width, H = this.plot.height;
    const wide = W / v.scale > 1.2;  // more than ~70 degrees across: the whole sky
    const target = (110 / v.scale) / DEG;
    const step = wide ? 30 : STEPS.find((s) => s >= target) || 30;
    let ra0 = 0, ra1 = 360, dec0 = -90, dec1 = 90;
    if (!wide) [ra0, ra1, dec0, dec1] = this.visibleRange();
    const labels: Array<{ text: string; x: number; y: number; align: CanvasTextAlign }> = [];
    const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    const fmt = (d: number) => `${(((d % 360) + 360) % 360).toFixed(digits)}°`;
    const rot = new Float64Array(2), xy = new Float64Array(2);
    const [ex] = extent(this.projection);
    const line = (pointAt: (t: number) => [number, number], samples: number) => {
      const pts: Array<[number, number]> = [];
      ctx.beginPath();
      let prev: [number, number] | null = null;
      for (let i = 0; i <= samples; i++) {
        const [a, d] = pointAt(i / samples);
        this.rotation.rotate(a, d, rot);
        project(this.projection, rot[0], rot[1], xy);
        const p = this.toScreen(xy[0], xy[1]);
        // A jump across the projection's edge breaks the line.
        if (prev && Math.abs(p[0] - prev[0]) < v.scale * ex) ctx.lineTo(p[0], p[1]); else ctx.moveTo(p[0], p[1]);
        prev = p;
        pts.push(p);
      }
      ctx.stroke();
      return pts;
    };
    ctx.strokeStyle = GRID;
    ctx.lineWidth = 1;
    const inside = (p: [number, number]) => p[0] >= 0 && p[0] <= W && p[1] >= 0 && p[1] <= H;
    const first = Math.ceil(ra0 / step) * step;
    for (let a = first; a <= ra1 + 1e-9 && a < first + 360 - 1e-9; a += step) {
      const pts = line((t) => [a, dec0 + t * (dec1 - dec0)], wide ? 90 : 120);
      if (wide) {
        this.rotation.rotate(a, 0, rot);
        project(this.projection, rot[0], rot[1], xy);
        const [x, y] = this.toScreen(xy[0], xy[1]);
        labels.push({ text: fmt(a), x, y: y + 13, align: "center" });
      } else {
        const shown = pts.filter(inside);
        if (shown.length) {
          const low = shown.reduce((b, p) => (p[1] > b[1] ? p : b));
          labels.push({ text: fmt(a), x: low[0], y: Math.min(low[1], H - 5), align: "center" });
        }
      }
    }
    for (let d = Math.ceil(dec0 / step) * step; d <= dec1 + 1e-9; d += step) {
      if (Math.abs(d) >= 90) continue;
      const pts = line((t) => [ra0 + t * (ra1 - ra0), d], wide ? 180 : 120);
      const shown = pts.filter(inside);
      if (shown.length) {
        const left = shown.reduce((b, p) => (p[0] < b[0] ? p : b));
        labels.push({ text: `${d > 0 ? "+" : ""}${d.toFixed(digits)}°`, x: Math.max(left[0], 4) + 3, y: left[1] - 3, align: "left" });
      }
    }
    return labels;
  }

  /** RA and Dec ranges (degrees) that cover the screen: a grid of screen points (and
   *  a margin around it) taken back to the sky. */
  private visibleRange(): [number, number, number, number] {
    const v = this.view as View;
    const W = this.plot.width, H = this.plot.height;
    const rot = new Float64Array(2), sky = new Float64Array(2);
    let dmin = 90, dmax = -90, amin = 360, amax = -360, any = false;
    for (let i = 0; i <= 10; i++) {
      for (let j = 0; j <= 10; j++) {
        const X = -0.25 * W + (i / 10) * 1.5 * W;
        const Y = -0.25 * H + (j / 10) * 1.5 * H;
        if (!unproject(this.projection, (X - v.cx) / v.scale, (v.cy - Y) / v.scale, rot)) continue;
        any = true;
        this.rotation.unrotate(rot[0], rot[1], sky);
        const a = ((sky[0] - this.rotation.ra0 + 540) % 360) - 180;
        amin = Math.min(amin, a); amax = Math.max(amax, a);
        dmin = Math.min(dmin, sky[1]); dmax = Math.max(dmax, sky[1]);
      }
    }
    if (!any) return [0, 0, 0, 0];
    if (dmax > 89 || dmin < -89 || amax - amin > 300) return [0, 360, Math.max(-90, dmin), Math.min(90, dmax)];
    return [this.rotation.ra0 + amin, this.rotation.ra0 + amax, dmin, dmax];
  }

  private labels(ctx: CanvasRenderingContext2D, labels: Array<{ text: string; x: number; y: number; align: CanvasTextAlign }>): void {
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    ctx.fillStyle = LABEL;
    ctx.strokeStyle = "rgba(12, 26, 51, 0.9)";
    ctx.lineWidth = 3;
    ctx.lineJoin = "round";
    const placed: Array<[number, number, number]> = [];
    for (const l of labels) {
      const w = ctx.measureText(l.text).width;
      const x0 = l.align === "center" ? l.x - w / 2 : l.x;
      if (x0 < 2 || x0 + w > this.plot.width - 2) continue;  // (cut by the edge)
      if (placed.some(([x, y, pw]) => Math.abs(y - l.y) < 12 && x0 < x + pw + 6 && x < x0 + w + 6)) continue;
      placed.push([x0, l.y, w]);
      ctx.textAlign = l.align;
      ctx.strokeText(l.text, l.x, l.y);  // a halo: readable over dense points
      ctx.fillText(l.text, l.x, l.y);
    }
  }

  private points(ctx: CanvasRenderingContext2D): void {
    const n = this.rows.length;
    const dpr = this.plot.dpr;
    const v = this.view as View;
    const size = Math.max(1, Math.round(pointSize(n) * dpr));
    this.sx = new Float32Array(n);
    this.sy = new Float32Array(n);
    this.layer.begin(this.plot.canvas.width, this.plot.canvas.height);
    let colours: Float64Array | null = null;
    let lo = 0, hi = 1;
    if (this.colour >= 0 && this.table) {
      colours = columnData(this.table, this.colour);
      [lo, hi] = robustRange(colours, this.rows);
    }
    const ramp = new Uint32Array(256);
    for (let i = 0; i < 256; i++) { const [r, g, b] = viridis(rampAt(i / 255, this.reversed())); ramp[i] = rgba(r, g, b); }
    for (let k = 0; k < n; k++) {
      const X = v.cx + v.scale * this.ux[k];
      const Y = v.cy - v.scale * this.uy[k];
      this.sx[k] = X;
      this.sy[k] = Y;
      let c = POINT;
      if (colours) {
        const value = colours[this.rows[k]];
        c = Number.isFinite(value) ? ramp[Math.max(0, Math.min(255, Math.round(255 * (value - lo) / (hi - lo))))] : rgba(140, 140, 140);
      }
      this.layer.dot(X * dpr, Y * dpr, size, c);
    }
    this.layer.finish(ctx);
    this.index.build(this.sx, this.sy, this.plot.width, this.plot.height);
  }

  private legend(ctx: CanvasRenderingContext2D): void {
    const table = this.table as ResultTable;
    const [lo, hi] = robustRange(columnData(table, this.colour), this.rows);
    const W = this.plot.width, H = this.plot.height;
    const x = W - 170, y = H - 34;
    const gradient = ctx.createLinearGradient(x, 0, x + 150, 0);
    for (let i = 0; i <= 8; i++) { const [r, g, b] = viridis(rampAt(i / 8, this.reversed())); gradient.addColorStop(i / 8, `rgb(${r},${g},${b})`); }
    ctx.fillStyle = "rgba(12, 26, 51, 0.8)";
    ctx.fillRect(x - 8, y - 20, 166, 48);
    ctx.fillStyle = gradient;
    ctx.fillRect(x, y, 150, 8);
    ctx.fillStyle = "#dfe8f5";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    ctx.textAlign = "left";
    const c = table.columns[this.colour];
    ctx.fillText(c.unit ? `${c.name} [${c.unit}]` : c.name, x, y - 4, 150);
    ctx.textBaseline = "top";
    ctx.fillText(String(Number(lo.toPrecision(4))), x, y + 11);
    ctx.textAlign = "right";
    ctx.fillText(String(Number(hi.toPrecision(4))), x + 150, y + 11);
  }

  /** Magnitudes run the other way: bright (small) values get the bright colours. */
  private reversed(): boolean {
    const c = this.table?.columns[this.colour];
    return !!c && ((c.unit || "").toLowerCase() === "mag" || (c.ucd || "").toLowerCase().startsWith("phot.mag"));
  }

  // --- the mouse ------------------------------------------------------------------
  private listen(): void {
    const canvas = this.plot.canvas;
    const at = (e: MouseEvent): [number, number] => {
      const r = canvas.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      const [x, y] = at(e);
      this.zoom(Math.pow(1.0015, -e.deltaY), x, y);
    }, { passive: false });
    canvas.addEventListener("dblclick", (e) => { const [x, y] = at(e); this.zoom(2, x, y); });
    canvas.addEventListener("pointerdown", (e) => {
      const [x, y] = at(e);
      this.drag = { x, y, moved: false };
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointerup", (e) => {
      const drag = this.drag;
      this.drag = null;
      canvas.releasePointerCapture(e.pointerId);
      if (drag && !drag.moved) {
        const [x, y] = at(e);
        const k = this.index.nearest(x, y);
        if (k >= 0) this.pick(this.rows[k]);
      }
    });
    canvas.addEventListener("pointermove", (e) => {
      const [x, y] = at(e);
      const drag = this.drag;
      if (drag && this.view) {
        if (Math.abs(x - drag.x) + Math.abs(y - drag.y) > 2) drag.moved = true;
        if (drag.moved) {
          this.view = { ...this.view, cx: this.view.cx + x - drag.x, cy: this.view.cy + y - drag.y };
          this.moved = true;
          drag.x = x; drag.y = y;
          this.tip.hide();
          this.schedule();
          return;
        }
      }
      this.hover(x, y);
    });
    canvas.addEventListener("pointerleave", () => { this.tip.hide(); this.mark.hidden = true; });
  }

  private hover(x: number, y: number): void {
    const table = this.table;
    const k = table ? this.index.nearest(x, y) : -1;
    if (!table || k < 0) {
      this.tip.hide();
      this.mark.hidden = true;
      this.plot.canvas.style.cursor = "grab";
      return;
    }
    const row = this.rows[k];
    this.plot.canvas.style.cursor = "pointer";
    this.mark.hidden = false;
    this.mark.style.transform = `translate(${this.sx[k] - 7}px, ${this.sy[k] - 7}px)`;
    this.tip.show(table, row, this.sx[k], this.sy[k], [this.ra, this.dec, ...(this.colour >= 0 ? [this.colour] : [])], this.area);
    this.tip.element.dataset.row = String(row);
  }
}
