// A result held column by column: numbers in typed arrays (Float64Array, or
// BigInt64Array for 64-bit integers beyond 2^53), everything else as plain values.
// Built in a worker from the service's JSON result, handed over without copying.

export interface ColumnMeta {
  name: string; datatype: string; arraysize: string | null; xtype: string | null;
  unit: string | null; ucd: string | null; description: string | null;
}

export type ColumnValues =
  | { kind: "number"; data: Float64Array; nulls: Uint8Array | null }
  | { kind: "bigint"; data: BigInt64Array; nulls: Uint8Array | null }
  | { kind: "any"; data: unknown[] };

export interface ResultTable {
  columns: ColumnMeta[]; values: ColumnValues[]; length: number; overflow: boolean;
  infos: Record<string, string>;
}

const NUMERIC = new Set(["double", "float", "int", "short", "long", "unsignedByte"]);

export function valueAt(column: ColumnValues, i: number): unknown {
  if (column.kind === "any") return column.data[i];
  if (column.nulls && column.nulls[i]) return null;
  return column.data[i];
}

/** JSON.parse keeping integers beyond 2^53 exact (Gaia's source_id has 19 digits): they
 *  become BigInt, through the reviver's access to the source text where the browser
 *  offers it (elsewhere they are rounded, as JSON.parse does). */
export function parseExact(text: string): any {
  // The reviver makes parsing ~4x slower: only when some number may need it.
  if (!/\d{16}/.test(text)) return JSON.parse(text);
  return JSON.parse(text, (_key: string, value: unknown, context?: { source?: string }) => {
    if (typeof value === "number" && !Number.isSafeInteger(value) && Number.isInteger(value)
        && context?.source && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
}

/** Columns from the rows of a JSON result document (one pass over the rows). */
export function toColumns(columns: ColumnMeta[], rows: unknown[][]): ColumnValues[] {
  const n = rows.length;
  const m = columns.length;
  const numeric = columns.map((c) => NUMERIC.has(c.datatype) && (!c.arraysize || c.arraysize === "1"));
  const nums: Array<Float64Array | null> = numeric.map((yes) => (yes ? new Float64Array(n) : null));
  const bigs: Array<BigInt64Array | null> = new Array(m).fill(null);
  const anys: Array<unknown[] | null> = numeric.map((yes) => (yes ? null : new Array(n)));
  const nulls: Array<Uint8Array | null> = new Array(m).fill(null);
  for (let i = 0; i < n; i++) {
    const row = rows[i];
    for (let j = 0; j < m; j++) {
      const v = row[j];
      const any = anys[j];
      if (any) {
        any[i] = v;
        continue;
      }
      if (v === null || v === undefined) {
        (nulls[j] ??= new Uint8Array(n))[i] = 1;
        const num = nums[j];
        if (num) num[i] = NaN;
      } else if (typeof v === "number" && nums[j]) {
        (nums[j] as Float64Array)[i] = v;
      } else if ((typeof v === "bigint" || typeof v === "number") && (nums[j] || bigs[j])) {
        // A 64-bit integer beyond 2^53 (see parseExact): the column becomes BigInt64Array.
        let big = bigs[j];
        if (!big) {
          big = bigs[j] = new BigInt64Array(n);
          const num = nums[j] as Float64Array;
          const mask = nulls[j];
          for (let k = 0; k < i; k++) if (!(mask && mask[k])) big[k] = BigInt(num[k]);
          nums[j] = null;
        }
        big[i] = typeof v === "bigint" ? v : BigInt(v);
      } else {
        // Not a number after all: keep the column's values as they are.
        const back = new Array(n);
        for (let k = 0; k < i; k++) back[k] = rows[k][j];
        back[i] = v;
        anys[j] = back;
        nums[j] = null;
        bigs[j] = null;
      }
    }
  }
  return columns.map((_, j): ColumnValues => {
    const any = anys[j];
    if (any) return { kind: "any", data: any };
    const big = bigs[j];
    if (big) return { kind: "bigint", data: big, nulls: nulls[j] };
    return { kind: "number", data: nums[j] as Float64Array, nulls: nulls[j] };
  });
}

/** The buffers a worker hands over instead of copying. */
export function transferables(values: ColumnValues[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const v of values) {
    if (v.kind === "any") continue;
    out.push(v.data.buffer as ArrayBuffer);
    if (v.nulls) out.push(v.nulls.buffer as ArrayBuffer);
  }
  return out;
}
