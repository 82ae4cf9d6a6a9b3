// The taphouse query page: log in (or not), write ADQL, run it as a job, look at the
// rows, keep or download them, find the job again in the history.

import "./styles.css";

import { ApiError, currentUser, login, logout, onSessionChange, serviceUrl } from "./api";
import { hasTopOrWhere, referencedTables } from "./adql";
import { TableBrowser } from "./browser";
import { Catalog } from "./catalog";
import { Chart } from "./chart";
import { ask } from "./dialogs";
import { formatBytes, formatCount, formatSeconds, h, replace } from "./dom";
import { createEditor } from "./editor";
import { examplesPanel } from "./examples";
import { ResultGrid } from "./grid";
import { JobHistory } from "./history";
import { abortJob, ACTIVE, downloadResult, fetchResult, follow, type JobInfo, submitJob } from "./jobs";
import { MyTables } from "./mytables";
import { SkyPlot } from "./sky";
import type { ResultTable } from "./table";
import { Workspaces } from "./workspaces";

/** Tables with more rows than this get a warning before a query with neither TOP nor WHERE. */
const BIG_TABLE_ROWS = 1_000_000;
/** Results larger than this (as JSON) are offered for download instead of shown. */
const MAX_SHOWN_BYTES = 150 * 1024 * 1024;

/** A panel of the side bar. */
interface Panel { id: string; title: string; element: HTMLElement; shown?: () => void }

const catalog = new Catalog();

// --- the top bar and login ----------------------------------------------------------
const userBox = h("div", { class: "user" });
const loginError = h("span", { class: "login-error", role: "alert" });

function renderUser(): void {
  const user = currentUser();
  if (user) {
    replace(userBox,
      h("span", { class: "whoami" }, "Logged in as ", h("strong", null, user)),
      h("button", { type: "button", id: "logout", onclick: () => logout() }, "Log out"));
    return;
  }
  const name = h("input", { name: "username", autocomplete: "username", placeholder: "user name", required: true, "aria-label": "user name" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", placeholder: "password", required: true, "aria-label": "password" });
  const submit = h("button", { type: "submit", id: "login" }, "Log in");
  const formEl = h("form", { class: "login" }, name, password, submit, loginError);
  formEl.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    loginError.textContent = "";
    try {
      await login(name.value.trim(), password.value);
    } catch (e) {
      loginError.textContent = (e as Error).message;
      submit.disabled = false;
    }
  });
  replace(userBox, h("span", { class: "muted small anonymous" }, "Anonymous: public data only"), formEl);
}

const tapUrl = serviceUrl("tap");
const topbar = h("header", { class: "topbar" },
  h("span", { class: "brand" }, "taphouse"),
  h("a", { class: "service", href: tapUrl, title: "the TAP service for TOPCAT, pyvo, astroquery" }, tapUrl),
  h("span", { class: "spacer" }), userBox);

// --- editor and run bar -------------------------------------------------------------
const editorHost = h("div", { class: "editor" });
const editor = createEditor(editorHost, catalog, () => void run());
const maxrec = h("select", { "aria-label": "most rows (MAXREC)", title: "most rows returned (MAXREC)" },
  ...[1000, 10000, 100000, 1000000].map((n) => h("option", { value: n, selected: n === 100000 }, formatCount(n))));
const runButton = h("button", { type: "button", id: "run", class: "primary", title: "Ctrl-Enter", onclick: () => void run() }, "▶ Run");
const abortButton = h("button", { type: "button", id: "abort", disabled: true, onclick: () => void abort() }, "Abort");
const jobStatus = h("span", { class: "job-status", role: "status", "aria-live": "polite" });
const errorBox = h("div", { class: "error-box", role: "alert", hidden: true });
const runbar = h("div", { class: "runbar" }, runButton, abortButton,
  h("label", { class: "small muted" }, "rows ≤ ", maxrec), jobStatus);

// --- results: the table, the sky plot and charts -----------------------------------
const grid = new ResultGrid();
type ResultView = "table" | "sky" | "chart";
const pickRow = (row: number) => { showView("table"); grid.showRow(row); };
const sky = new SkyPlot(pickRow);
const chart = new Chart(pickRow);
const viewTabs = h("div", { class: "view-tabs", role: "tablist", "aria-label": "show the result as", hidden: true },
  ...([["table", "Table"], ["sky", "Sky"], ["chart", "Chart"]] as const).map(([id, label]) =>
    h("button", { type: "button", role: "tab", "data-view": id, onclick: () => showView(id) }, label)));

