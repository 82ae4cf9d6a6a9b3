// What the service offers: databases, their tables (listed per database, when first
// needed), one table's columns (loaded per table), searches, and the service's
// functions. Nothing is loaded for all tables at once: a service may hold 10,000.

import { call, check, currentUser, getJSON } from "./api";
import { ADQL_FUNCTIONS } from "./adql";

export interface ColumnInfo {
  name: string; adql_name: string; datatype: string; arraysize?: string | null;
  unit: string | null; ucd: string | null; description: string | null;
}

export interface TableInfo {
  name: string; database: string; qualified_name: string; description: string | null;
  nrows: number | null; ra_column?: string | null; dec_column?: string | null;
  ncolumns?: number; matched_columns?: string[]; columns?: ColumnInfo[];
}

export interface DatabaseInfo { name: string; description: string | null; kind: string; tables: number }

export interface FunctionInfo { name: string; signature: string; description: string }

/** Tables of one database fetched per request (a page of the browser's list). */
export const TABLE_PAGE = 1000;
/** A service with at most this many tables in all has every list loaded at start. */
const PRELOAD_TABLES = 2000;

interface Listing { tables: TableInfo[]; complete: boolean; loading: Promise<void> | null }

export class Catalog {
  databases: DatabaseInfo[] = [];
  /** Every table met so far, by lower-case qualified name (``mydb.x`` is ``user_<name>.x``). */
  tables = new Map<string, TableInfo>();
  functions: FunctionInfo[] = ADQL_FUNCTIONS.map(([name, signature]) => ({ name, signature, description: "" }));
  /** The logged-in user's schema (``user_<name>``), reachable in ADQL as ``mydb``. */
  userSchema: string | null = null;
  private listings = new Map<string, Listing>();
  private described = new Map<string, Promise<TableInfo | null>>();
  private listeners: Array<() => void> = [];
  private generation = 0;

  onChange(listener: () => void): void { this.listeners.push(listener); }

  private changed(): void { for (const l of this.listeners) l(); }

  /** (Re)load the databases, e.g. after a login; a small service's table lists too. */
  async load(): Promise<void> {
    const generation = ++this.generation;
    const dbs = await getJSON<DatabaseInfo[]>("api/databases");
    if (generation !== this.generation) return;
    this.databases = dbs;
    // (Other users' schemas with tables shared with this one are of kind "user" too.)
    const user = currentUser();
    this.userSchema = user ? `user_${user.toLowerCase()}` : null;
    this.tables = new Map();
    this.listings = new Map();
    this.described = new Map();
    this.changed();
    if (dbs.reduce((n, d) => n + d.tables, 0) <= PRELOAD_TABLES) {
      await Promise.all(dbs.map((d) => this.ensureTables(d.name).catch(() => undefined)));
    }
  }

  database(name: string): DatabaseInfo | undefined {
    const key = this.canonicalSchema(name);
    return this.databases.find((d) => d.name === key);
  }

  /** The tables of a database loaded so far, and whether that is all of them. */
  listed(database: string): { tables: TableInfo[]; complete: boolean } {
    const l = this.listings.get(this.canonicalSchema(database));
    return l ? { tables: l.tables, complete: l.complete } : { tables: [], complete: false };
  }

  /** Load the next page of a database's tables (the first, if none is loaded). */
  async moreTables(database: string): Promise<void> {
    const db = this.canonicalSchema(database);
    let l = this.listings.get(db);
    if (!l) this.listings.set(db, l = { tables: [], complete: false, loading: null });
    if (l.complete) return;
    if (l.loading) return l.loading;
    const listing = l;
    const generation = this.generation;
    listing.loading = getJSON<TableInfo[]>(
      `api/databases/${encodeURIComponent(db)}/tables?offset=${listing.tables.length}&limit=${TABLE_PAGE}`,
    ).then((page) => {
      if (generation !== this.generation) return;
      for (const t of page) listing.tables.push(this.remember(t));
      listing.complete = page.length < TABLE_PAGE;
      this.changed();
    }).finally(() => { listing.loading = null; });
    return listing.loading;
  }

  /** Load every table of a database (for completion). */
  async ensureTables(database: string): Promise<void> {
    const db = this.canonicalSchema(database);
    if (!this.databases.some((d) => d.name === db)) return;
    while (!this.listed(db).complete) await this.moreTables(db);
  }

  /** Tables (and tables with columns) whose name or description holds ``text``. */
  async search(text: string, limit = 200): Promise<TableInfo[]> {
    const found = await getJSON<TableInfo[]>(`api/tables?q=${encodeURIComponent(text)}&limit=${limit}`);
    return found.map((t) => {
      const known = this.remember(t);
      return { ...known, matched_columns: t.matched_columns };
    });
  }

  private remember(t: TableInfo): TableInfo {
    const key = t.qualified_name.toLowerCase();
    const known = this.tables.get(key);
    if (known) return known;
    this.tables.set(key, t);
    return t;
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

  /** The table a query names (``mydb.t``, ``user_x.t`` or ``db.t``), if met so far. */
  table(qualified: string): TableInfo | undefined {
    return this.tables.get(this.canonical(qualified));
  }

  canonical(qualified: string): string {
    const name = qualified.toLowerCase();
    if (this.userSchema && name.startsWith("mydb.")) return `${this.userSchema}.${name.slice(5)}`;
    return name;
  }

  canonicalSchema(name: string): string {
    const lower = name.toLowerCase();
    return lower === "mydb" && this.userSchema ? this.userSchema : lower;
  }

  /** One table with its columns (loaded once), or null if the service has none such. */
  describe(qualified: string): Promise<TableInfo | null> {
    const key = this.canonical(qualified);
    const known = this.tables.get(key);
    if (known?.columns) return Promise.resolve(known);
    let p = this.described.get(key);
    if (!p) {
      let db: string;
      let name: string;
      if (known) {
        [db, name] = [known.database, known.name];
      } else {
        const dot = key.indexOf(".");
        if (dot < 0) return Promise.resolve(null);
        [db, name] = [key.slice(0, dot), key.slice(dot + 1)].map((s) => s.replace(/^"|"$/g, ""));
        // A name not in a database whose whole list is here (e.g. half typed): none such.
        if (this.listed(db).complete || !this.database(db)) return Promise.resolve(null);
      }
      const generation = this.generation;
      p = getJSON<TableInfo>(`api/tables/${encodeURIComponent(db)}/${encodeURIComponent(name)}`)
        .then((full) => {
          if (generation !== this.generation) return null;
          const table = this.remember(full);
          table.columns = full.columns || [];
          if (table.nrows === null || table.nrows === undefined) table.nrows = full.nrows;
          this.changed();
          return table;
        })
        .catch(() => { this.described.delete(key); return null; });
      this.described.set(key, p);
    }
    return p;
  }

  /** Fetch the columns of the named tables that are not loaded yet. */
  async ensureColumns(qualified: string[]): Promise<void> {
    await Promise.all(qualified.map((q) => this.describe(q)));
  }
}
