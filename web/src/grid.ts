// The results grid: virtual scrolling (only the rows in view, plus a margin, exist in
// the DOM, and they are reused), sortable columns, units in the headers, paging.

import { formatCount, h, replace } from "./dom";
import { type ColumnMeta, type ColumnValues, type ResultTable, valueAt } from "./table";

const ROW_HEIGHT = 26;
const OVERSCAN = 12;

type SortState = { column: number; descending: boolean } | null;

export function formatValue(value: unknown, column: ColumnMeta): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    const digits = column.datatype === "float" ? 7 : 12;
    return String(Number(value.toPrecision(digits)));
  }
  if (Array.isArray(value)) return value.map((v) => formatValue(v, column)).join(" ");
  return String(value);
}

function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  const numeric = (v: unknown) => typeof v === "number" || typeof v === "bigint";
  if (numeric(a) && numeric(b)) return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A comparison of rows ``a`` and ``b`` by one column's (non-null) values. */
function keysOf(column: ColumnValues): (a: number, b: number) => number {
  if (column.kind === "number") {
    const d = column.data;
    return (a, b) => d[a] - d[b];
  }
  if (column.kind === "bigint") {
    const d = column.data;
    return (a, b) => (d[a] < d[b] ? -1 : d[a] > d[b] ? 1 : 0);
  }
  const d = column.data;
  return (a, b) => compare(d[a], d[b]);
}

export class ResultGrid {
  readonly element: HTMLElement;
  private scroller: HTMLElement;
  private header: HTMLElement;
  private canvas: HTMLElement;
  private status: HTMLElement;
  private empty: HTMLElement;
  private pager: HTMLElement;
  private pool: HTMLElement[] = [];
  private table: ResultTable | null = null;
  private order: Uint32Array = new Uint32Array(0);
  private sort: SortState = null;
  /** The row a plot pointed at (marked), or -1. */
  private picked = -1;
  private first = -1;
  /** The row position each pool slot shows (-1: none). */
  private slots: number[] = [];

  constructor() {
    this.header = h("div", { class: "grid-row grid-head", role: "row" });
    this.canvas = h("div", { class: "grid-canvas", role: "rowgroup" });
    this.scroller = h("div", { class: "grid-scroll", tabindex: 0, role: "grid" }, this.header, this.canvas);
    this.status = h("span", { class: "grid-status" });
    const go = h("input", { type: "number", min: 1, class: "grid-goto", "aria-label": "go to row", placeholder: "row" });
    go.addEventListener("change", () => { this.scrollToRow(Number(go.value) - 1); go.value = ""; });
    const pager = this.pager = h("div", { class: "grid-pager", hidden: true },
      h("button", { type: "button", title: "first rows", onclick: () => this.scrollToRow(0) }, "⇤"),
      h("button", { type: "button", title: "previous page", onclick: () => this.page(-1) }, "▲ page"),
      h("button", { type: "button", title: "next page", onclick: () => this.page(1) }, "▼ page"),
      h("button", { type: "button", title: "last rows", onclick: () => this.scrollToRow(Infinity) }, "⇥"),
      go, this.status);
    this.empty = h("div", { class: "grid-empty" }, "Run a query to see its rows here.");
    this.scroller.hidden = true;
    this.element = h("div", { class: "grid" }, this.empty, this.scroller, pager);
    this.scroller.addEventListener("scroll", () => this.render(), { passive: true });
    new ResizeObserver(() => this.render(true)).observe(this.scroller);
  }

  /** Show a result (null: nothing). */
  setData(table: ResultTable | null): void {
    this.table = table;
    this.picked = -1;
    this.empty.hidden = table !== null;
    this.scroller.hidden = table === null;
    this.pager.hidden = table === null;
    this.sort = null;
    this.order = new Uint32Array(table ? table.length : 0).map((_, i) => i);
    this.pool = [];
    this.slots = [];
    replace(this.canvas);
    this.scroller.scrollTop = 0;
    this.scroller.scrollLeft = 0;
    this.buildHeader();
    this.canvas.style.height = `${this.order.length * ROW_HEIGHT}px`;
    this.render(true);
  }

  private buildHeader(): void {
    replace(this.header);
    const table = this.table;
    if (!table) return;
    const widths = table.columns.map((c, j) => {
      // (+2: room for the sort mark)
      let chars = Math.max(c.name.length + 2, (c.unit || "").length + 2, 4);
      // A sample spread over the whole result: its start may hold only short values.
      const n = table.length;
      const step = Math.max(1, Math.floor(n / 300));
      for (let i = 0; i < n; i += step) {
        chars = Math.max(chars, formatValue(valueAt(table.values[j], i), c).length);
      }
      return Math.min(Math.max(chars * 8 + 22, 64), 420);
    });
    const index = String(table.length).length * 8 + 20;
    const template = [`${Math.max(index, 40)}px`, ...widths.map((w) => `${w}px`)].join(" ");
    this.scroller.style.setProperty("--grid-columns", template);
    this.header.appendChild(h("div", { class: "grid-cell grid-index", role: "columnheader" }, "#"));
    table.columns.forEach((c, j) => {
      const mark = this.sort && this.sort.column === j ? (this.sort.descending ? " ▼" : " ▲") : "";
      const tip = [c.description, c.ucd ? `UCD: ${c.ucd}` : "", `type: ${c.datatype}${c.arraysize ? `[${c.arraysize}]` : ""}`]
        .filter(Boolean).join("\n");
      const cell = h("button", { type: "button", class: "grid-cell grid-col", role: "columnheader", title: tip,
        "aria-sort": this.sort && this.sort.column === j ? (this.sort.descending ? "descending" : "ascending") : "none",
        onclick: () => this.sortBy(j) },
      h("span", { class: "grid-name" }, c.name + mark),
      c.unit ? h("span", { class: "grid-unit" }, c.unit) : null);
      this.header.appendChild(cell);
    });
  }