function showView(view: ResultView): void {
  for (const b of Array.from(viewTabs.children)) b.setAttribute("aria-selected", String((b as HTMLElement).dataset.view === view));
  grid.element.hidden = view !== "table";
  sky.element.hidden = view !== "sky";
  chart.element.hidden = view !== "chart";
  if (view === "sky") sky.show(); else sky.hide();
  if (view === "chart") chart.show(); else chart.hide();
}
const resultTitle = h("span", { class: "result-title" }, "No result yet");
const downloads = h("div", { class: "downloads" },
  ...([["votable", "VOTable", "vot"], ["csv", "CSV", "csv"], ["fits", "FITS", "fits"], ["parquet", "Parquet", "parquet"]] as const)
    .map(([format, label, ext]) => h("button", { type: "button", class: "small", "data-format": format,
      title: `download the result as ${label}`, onclick: () => void download(format, ext) }, label)));
const keepButton = h("button", { type: "button", id: "keep", class: "small", onclick: () => void keep() }, "Keep as table…");
const resultActions = h("div", { class: "result-actions", hidden: true }, downloads, keepButton);
const resultNote = h("div", { class: "result-note small muted" });
const results = h("section", { class: "results", "aria-label": "result" },
  h("div", { class: "results-head" }, viewTabs, resultTitle, resultActions), resultNote, grid.element,
  sky.element, chart.element);

// --- side bar -----------------------------------------------------------------------
const history = new JobHistory({
  open: (job) => void show(job),
  edit: (job) => { editor.setText(job.query || ""); editor.focus(); },
  rerun: (job) => { editor.setText(job.query || ""); void run(); },
  deleted: (job) => { if (shownJob && shownJob.id === job.id) clearResult(); },
});
const examples = examplesPanel((query) => { editor.setText(query); editor.focus(); });
const setQuery = (query: string) => { editor.setText(query); editor.focus(); };
const browser = new TableBrowser(catalog, { query: setQuery, insert: (text) => editor.insert(text) });
const tablesChanged = () => void catalog.load().catch(() => undefined);
const myTables = new MyTables({ query: setQuery, changed: tablesChanged });
const workspaces = new Workspaces(catalog);
const panels: Panel[] = [
  { id: "tables", title: "Tables", element: browser.element },
  { id: "mytables", title: "My tables", element: myTables.element, shown: () => void myTables.reload() },
  { id: "workspaces", title: "Workspaces", element: workspaces.element, shown: () => void workspaces.reload() },
  { id: "examples", title: "Examples", element: examples.element },
  { id: "history", title: "History", element: history.element, shown: () => void history.reload() },
];
const tabBody = h("div", { class: "tab-body" });
const tabs = h("nav", { class: "tabs", role: "tablist" });

function showPanel(id: string): void {
  for (const p of panels) {
    p.element.hidden = p.id !== id;
    tabs.querySelector(`[data-panel="${p.id}"]`)?.setAttribute("aria-selected", String(p.id === id));
    if (p.id === id && p.shown) p.shown();
  }
}
for (const p of panels) {
  tabs.appendChild(h("button", { type: "button", role: "tab", "data-panel": p.id, onclick: () => showPanel(p.id) }, p.title));
  tabBody.appendChild(p.element);
}

// --- running queries ----------------------------------------------------------------
let current: JobInfo | null = null;   // the job the run bar follows
let shownJob: JobInfo | null = null;  // the job whose result is shown
let ticker: number | undefined;
let followToken = 0;

function setStatus(job: JobInfo | null, polledAt = performance.now()): void {
  window.clearInterval(ticker);
  if (!job) {
    jobStatus.textContent = "";
    abortButton.disabled = true;
    return;
  }
  const draw = () => {
    const parts = [job.phase];
    let elapsed = job.elapsed;
    if (elapsed !== null && ACTIVE.has(job.phase)) elapsed += (performance.now() - polledAt) / 1000;
    if (elapsed !== null) parts.push(formatSeconds(elapsed));
    if (job.rows !== null) parts.push(`${formatCount(job.rows)} rows`);
    replace(jobStatus, h("span", { class: `phase phase-${job.phase.toLowerCase()}` }, parts[0]),
      " ", parts.slice(1).join(" · "), " ", h("span", { class: "muted small" }, job.id));
  };
  draw();
  abortButton.disabled = !ACTIVE.has(job.phase);
  if (ACTIVE.has(job.phase)) ticker = window.setInterval(draw, 100);
}

