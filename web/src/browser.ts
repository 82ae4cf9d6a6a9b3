// The table browser: databases -> tables -> columns (with units, UCDs, descriptions),
// each level loaded when opened (a database's tables a page at a time), and a search
// of table and column names and descriptions on the server. A table's "Query" puts a
// starter query in the editor; a column click inserts its name at the cursor.

import { type Catalog, type ColumnInfo, type DatabaseInfo, type TableInfo } from "./catalog";
import { formatCount, h, replace } from "./dom";

export interface BrowserActions {
  /** Replace the editor's text (a starter query). */
  query(text: string): void;
  /** Insert text at the editor's cursor (a column name). */
  insert(text: string): void;
}

const SEARCH_DELAY_MS = 250;
/** Tables put into a database's node at once when it opens (more than a screenful)... */
const FIRST_TABLES = 150;
/** ...and then per animation frame. */
const TABLES_PER_FRAME = 300;

/** The name a database goes by in the list (``mydb`` for the user's own). */
function schemaLabel(catalog: Catalog, d: DatabaseInfo): string {
  return d.name === catalog.userSchema ? "mydb" : d.name;
}

/** ``schema.table`` as the user would write it (``mydb.x`` for their own tables). */
export function queryName(catalog: Catalog, t: TableInfo): string {
  if (catalog.userSchema && t.database === catalog.userSchema) {
    return `mydb.${t.qualified_name.slice(t.qualified_name.indexOf(".") + 1)}`;
  }
  return t.qualified_name;
}

/** A first query for a table: its first rows. */
export function starterQuery(catalog: Catalog, t: TableInfo): string {
  return `SELECT TOP 1000 *\nFROM ${queryName(catalog, t)}`;
}

function plural(n: number, word: string): string {
  return `${formatCount(n)} ${word}${n === 1 ? "" : "s"}`;
}

export class TableBrowser {
  readonly element: HTMLElement;
  private tree: HTMLElement;
  private results: HTMLElement;
  private message: HTMLElement;
  private searchBox: HTMLInputElement;
  private databases: DatabaseInfo[] | null = null;
  private searchTimer: number | undefined;
  private searchToken = 0;

