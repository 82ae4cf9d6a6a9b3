// What the service offers, as far as the editor needs it: databases, tables (with row
// counts) and, loaded when a query names a table, its columns; the service's functions.

import { call, check, getJSON } from "./api";
import { ADQL_FUNCTIONS } from "./adql";

export interface ColumnInfo {
  name: string; adql_name: string; datatype: string; unit: string | null; ucd: string | null;
  description: string | null;
}

export interface TableInfo {
  name: string; database: string; qualified_name: string; description: string | null;
  nrows: number | null; columns?: ColumnInfo[];
}

export interface DatabaseInfo { name: string; description: string | null; kind: string; tables: number }

export interface FunctionInfo { name: string; signature: string; description: string }

export class Catalog {
  databases: DatabaseInfo[] = [];
  /** Tables by lower-case qualified name (``mydb.x`` is filed under ``user_<name>.x``). */
  tables = new Map<string, TableInfo>();
  functions: FunctionInfo[] = ADQL_FUNCTIONS.map(([name, signature]) => ({ name, signature, description: "" }));
  /** The logged-in user's schema (``user_<name>``), reachable in ADQL as ``mydb``. */
  userSchema: string | null = null;
  private pending = new Map<string, Promise<TableInfo | null>>();
  private listeners: Array<() => void> = [];
  private generation = 0;

  onChange(listener: () => void): void { this.listeners.push(listener); }

  private changed(): void { for (const l of this.listeners) l(); }

  /** (Re)load databases and tables, e.g. after a login. */
  async load(): Promise<void> {
    const generation = ++this.generation;
    const dbs = await getJSON<DatabaseInfo[]>("api/databases");
    const lists = await Promise.all(dbs.map((d) =>
      getJSON<TableInfo[]>(`api/databases/${encodeURIComponent(d.name)}/tables`).catch(() => [])));
    if (generation !== this.generation) return;
    this.databases = dbs;
    this.userSchema = dbs.find((d) => d.kind === "user")?.name ?? null;
    this.tables = new Map();
    this.pending = new Map();
    lists.forEach((tables) => {
      for (const t of tables) this.tables.set(t.qualified_name.toLowerCase(), t);
    });
    this.changed();
  }

  /** Functions the service declares in its capabilities (TAPRegExt UDFs). */
  async loadFunctions(): Promise<void> {
    const response = await check(await call("tap/capabilities"));
    const doc = new DOMParser().parseFromString(await response.text(), "application/xml");
    const known = new Set(this.functions.map((f) => f.name.toUpperCase()));
    for (const feature of Array.from(doc.getElementsByTagNameNS("*", "feature"))) {
      const form = feature.getElementsByTagNameNS("*", "form")[0]?.textContent?.trim() || "";
      const match = /^([A-Za-z_][\w]*)\s*\(/.exec(form);
      if (!match || known.has(match[1].toUpperCase())) continue;
      known.add(match[1].toUpperCase());
      const description = feature.getElementsByTagNameNS("*", "description")[0]?.textContent?.trim() || "";
      this.functions.push({ name: match[1], signature: form, description });
    }
    this.changed();
  }

  /** The table a query names (``mydb.t``, ``user_x.t`` or ``db.t``). */
  table(qualified: string): TableInfo | undefined {
    return this.tables.get(this.canonical(qualified));
  }

  canonical(qualified: string): string {
    const name = qualified.toLowerCase();
    if (this.userSchema && name.startsWith("mydb.")) return `${this.userSchema}.${name.slice(5)}`;
    return name;
  }

  /** Fetch the columns of the named tables that are not loaded yet. */
  async ensureColumns(qualified: string[]): Promise<void> {
    const loads = qualified.map((q) => this.columns(q));
    const results = await Promise.all(loads);
    if (results.some((r) => r !== null)) this.changed();
  }

  private columns(qualified: string): Promise<TableInfo | null> {
    const key = this.canonical(qualified);
    const table = this.tables.get(key);
    if (!table || table.columns) return Promise.resolve(null);
    let p = this.pending.get(key);
    if (!p) {
      const path = `api/tables/${encodeURIComponent(table.database)}/${encodeURIComponent(table.name)}`;
      p = getJSON<TableInfo>(path).then((full) => {
        table.columns = full.columns || [];
        return table;
      }).catch(() => null);
      this.pending.set(key, p);
    }
    return p;
  }
}