function showError(message: string | null): void {
  errorBox.hidden = !message;
  errorBox.textContent = message || "";
}

async function run(query = editor.text()): Promise<void> {
  query = query.trim();
  showError(null);
  followToken++;  // the run bar follows the new job from now on
  setStatus(null);
  if (!query) {
    showError("Write a query first (or pick an example).");
    return;
  }
  const names = referencedTables(query);
  // (Tables are listed per database when needed: ask for the ones the query names.)
  const known = hasTopOrWhere(query) ? [] : await Promise.all(names.map((n) => catalog.table(n) || catalog.describe(n)));
  const big = known.filter((t) => t && t.nrows !== null && t.nrows > BIG_TABLE_ROWS);
  if (big.length && !hasTopOrWhere(query)) {
    const t = big[0]!;
    const go = await ask("A big query",
      `${t.qualified_name} has ${formatCount(t.nrows || 0)} rows and the query has neither TOP nor WHERE: ` +
      "it may run long and return many rows. Run it anyway?", "Run anyway");
    if (!go) return;
  }
  jobStatus.textContent = "Submitting…";
  try {
    const id = await submitJob(query, { maxrec: Number(maxrec.value) });
    await watch(id, true);
  } catch (e) {
    showError((e as Error).message);
  }
}

/** Follow a job in the run bar; show its result (or error) when it ends. */
async function watch(id: string, fresh: boolean): Promise<void> {
  const token = ++followToken;
  const job = await follow(id, (j) => {
    if (token !== followToken) return;
    current = j;
    setStatus(j);
    history.update(j);
    history.select(j.id);
  }, () => token !== followToken);
  if (token !== followToken) return;
  if (job.phase === "ERROR" && job.error) {
    showError(job.error.message);
    if (fresh) editor.showError(job.error.message, job.error.line, job.error.column);
  }
  await show(job);
}

async function abort(): Promise<void> {
  if (!current) return;
  try {
    await abortJob(current.id);
  } catch (e) {
    showError((e as Error).message);
  }
}

function clearResult(): void {
  shownJob = null;
  setResult(null);
  resultActions.hidden = true;
  resultTitle.textContent = "No result yet";
  resultNote.textContent = "";
}

/** Show a job: its result when completed, else its state. */
async function show(job: JobInfo): Promise<void> {
  history.select(job.id);
  if (ACTIVE.has(job.phase)) {
    if (!current || current.id !== job.id) void watch(job.id, false);
    return;
  }
  if (job.kind !== "tap") {
    clearResult();
    resultTitle.textContent = `Job ${job.id} (${job.kind}): ${job.phase}`;
    resultNote.textContent = "A compute job's output is read with the Python client (taphouse jobs).";
    return;
  }
  if (job.phase !== "COMPLETED") {
    clearResult();
    resultTitle.textContent = `Job ${job.id} ended: ${job.phase}`;
    if (job.error) showError(job.error.message);
    return;
  }
  if (job.result && job.result.size > MAX_SHOWN_BYTES) {
    clearResult();
    shownJob = job;
    resultActions.hidden = false;
    keepButton.hidden = !currentUser();
    replace(resultTitle, h("strong", null, `${formatCount(job.rows || 0)} rows`), ` · job ${job.id}`);
    resultNote.textContent = `This result (${formatBytes(job.result.size)}) is larger than the page shows` +
      ` (${formatBytes(MAX_SHOWN_BYTES)}): download it, keep it as a table, or narrow the query.`;
    return;
  }
  resultTitle.textContent = `Loading ${job.rows !== null ? formatCount(job.rows) + " rows of " : "the result of "}${job.id}…`;
  let table: ResultTable;
  try {
    table = await fetchResult(job);
  } catch (e) {
    clearResult();
    resultTitle.textContent = `Job ${job.id}`;
    resultNote.textContent = (e as Error).message;
    return;
  }
  shownJob = job;
  setResult(table);
  replace(resultTitle, h("strong", null, `${formatCount(table.length)} rows`),
    ` · ${table.columns.length} columns · job ${job.id}`);
  const notes: string[] = [];
  if (table.overflow && !table.infos.DEST_TABLE) notes.push("The result was cut at the row limit (MAXREC): raise it or narrow the query.");
  if (table.infos.DEST_TABLE) notes.push(`Kept as ${table.infos.DEST_TABLE} (${formatCount(Number(table.infos.DEST_ROWS || 0))} rows).`);
  resultNote.textContent = notes.join(" ");
  resultActions.hidden = false;
  keepButton.hidden = !currentUser();
}