  /** Sort by column j: ascending, then descending, then the original order. */
  sortBy(j: number): void {
    const table = this.table;
    if (!table) return;
    if (!this.sort || this.sort.column !== j) this.sort = { column: j, descending: false };
    else if (!this.sort.descending) this.sort = { column: j, descending: true };
    else this.sort = null;
    const order = new Uint32Array(table.length).map((_, i) => i);
    if (this.sort) {
      const sign = this.sort.descending ? -1 : 1;
      const column = table.values[j];
      const isNull = (i: number) => {
        const v = valueAt(column, i);
        return v === null || v === undefined || (typeof v === "number" && Number.isNaN(v));
      };
      // Stable, nulls last either way; typed arrays compared directly.
      const idx = Array.from(order);
      const keyed = keysOf(column);
      idx.sort((a, b) => {
        const nullA = isNull(a);
        const nullB = isNull(b);
        if (nullA || nullB) return nullA === nullB ? a - b : nullA ? 1 : -1;
        return sign * keyed(a, b) || a - b;
      });
      order.set(idx);
    }
    this.order = order;
    this.buildHeader();
    this.render(true);
  }

  private page(direction: number): void {
    const rows = Math.max(1, Math.floor(this.scroller.clientHeight / ROW_HEIGHT) - 2);
    this.scrollToRow(Math.max(0, this.visibleStart() + direction * rows));
  }

  private visibleStart(): number {
    return Math.floor(this.scroller.scrollTop / ROW_HEIGHT);
  }

  /** Scroll to the result's row ``index`` (in the current order) and mark it. */
  showRow(index: number): void {
    this.picked = index;
    const position = this.order.indexOf(index);
    if (position < 0) return;
    const rows = Math.floor(this.scroller.clientHeight / ROW_HEIGHT);
    this.scroller.scrollTop = Math.max(0, position - Math.floor(rows / 2) + 1) * ROW_HEIGHT;
    this.render(true);
  }

  scrollToRow(row: number): void {
    if (!Number.isFinite(row)) row = this.order.length;
    this.scroller.scrollTop = Math.max(0, row) * ROW_HEIGHT;
    this.render();
  }

  /** Put the rows in view into the DOM; ``force`` redraws even if the range is the same.
   *  Row ``p`` lives in slot ``p % pool.length``: a small scroll rewrites only the rows
   *  that came into view. */
  render(force = false): void {
    const table = this.table;
    const total = this.order.length;
    if (!table) {
      this.status.textContent = "";
      return;
    }
    const viewRows = Math.ceil(this.scroller.clientHeight / ROW_HEIGHT) + 1;
    const size = viewRows + 2 * OVERSCAN;
    if (size !== this.pool.length) {
      replace(this.canvas);
      this.pool = [];
      this.slots = [];
      for (let k = 0; k < size; k++) {
        const row = h("div", { class: "grid-row", role: "row", hidden: true }, h("div", { class: "grid-cell grid-index" }));
        for (let j = 0; j < table.columns.length; j++) row.appendChild(h("div", { class: "grid-cell" }));
        this.canvas.appendChild(row);
        this.pool.push(row);
        this.slots.push(-1);
      }
      force = true;
    }
    const start = this.visibleStart();
    const first = Math.max(0, Math.min(start - OVERSCAN, total - size));
    const end = Math.min(total, first + size);
    if (force || first !== this.first) {
      this.first = first;
      for (let p = first; p < end; p++) {
        const k = p % size;
        if (!force && this.slots[k] === p) continue;
        this.slots[k] = p;
        this.fill(this.pool[k], p, table);
      }
      // Slots no row of the range maps to (a result shorter than the pool).
      for (let k = 0; k < size; k++) {
        const p = this.slots[k];
        if (p < first || p >= end) {
          this.slots[k] = -1;
          this.pool[k].hidden = true;
        }
      }
    }
    const last = Math.min(total, start + viewRows - 1);
    this.status.textContent = total === 0 ? "no rows"
      : `rows ${formatCount(Math.min(start + 1, total))}–${formatCount(last)} of ${formatCount(total)}`;
  }

  private fill(row: HTMLElement, position: number, table: ResultTable): void {
    const index = this.order[position];
    row.hidden = false;
    row.classList.toggle("picked", index === this.picked);
    row.style.transform = `translateY(${position * ROW_HEIGHT}px)`;
    const cells = row.children;
    cells[0].textContent = String(index + 1);
    for (let j = 0; j < table.columns.length; j++) {
      cells[j + 1].textContent = formatValue(valueAt(table.values[j], index), table.columns[j]);
    }
  }
}
