// Queries as UWS jobs: created and aborted through /tap/async (the standard), watched
// and listed through the JSON jobs API (/api/jobs).

import { ApiError, call, check, currentUser, errorFromText, form, getJSON, serviceHeaders, serviceUrl } from "./api";
import type { ResultTable } from "./table";
import type { ResultAnswer, ResultRequest } from "./worker";

export interface JobInfo {
  id: string; kind: string; phase: string; query: string | null; dest: string | null;
  maxrec: string | null; responseformat: string | null;
  created: string | null; started: string | null; ended: string | null;
  elapsed: number | null; rows: number | null; overflow: boolean | null;
  result: { name: string; mime: string; size: number } | null;
  error: { message: string; line: number | null; column: number | null } | null;
}

export const ACTIVE = new Set(["PENDING", "QUEUED", "EXECUTING"]);

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
 *  in another format by another client, from the job's table in the user space),
 *  fetched and parsed in a worker. */
export async function fetchResult(job: JobInfo): Promise<ResultTable> {
  let path: string;
  if (job.result && job.result.mime.includes("json")) {
    path = `tap/async/${encodeURIComponent(job.id)}/results/${encodeURIComponent(job.result.name)}`;
  } else if (currentUser()) {
    path = `api/usertables/job_${encodeURIComponent(job.id)}/data?format=json`;
  } else {
    throw new ApiError("this job's result is not in a format the page can show: download it", 400);
  }
  const worker = new Worker(serviceUrl("static/worker.js"), { type: "module" });
  try {
    const answer = await new Promise<ResultAnswer>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<ResultAnswer>) => resolve(e.data);
      worker.onerror = (e) => reject(new ApiError(`the result could not be read (${e.message})`, 0));
      const request: ResultRequest = { url: serviceUrl(path), headers: serviceHeaders() };
      worker.postMessage(request);
    });
    if (!answer.ok) throw errorFromText(answer.status, answer.statusText, answer.contentType, answer.text);
    return answer.table;
  } finally {
    worker.terminate();
  }
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
