// My tables: the logged-in user's tables (sizes, provenance, shares), what they use of
// their quota, uploads of VOTable/CSV/FITS/Parquet files, and describe, rename, share
// and drop. Job results (mydb.job_<id>) are listed apart; renaming one keeps it.

import { call, check, currentUser, getJSON, sendJSON } from "./api";
import { ask, field } from "./dialogs";
import { formatBytes, formatCount, formatTime, h, replace } from "./dom";

export interface UserTable {
  name: string; schema: string; qualified_name: string; description: string | null;
  nrows: number; nbytes: number; created: string | null; job_id: string | null;
  provenance: { adql?: string; created?: string; source_tables?: string[]; uploads?: string[];
                uploaded?: { content_type?: string; bytes?: number } } | null;
  shared_with: { users: string[]; groups: string[] };
  ra_column?: string | null; dec_column?: string | null;
}

interface Quota { rows_used: number; rows_limit: number; bytes_used: number; bytes_limit: number; tables: number }

export interface MyTablesActions {
  query(text: string): void;
  /** The user's tables changed (the catalogue reloads). */
  changed(): void;
}

/** Upload formats by file name ending. */
const FORMATS: Array<[RegExp, string, string]> = [
  [/\.(vot|votable|xml)$/i, "votable", "VOTable"], [/\.(csv|tsv|txt)$/i, "csv", "CSV"],
  [/\.(fits|fit|fts)(\.gz)?$/i, "fits", "FITS"], [/\.(parquet|pq)$/i, "parquet", "Parquet"],
];

const NAME = /^[a-z][a-z0-9_]*$/;

/** A table name made from a file name: lower case, letters, digits and _. */
export function tableNameFor(fileName: string): string {
  let base = fileName.replace(/\.(gz|bz2)$/i, "").replace(/\.[^.]*$/, "").toLowerCase()
    .replace(/[^a-z0-9_]+/g, "_").replace(/^_+|_+$/g, "");
  if (!/^[a-z]/.test(base)) base = "t_" + base;
  return base.slice(0, 63).replace(/_+$/, "") || "uploaded";
}

function checkName(name: string): string | null {
  if (!NAME.test(name)) return "A table name starts with a lower-case letter and has only lower-case letters, digits and _.";
  if (name.length > 63) return "A table name has at most 63 characters.";
  return null;
}

function names(text: string): string[] {
  return text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
}

export class MyTables {
  readonly element: HTMLElement;
  private list: HTMLElement;
  private jobs: HTMLElement;
  private jobCount: HTMLElement;
  private quota: HTMLElement;
  private message: HTMLElement;
  private body: HTMLElement;
  private upload: HTMLElement;
  private tables: UserTable[] = [];

  constructor(private actions: MyTablesActions) {
    this.list = h("ul", { class: "mytables-list", "aria-label": "your tables" });
    this.jobs = h("ul", { class: "mytables-list" });
    this.jobCount = h("span");
    this.quota = h("div", { class: "quota" });
    this.message = h("p", { class: "small mytables-message", role: "status" });
    this.upload = this.uploadForm();
    this.body = h("div", null, this.quota, this.upload, this.message, this.list,
      h("details", { class: "job-tables" }, h("summary", null, "Job results ", this.jobCount,
        h("span", { class: "muted small" }, " (kept until the job is deleted; rename one to keep it)")), this.jobs));
    this.element = h("div", { class: "mytables" },
      h("div", { class: "panel-head" }, h("h2", null, "My tables"),
        h("button", { type: "button", class: "small", onclick: () => void this.reload() }, "Refresh")),
      this.body);
  }

  async reload(): Promise<void> {
    if (!currentUser()) {
      this.tables = [];
      replace(this.list);
      replace(this.jobs);
      replace(this.quota);
      this.upload.hidden = true;
      this.jobs.parentElement!.hidden = true;
      this.say("Log in to keep tables: query results (Keep as table…) and your own files.");
      return;
    }
    this.upload.hidden = false;
    try {
      const [tables, quota] = await Promise.all([getJSON<UserTable[]>("api/usertables"), getJSON<Quota>("api/quota")]);
      this.tables = tables;
      this.renderQuota(quota);
      this.render();
    } catch (e) {
      this.say(`Could not load your tables: ${(e as Error).message}`, true);
    }
  }

  clear(): void {
    this.tables = [];
    replace(this.list);
    replace(this.jobs);
    replace(this.quota);
  }

  private say(text: string, bad = false, good = false): void {
    this.message.textContent = text;
    this.message.classList.toggle("bad", bad);
    this.message.classList.toggle("good", good);
  }

