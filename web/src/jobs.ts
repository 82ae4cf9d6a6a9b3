// Queries as UWS jobs: created and aborted through /tap/async (the standard), watched
// and listed through the JSON jobs API (/api/jobs).

import { ApiError, call, check, currentUser, errorOf, form, getJSON } from "./api";

export interface JobInfo {
  id: string; kind: string; phase: string; query: string | null; dest: string | null;
  maxrec: string | null; responseformat: string | null;
  created: string | null; started: string | null; ended: string | null;
  elapsed: number | null; rows: number | null; overflow: boolean | null;
  result: { name: string; mime: string; size: number } | null;
  error: { message: string; line: number | null; column: number | null } | null;
}

export const ACTIVE = new Set(["PENDING", "QUEUED", "EXECUTING"]);

export interface ColumnMeta {
  name: string; datatype: string; arraysize: string | null; xtype: string | null;
  unit: string | null; ucd: string | null; description: string | null;
}

export interface ResultTable {
  columns: ColumnMeta[]; rows: unknown[][]; overflow: boolean; infos: Record<string, string>;
}

export interface JobOptions { maxrec?: number; dest?: string }

/** Create a job for ``query`` and start it; returns its id. */
export async function submitJob(query: string, options: JobOptions = {}): Promise<string> {
  const response = await call("tap/async", {
    method: "POST",
    body: form({
      REQUEST: "doQuery", LANG: "ADQL", QUERY: query, RESPONSEFORMAT: "json", PHASE: "RUN",
      MAXREC: options.maxrec !== undefined ? String(options.maxrec) : undefined,
      DEST: options.dest, DEST_MODE: options.dest ? "create" : undefined,
    }),
  });
  await check(response);
  // fetch followed the 303 to the job: its id is the last part of the URL.
  const id = new URL(response.url).pathname.split("/").pop() || "";
  if (!/^[\w-]+$/.test(id)) throw new ApiError("the service did not say which job it created", 500);
  return id;
}

export function getJob(id: string, wait?: number, phase?: string): Promise<JobInfo> {
  const params = new URLSearchParams();
  if (wait !== undefined) params.set("wait", String(wait));
  if (phase) params.set("phase", phase);
  const q = params.toString();
  return getJSON<JobInfo>(`api/jobs/${encodeURIComponent(id)}${q ? "?" + q : ""}`);
}

export async function abortJob(id: string): Promise<void> {
  await check(await call(`tap/async/${encodeURIComponent(id)}/phase`, {
    method: "POST", body: form({ PHASE: "ABORT" }) }));
}

export async function deleteJob(id: string): Promise<void> {
  await check(await call(`api/jobs/${encodeURIComponent(id)}`, { method: "DELETE" }));
}

export function listJobs(): Promise<JobInfo[]> {
  return getJSON<JobInfo[]>("api/jobs?last=200");
}

/** Follow a job until it ends; ``progress`` sees every phase change. */
export async function follow(id: string, progress: (job: JobInfo) => void,
                             stopped: () => boolean): Promise<JobInfo> {
  let job = await getJob(id);
  progress(job);
  while (ACTIVE.has(job.phase) && !stopped()) {
    job = await getJob(id, 10, job.phase);
    progress(job);
  }
  return job;
}

/** The rows of a completed job, as the JSON result document (or, for a job created
 *  in another format by another client, from the job's table in the user space). */
export async function fetchResult(job: JobInfo): Promise<ResultTable> {
  let response: Response;
  if (job.result && job.result.mime.includes("json")) {
    response = await call(`tap/async/${encodeURIComponent(job.id)}/results/${encodeURIComponent(job.result.name)}`);
  } else if (currentUser()) {
    response = await call(`api/usertables/job_${encodeURIComponent(job.id)}/data?format=json`);
  } else {
    throw new ApiError("this job's result is not in a format the page can show: download it", 400);
  }
  if (!response.ok) throw await errorOf(response);
  const doc = parseExact(await response.text());
  if (doc.status === "ERROR") throw new ApiError(doc.error || "the result is incomplete", 500);
  return { columns: doc.metadata, rows: doc.data, overflow: !!doc.overflow, infos: doc.infos || {} };
}

/** JSON.parse keeping integers beyond 2^53 exact (Gaia's source_id has 19 digits): they
 *  become BigInt, through the reviver's access to the source text where the browser
 *  offers it (elsewhere they are rounded, as JSON.parse does). */
export function parseExact(text: string): any {
  return JSON.parse(text, (_key: string, value: unknown, context?: { source?: string }) => {
    if (typeof value === "number" && !Number.isSafeInteger(value) && Number.isInteger(value)
        && context?.source && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
}

/** Download a job's result in ``format`` as a file, with the bearer header (never a
 *  token in a URL): the job's table when the user space has it, else the query again. */
export async function downloadResult(job: JobInfo, format: string, filename: string): Promise<void> {
  let response: Response | null = null;
  if (currentUser()) {
    response = await call(`api/usertables/job_${encodeURIComponent(job.id)}/data?format=${encodeURIComponent(format)}`);
    if (response.status === 404) response = null;
  }
  if (response === null) {
    response = await call("tap/sync", { method: "POST", body: form({
      REQUEST: "doQuery", LANG: "ADQL", QUERY: job.query || "", RESPONSEFORMAT: format,
      MAXREC: job.maxrec || undefined }) });
  }
  await check(response);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