/** Show a result in the grid, the sky plot and the charts (whichever is in view). */
function setResult(table: ResultTable | null): void {
  grid.setData(table);
  sky.setData(table);
  chart.setData(table);
  viewTabs.hidden = table === null;
  if (table === null) showView("table");
}

async function download(format: string, ext: string): Promise<void> {
  if (!shownJob) return;
  const button = downloads.querySelector(`[data-format="${format}"]`) as HTMLButtonElement;
  button.disabled = true;
  try {
    await downloadResult(shownJob, format, `taphouse-${shownJob.id}.${ext}`);
  } catch (e) {
    showError(`Download failed: ${(e as Error).message}`);
  } finally {
    button.disabled = false;
  }
}

async function keep(): Promise<void> {
  const job = shownJob;
  if (!job || !job.query) return;
  const input = h("input", { id: "keep-name", "aria-label": "table name", placeholder: "table name",
    pattern: "[A-Za-z][A-Za-z0-9_]*", maxlength: 63, required: true });
  const ok = await ask("Keep as a table",
    "Run the query again and store all its rows in your user space as mydb.<name>; later queries can read it.",
    "Keep", { fields: [input] });
  const name = input.value.trim();
  if (!ok || !name) return;
  if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) {
    showError("A table name starts with a letter and has only letters, digits and _.");
    return;
  }
  keepButton.disabled = true;
  resultNote.textContent = `Keeping the rows as mydb.${name}…`;
  try {
    // The shown result stays; the new job (query again, every row into the table) goes
    // to the history and its outcome to the note above the grid.
    const id = await submitJob(job.query, { dest: `mydb.${name}`, maxrec: 0 });
    const done = await follow(id, (j) => history.update(j), () => false);
    if (done.phase !== "COMPLETED") {
      resultNote.textContent = "";
      showError(`Could not keep the rows: ${done.error ? done.error.message : done.phase}`);
      return;
    }
    const info = (await fetchResult(done)).infos;
    if (shownJob === job) {
      resultNote.textContent = `Kept as ${info.DEST_TABLE || "mydb." + name} ` +
        `(${formatCount(Number(info.DEST_ROWS || 0))} rows): query it as mydb.${name}.`;
    }
    await catalog.load();
    void myTables.reload();
  } catch (e) {
    resultNote.textContent = "";
    showError((e as Error).message);
  } finally {
    keepButton.disabled = false;
  }
}

// --- page assembly ------------------------------------------------------------------
document.body.append(topbar, h("div", { class: "layout" },
  h("aside", { class: "sidebar" }, tabs, tabBody),
  h("main", { class: "work" }, h("section", { class: "editor-panel" }, editorHost, runbar, errorBox), results)));

onSessionChange(() => {
  renderUser();
  followToken++;
  current = null;
  setStatus(null);
  clearResult();
  showError(null);
  history.clear();
  myTables.clear();
  workspaces.clear();
  void history.reload();
  void myTables.reload();
  void workspaces.reload();
  void catalog.load().catch((e: ApiError) => showError(`Could not load the tables: ${e.message}`));
});

renderUser();
showPanel("tables");
showView("table");
void myTables.reload();
void workspaces.reload();
void examples.load();
void catalog.load().catch((e: ApiError) => showError(`Could not load the tables: ${e.message}`));
void catalog.loadFunctions().catch(() => undefined);
editor.focus();
// When the editor takes input (the browser tests read this mark).
performance.mark("taphouse-interactive");
document.documentElement.dataset.ready = "1";