  private renderQuota(q: Quota): void {
    const share = Math.max(q.bytes_limit ? q.bytes_used / q.bytes_limit : 0, q.rows_limit ? q.rows_used / q.rows_limit : 0);
    const bar = h("div", { class: "quota-bar", role: "meter", "aria-label": "quota used",
      "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(share * 100) });
    bar.appendChild(h("div", { class: "quota-fill" + (share > 0.9 ? " full" : "") }));
    (bar.firstChild as HTMLElement).style.width = `${Math.min(100, share * 100).toFixed(1)}%`;
    replace(this.quota, h("div", { class: "quota-text small" },
      h("strong", null, formatBytes(q.bytes_used)), ` of ${formatBytes(q.bytes_limit)} · `,
      `${formatCount(q.rows_used)} of ${formatCount(q.rows_limit)} rows · `,
      `${formatCount(q.tables)} table${q.tables === 1 ? "" : "s"}`), bar);
  }

  private render(): void {
    const own = this.tables.filter((t) => !t.job_id);
    const jobs = this.tables.filter((t) => t.job_id);
    replace(this.list, ...own.map((t) => this.item(t)));
    replace(this.jobs, ...jobs.map((t) => this.item(t)));
    this.jobCount.textContent = `(${jobs.length})`;
    this.jobs.parentElement!.hidden = jobs.length === 0;
    if (!own.length) this.say("No tables yet: upload a file, or keep a query's result as a table.");
    else if (!this.message.classList.contains("bad") && !this.message.classList.contains("good")) this.say("");
  }

  private item(t: UserTable): HTMLElement {
    const p = t.provenance || {};
    const facts = [`${formatCount(t.nrows)} rows`, formatBytes(t.nbytes)];
    if (t.created) facts.push(formatTime(t.created));
    let origin: HTMLElement | null = null;
    if (p.uploaded) {
      const type = p.uploaded.content_type || "";
      const kind = FORMATS.find(([, f]) => type.includes(f))?.[2] || "a file";
      origin = h("div", { class: "prov small" },
        `Uploaded ${kind}${p.uploaded.bytes ? ` of ${formatBytes(p.uploaded.bytes)}` : ""}`);
    } else if (p.adql) {
      origin = h("div", { class: "prov small" }, t.job_id ? `Result of job ${t.job_id}: ` : "From the query ",
        h("code", { class: "prov-query", title: p.adql }, p.adql),
        p.source_tables && p.source_tables.length ? h("span", { class: "muted" }, ` · reads ${p.source_tables.join(", ")}`) : null);
    }
    const shared = [...t.shared_with.users, ...t.shared_with.groups.map((g) => `group ${g}`)];
    const button = (label: string, title: string, action: () => void, extra = "") =>
      h("button", { type: "button", class: `small ${extra}`.trim(), title, "data-action": label.toLowerCase(), onclick: action }, label);
    const li = h("li", { class: "mytable" },
      h("div", { class: "mytable-head" },
        h("code", { class: "mytable-name" }, `mydb.${t.name}`),
        h("span", { class: "muted small" }, facts.join(" · "))),
      t.description ? h("div", { class: "mytable-desc small", title: t.description }, t.description) : null,
      origin,
      shared.length ? h("div", { class: "shared small" }, "Shared with ",
        ...shared.flatMap((s, i) => [i ? ", " : "", h("strong", null, s)])) : null,
      h("div", { class: "mytable-actions" },
        button("Query", "put a starter query in the editor", () => this.actions.query(`SELECT TOP 1000 *\nFROM mydb.${t.name}`)),
        button("Describe", "change the description", () => void this.describe(t)),
        button("Rename", "give the table another name", () => void this.rename(t)),
        button("Share", "let other users or groups read it", () => void this.share(t)),
        button("Drop", "delete the table", () => void this.drop(t), "danger")));
    li.dataset.table = t.name;
    return li;
  }

  // --- actions --------------------------------------------------------------------
  private async act(what: string, work: () => Promise<unknown>, done: string): Promise<void> {
    try {
      await work();
      await this.reload();
      this.say(done, false, true);
      this.actions.changed();
    } catch (e) {
      this.say(`Could not ${what}: ${(e as Error).message}`, true);
    }
  }

  private async describe(t: UserTable): Promise<void> {
    const text = h("textarea", { id: "describe-text", rows: 4, "aria-label": "description", maxlength: 4000 });
    text.value = t.description || "";
    if (!await ask(`Describe mydb.${t.name}`, "What the table holds (shown to you and to whoever you share it with).",
      "Save", { fields: [text] })) return;
    await this.act("save the description", () => sendJSON("PATCH", `api/usertables/${encodeURIComponent(t.name)}`,
      { description: text.value }), `Described mydb.${t.name}.`);
  }

  private async rename(t: UserTable): Promise<void> {
    const input = h("input", { id: "rename-name", "aria-label": "new name", maxlength: 63, autocomplete: "off", spellcheck: "false" });
    input.value = t.job_id ? "" : t.name;
    const ok = await ask(`Rename mydb.${t.name}`, t.job_id
      ? "A job result renamed is kept when the job is deleted." : "Queries that name the table must use the new name.",
    "Rename", { fields: [field("New name", input)], validate: () => checkName(input.value.trim()) });
    const name = input.value.trim();
    if (!ok || name === t.name) return;
    await this.act("rename the table", () => sendJSON("PATCH", `api/usertables/${encodeURIComponent(t.name)}`, { name }),
      `Renamed mydb.${t.name} to mydb.${name}.`);
  }

  private async share(t: UserTable): Promise<void> {
    const users = h("input", { id: "share-users", autocomplete: "off", spellcheck: "false", placeholder: "alice, bob" });
    const groups = h("input", { id: "share-groups", autocomplete: "off", spellcheck: "false", placeholder: "survey-team" });
    users.value = t.shared_with.users.join(", ");
    groups.value = t.shared_with.groups.join(", ");
    if (!await ask(`Share mydb.${t.name}`,
      "They can read it (not change it) as " + `${t.schema}.${t.name}` + " in their queries. Leave both empty to stop sharing.",
      "Share", { fields: [field("Users", users, "names, separated by commas"), field("Groups", groups)] })) return;
    await this.act("share the table", () => sendJSON("PUT", `api/usertables/${encodeURIComponent(t.name)}/shares`,
      { users: names(users.value), groups: names(groups.value) }), `Shares of mydb.${t.name} saved.`);
  }

  private async drop(t: UserTable): Promise<void> {
    if (!await ask(`Drop mydb.${t.name}?`, `Its ${formatCount(t.nrows)} rows are deleted; queries naming it will fail.`,
      "Drop", { danger: true })) return;
    await this.act("drop the table", async () => check(await call(`api/usertables/${encodeURIComponent(t.name)}`,
      { method: "DELETE" })), `Dropped mydb.${t.name}.`);
  }

  // --- upload ---------------------------------------------------------------------
  private uploadForm(): HTMLElement {
    const file = h("input", { type: "file", id: "upload-file", "aria-label": "table file",
      accept: ".vot,.votable,.xml,.csv,.tsv,.txt,.fits,.fit,.fts,.parquet,.pq" });
    const name = h("input", { id: "upload-name", "aria-label": "table name", placeholder: "table name", maxlength: 63,
      autocomplete: "off", spellcheck: "false" });
    const format = h("select", { id: "upload-format", "aria-label": "file format" },
      h("option", { value: "" }, "format from the name"),
      ...FORMATS.map(([, f, label]) => h("option", { value: f }, label)));
    const description = h("input", { id: "upload-description", "aria-label": "description", placeholder: "description (optional)" });
    const submit = h("button", { type: "submit", class: "primary small", id: "upload-submit" }, "Upload");
    const chosen = h("span", { class: "muted small upload-chosen" });
    file.addEventListener("change", () => {
      const f = file.files?.[0];
      if (!f) return;
      name.value = tableNameFor(f.name);
      chosen.textContent = `${f.name} (${formatBytes(f.size)})`;
    });
    const formEl = h("form", { class: "upload" }, field("File", file), chosen,
      h("div", { class: "upload-row" }, field("Name", name), field("Format", format)), field("Description", description),
      h("div", { class: "upload-row" }, submit));
    formEl.addEventListener("submit", async (e) => {
      e.preventDefault();
      const f = file.files?.[0];
      if (!f) { this.say("Choose a file first.", true); return; }
      const table = name.value.trim();
      const problem = checkName(table);
      if (problem) { this.say(problem, true); return; }
      const fmt = format.value || FORMATS.find(([re]) => re.test(f.name))?.[1];
      if (!fmt) { this.say(`Which format is ${f.name}? Choose one: VOTable, CSV, FITS or Parquet.`, true); return; }
      const params = new URLSearchParams({ format: fmt, mode: "create" });
      if (description.value.trim()) params.set("description", description.value.trim());
      submit.disabled = true;
      this.say(`Uploading ${f.name} (${formatBytes(f.size)}) as mydb.${table}…`);
      try {
        const response = await check(await call(`api/usertables/${encodeURIComponent(table)}?${params}`, {
          method: "PUT", body: f, headers: { "Content-Type": "application/octet-stream" } }));
        const stored = await response.json() as UserTable;
        formEl.reset();
        chosen.textContent = "";
        await this.reload();
        this.say(`Uploaded ${f.name} as mydb.${stored.name} (${formatCount(stored.nrows)} rows).`, false, true);
        this.actions.changed();
      } catch (err) {
        this.say(`Could not upload ${f.name}: ${(err as Error).message}`, true);
      } finally {
        submit.disabled = false;
      }
    });
    return h("details", { class: "upload-box" }, h("summary", null, "Upload a table (VOTable, CSV, FITS, Parquet)"), formEl);
  }
}