  constructor(private catalog: Catalog, private actions: BrowserActions) {
    this.searchBox = h("input", { type: "search", class: "browser-search", placeholder: "Search tables and columns…",
      "aria-label": "search tables and columns by name or description", autocomplete: "off", spellcheck: "false" });
    this.searchBox.addEventListener("input", () => this.searchSoon());
    this.searchBox.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { this.searchBox.value = ""; this.searchSoon(0); }
    });
    this.message = h("p", { class: "muted small browser-message", role: "status" });
    this.tree = h("ul", { class: "tree", role: "tree", "aria-label": "databases" });
    this.results = h("ul", { class: "tree search-results", role: "tree", "aria-label": "tables found", hidden: true });
    this.element = h("div", { class: "browser" },
      h("div", { class: "panel-head" }, h("h2", null, "Tables"),
        h("button", { type: "button", class: "small", title: "load the list again", onclick: () => void this.catalog.load() }, "Refresh")),
      this.searchBox, this.message, this.tree, this.results);
    this.tree.addEventListener("click", (e) => this.click(e));
    this.results.addEventListener("click", (e) => this.click(e));
    catalog.onChange(() => {
      if (catalog.databases !== this.databases) this.render();
    });
  }

  /** Draw the databases (collapsed); called when the catalogue's databases change. */
  render(): void {
    this.databases = this.catalog.databases;
    const dbs = [...this.catalog.databases].sort((a, b) => rank(this.catalog, a) - rank(this.catalog, b) || a.name.localeCompare(b.name));
    replace(this.tree, ...dbs.map((d) => this.databaseNode(d)));
    this.message.textContent = dbs.length ? "" : "No databases to show.";
    if (this.searchBox.value.trim()) this.searchSoon(0);
  }

  private databaseNode(d: DatabaseInfo): HTMLElement {
    const children = h("ul", { class: "tree-children", role: "group", hidden: true });
    const label = schemaLabel(this.catalog, d);
    const owner = d.kind === "user" && d.name !== this.catalog.userSchema && d.name.startsWith("user_")
      ? d.name.slice(5) : null;
    const row = h("button", { type: "button", class: "tree-row db-row", "aria-expanded": "false",
      title: d.description || d.name, "data-db": d.name },
    h("span", { class: "twisty", "aria-hidden": "true" }),
    h("span", { class: "tree-name" }, label),
    h("span", { class: "tree-count" }, plural(d.tables, "table")),
    owner !== null ? h("span", { class: "tree-note" }, "shared by ", h("strong", null, owner))
      : d.name === this.catalog.userSchema ? h("span", { class: "tree-note" }, "your tables") : null,
    d.description && d.name !== this.catalog.userSchema
      ? h("span", { class: "tree-desc" }, d.description) : null);
    const node = h("li", { class: "tree-db", role: "treeitem" }, row, children);
    row.addEventListener("click", () => void this.toggleDatabase(d, row, children));
    return node;
  }

  private async toggleDatabase(d: DatabaseInfo, row: HTMLElement, children: HTMLElement): Promise<void> {
    const open = row.getAttribute("aria-expanded") !== "true";
    row.setAttribute("aria-expanded", String(open));
    children.hidden = !open;
    if (!open || children.dataset.filled) return;
    const mark = `expand-start:${d.name}`;
    performance.mark(mark);
    children.dataset.filled = "1";
    replace(children, h("li", { class: "muted small tree-loading" }, "Loading tables…"));
    try {
      if (!this.catalog.listed(d.name).tables.length) await this.catalog.moreTables(d.name);
      this.fillTables(d, children, 0);
      // Measured until the first rows are drawn; "expand-all" when every row of the
      // page is in (the browser tests print both).
      await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
      performance.measure(`expand:${d.name}`, mark);
    } catch (e) {
      delete children.dataset.filled;
      replace(children, h("li", { class: "tree-error" }, `Could not load the tables: ${(e as Error).message}`));
    }
  }

  /** Put a database's listed tables from ``from`` on into its node: the first screenful
   *  at once, the rest a chunk per animation frame (the list is usable meanwhile). */
  private fillTables(d: DatabaseInfo, children: HTMLElement, from: number): void {
    const { tables, complete } = this.catalog.listed(d.name);
    const fill = String(Number(children.dataset.fill || 0) + 1);
    children.dataset.fill = fill;
    if (from === 0) replace(children);
    children.querySelector(":scope > .tree-more-item")?.remove();
    if (!tables.length) children.appendChild(h("li", { class: "muted small tree-loading" }, "No tables."));
    let next = from;
    const chunk = (size: number) => {
      if (children.dataset.fill !== fill) return;  // filled anew meanwhile
      const part = document.createDocumentFragment();
      const end = Math.min(tables.length, next + size);
      for (; next < end; next++) part.appendChild(this.tableNode(tables[next]));
      children.appendChild(part);
      if (next < tables.length) {
        requestAnimationFrame(() => chunk(TABLES_PER_FRAME));
      } else {
        if (!complete) children.appendChild(this.moreButton(d, children));
        if (from === 0) performance.measure(`expand-all:${d.name}`, `expand-start:${d.name}`);
      }
    };
    chunk(FIRST_TABLES);
  }

  private moreButton(d: DatabaseInfo, children: HTMLElement): HTMLElement {
    const left = Math.max(0, d.tables - this.catalog.listed(d.name).tables.length);
    const more = h("button", { type: "button", class: "small tree-more" }, `Show more (${formatCount(left)} left)`);
    more.addEventListener("click", async () => {
      more.disabled = true;
      more.textContent = "Loading…";
      const from = this.catalog.listed(d.name).tables.length;
      try {
        await this.catalog.moreTables(d.name);
        this.fillTables(d, children, from);
      } catch (e) {
        more.disabled = false;
        more.textContent = `Could not load more: ${(e as Error).message}`;
      }
    });
    return h("li", { class: "tree-more-item" }, more);
  }

  /** One table's node. Lists hold thousands: nodes are clones of one prototype, and
   *  clicks are handled once for the whole tree (see ``click``). */
  private tableNode(t: TableInfo, matched?: string[]): HTMLElement {
    const li = this.prototype.cloneNode(true) as HTMLElement;
    const line = li.firstChild as HTMLElement;
    const toggle = line.firstChild as HTMLElement;
    const name = queryName(this.catalog, t);
    toggle.title = `${name}: show the columns`;
    (toggle.childNodes[1] as HTMLElement).textContent = matched ? name : t.name;
    const count = toggle.childNodes[2] as HTMLElement;
    if (t.nrows !== null && t.nrows !== undefined) count.textContent = plural(t.nrows, "row");
    else count.remove();
    li.dataset.table = t.qualified_name;
    if (t.description) li.appendChild(h("div", { class: "tree-desc table-desc", title: t.description }, t.description));
    if (matched && matched.length) {
      li.appendChild(h("div", { class: "tree-matched small" }, "columns: ",
        ...matched.flatMap((c, i) => [i ? ", " : "", h("code", null, c)])));
    }
    return li;
  }

  private prototype = h("li", { class: "tree-table", role: "treeitem" },
    h("div", { class: "tree-line" },
      h("button", { type: "button", class: "tree-row table-row", "aria-expanded": "false", "data-action": "columns" },
        h("span", { class: "twisty", "aria-hidden": "true" }), h("span", { class: "tree-name" }), h("span", { class: "tree-count" })),
      h("button", { type: "button", class: "small tree-query", title: "put a starter query for this table in the editor",
        "data-action": "query" }, "Query")));

  /** Clicks on tables and columns, for every node of both trees. */
  private click(event: Event): void {
    const target = (event.target as HTMLElement).closest<HTMLElement>("[data-action]");
    const li = target?.closest<HTMLElement>("li.tree-table");
    if (!target || !li) return;
    const table = this.catalog.table(li.dataset.table || "");
    if (!table) return;
    const action = target.dataset.action;
    if (action === "query") this.actions.query(starterQuery(this.catalog, table));
    else if (action === "columns") void this.toggleTable(table, target, li);
    else if (action === "column") this.actions.insert(target.dataset.column || "");
  }

  private async toggleTable(t: TableInfo, toggle: HTMLElement, li: HTMLElement): Promise<void> {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    let columns = li.querySelector<HTMLElement>(":scope > .tree-columns");
    if (!columns) li.appendChild(columns = h("ul", { class: "tree-columns", role: "group" }));
    columns.hidden = !open;
    if (!open || columns.dataset.filled) return;
    columns.dataset.filled = "1";
    replace(columns, h("li", { class: "muted small tree-loading" }, "Loading columns…"));
    const full = await this.catalog.describe(t.qualified_name);
    if (!full) {
      delete columns.dataset.filled;
      replace(columns, h("li", { class: "tree-error" }, "Could not load the columns."));
      return;
    }
    replace(columns, ...(full.columns || []).map((c) => this.columnNode(c)));
  }

  private columnNode(c: ColumnInfo): HTMLElement {
    const type = c.arraysize && c.arraysize !== "1" ? `${c.datatype}[${c.arraysize}]` : c.datatype;
    return h("li", { role: "treeitem" }, h("button", { type: "button", class: "column-row",
      title: `insert ${c.adql_name} in the query`, "data-column": c.adql_name, "data-action": "column" },
    h("span", { class: "col-line" },
      h("span", { class: "col-name" }, c.adql_name),
      h("span", { class: "col-type" }, type),
      c.unit ? h("span", { class: "col-unit" }, c.unit) : null),
    c.ucd ? h("span", { class: "col-ucd" }, c.ucd) : null,
    c.description ? h("span", { class: "col-desc" }, c.description) : null));
  }

  // --- search ---------------------------------------------------------------------
  private searchSoon(delay = SEARCH_DELAY_MS): void {
    window.clearTimeout(this.searchTimer);
    this.searchTimer = window.setTimeout(() => void this.search(), delay);
  }

  private async search(): Promise<void> {
    const text = this.searchBox.value.trim();
    const token = ++this.searchToken;
    if (!text) {
      this.results.hidden = true;
      this.tree.hidden = false;
      this.message.textContent = "";
      return;
    }
    this.message.textContent = "Searching…";
    try {
      const found = await this.catalog.search(text);
      if (token !== this.searchToken) return;
      this.tree.hidden = true;
      this.results.hidden = false;
      replace(this.results, ...found.map((t) => this.tableNode(t, t.matched_columns || [])));
      this.message.textContent = found.length
        ? `${found.length >= 200 ? "The first 200" : plural(found.length, "table")} matching “${text}”`
        : `No table or column matches “${text}”.`;
    } catch (e) {
      if (token === this.searchToken) this.message.textContent = `Search failed: ${(e as Error).message}`;
    }
  }
}

/** The user's own tables first, then catalogues, then tables shared by others. */
function rank(catalog: Catalog, d: DatabaseInfo): number {
  if (d.name === catalog.userSchema) return 0;
  return d.kind === "user" ? 2 : 1;
}
