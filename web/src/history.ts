// The job history: the user's jobs from GET /api/jobs (newest first), or, for anonymous
// use, the jobs made in this page; re-run, edit, delete, open.

import { ApiError, currentUser } from "./api";
import { formatCount, formatSeconds, formatTime, h, replace } from "./dom";
import { ACTIVE, deleteJob, type JobInfo, listJobs } from "./jobs";

export interface HistoryActions {
  open(job: JobInfo): void;
  edit(job: JobInfo): void;
  rerun(job: JobInfo): void;
  deleted(job: JobInfo): void;
}

export class JobHistory {
  readonly element: HTMLElement;
  private list: HTMLElement;
  private message: HTMLElement;
  private jobs: JobInfo[] = [];
  private selected: string | null = null;

  constructor(private actions: HistoryActions) {
    this.list = h("ol", { class: "history-list", "aria-label": "job history" });
    this.message = h("p", { class: "muted small" });
    this.element = h("div", { class: "history" },
      h("div", { class: "panel-head" }, h("h2", null, "History"),
        h("button", { type: "button", class: "small", onclick: () => this.reload() }, "Refresh")),
      this.message, this.list);
  }

  /** Reload from the server (logged in) or keep the page's own list (anonymous). */
  async reload(): Promise<void> {
    if (!currentUser()) {
      this.render();
      return;
    }
    try {
      this.jobs = await listJobs();
      this.render();
    } catch (e) {
      this.message.textContent = `Could not load the history: ${(e as Error).message}`;
    }
  }

  clear(): void {
    this.jobs = [];
    this.selected = null;
    this.render();
  }

  /** A job's new state (added at the top if new). */
  update(job: JobInfo): void {
    const i = this.jobs.findIndex((j) => j.id === job.id);
    if (i >= 0) this.jobs[i] = job;
    else this.jobs.unshift(job);
    this.render();
  }

  select(id: string | null): void {
    this.selected = id;
    for (const item of Array.from(this.list.children)) {
      item.classList.toggle("selected", (item as HTMLElement).dataset.job === id);
    }
  }

  private render(): void {
    this.message.textContent = currentUser()
      ? (this.jobs.length ? "" : "No jobs yet: run a query.")
      : "Anonymous: this list holds the jobs run from this page. Log in to keep a history.";
    replace(this.list, ...this.jobs.map((job) => this.item(job)));
  }

  private item(job: JobInfo): HTMLElement {
    const phase = job.phase.toLowerCase();
    const facts: string[] = [formatTime(job.created)];
    if (job.elapsed !== null && !ACTIVE.has(job.phase)) facts.push(formatSeconds(job.elapsed));
    if (job.dest) facts.push(`rows kept as ${job.dest}`);
    else if (job.rows !== null) facts.push(`${formatCount(job.rows)} rows${job.overflow ? " (MAXREC)" : ""}`);
    const del = async () => {
      try {
        await deleteJob(job.id);
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) {
          this.message.textContent = `Could not delete ${job.id}: ${(e as Error).message}`;
          return;
        }
      }
      this.jobs = this.jobs.filter((j) => j.id !== job.id);
      this.render();
      this.actions.deleted(job);
    };
    const li = h("li", { class: "history-item" + (job.id === this.selected ? " selected" : "") },
      h("button", { type: "button", class: "history-open", title: "show this job's result",
        onclick: () => this.actions.open(job) },
      h("span", { class: `phase phase-${phase}` }, job.phase),
      job.kind !== "tap" ? h("span", { class: "kind" }, job.kind) : null,
      h("code", { class: "history-query" }, job.query || `(a ${job.kind} job)`),
      h("span", { class: "history-facts" }, facts.join(" · "))),
      h("div", { class: "history-actions" },
        job.query ? h("button", { type: "button", class: "small", title: "put the query in the editor", onclick: () => this.actions.edit(job) }, "Edit") : null,
        job.query ? h("button", { type: "button", class: "small", title: "run the query again", onclick: () => this.actions.rerun(job) }, "Re-run") : null,
        h("button", { type: "button", class: "small danger", title: "delete the job and its result", onclick: del }, "Delete")));
    li.dataset.job = job.id;
    return li;
  }
}
