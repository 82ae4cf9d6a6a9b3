// Talking to the taphouse server: the session (token in memory only) and fetch with
// the headers every request carries.

export class ApiError extends Error {
  constructor(message: string, readonly status: number, readonly line: number | null = null,
              readonly column: number | null = null) {
    super(message);
  }
}

interface Session { username: string; token: string; expiresAt: number | null }

let session: Session | null = null;
const listeners: Array<() => void> = [];

/** The logged-in user's name, or null for anonymous use. */
export function currentUser(): string | null {
  return session ? session.username : null;
}

export function onSessionChange(listener: () => void): void {
  listeners.push(listener);
}

function changed(): void {
  for (const listener of listeners) listener();
}

/** A URL of the service relative to the page (works under a path prefix too). */
export function serviceUrl(path: string): string {
  return new URL(path, document.baseURI).toString();
}

/** fetch with ``X-Taphouse: 1`` and, when logged in, the bearer token. The token is
 *  never put in a URL, a cookie or storage: it lives in this module only. */
/** The headers every request to the service carries. */
export function serviceHeaders(): Record<string, string> {
  const headers: Record<string, string> = { "X-Taphouse": "1" };
  if (session) headers.Authorization = `Bearer ${session.token}`;
  return headers;
}

export async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(serviceHeaders())) headers.set(k, v);
  let response: Response;
  try {
    response = await fetch(serviceUrl(path), { ...init, headers, credentials: "omit" });
  } catch (e) {
    throw new ApiError(`the server did not answer (${(e as Error).message})`, 0);
  }
  if (response.status === 401 && session) {
    // The token expired or was revoked elsewhere: back to anonymous, and say so.
    session = null;
    changed();
    throw new ApiError("your login has expired: log in again", 401);
  }
  return response;
}

/** Raise an ApiError with the service's message unless the response is OK. */
export async function check(response: Response): Promise<Response> {
  if (response.ok) return response;
  throw await errorOf(response);
}

export async function errorOf(response: Response): Promise<ApiError> {
  return errorFromText(response.status, response.statusText,
    response.headers.get("content-type") || "", await response.text());
}

/** The ApiError an error response stands for (JSON, DALI VOTable or plain text). */
export function errorFromText(status: number, statusText: string, type: string, text: string): ApiError {
  if (status === 401 && session) {
    session = null;
    changed();
    return new ApiError("your login has expired: log in again", 401);
  }
  if (type.includes("json")) {
    try {
      const body = JSON.parse(text);
      if (body && typeof body.error === "string") return new ApiError(body.error, status);
    } catch { /* not JSON after all */ }
  }
  if (type.includes("xml")) {
    const err = votableError(text);
    if (err) return new ApiError(err.message, status, err.line, err.column);
  }
  if (status === 0 && text) return new ApiError(text, 0);
  return new ApiError(`${status} ${statusText}`.trim(), status);
}

/** The message (and line, column) of a DALI error document. */
export function votableError(xml: string): { message: string; line: number | null; column: number | null } | null {
  const doc = new DOMParser().parseFromString(xml, "application/xml");
  let message: string | null = null;
  let line: number | null = null;
  let column: number | null = null;
  for (const info of Array.from(doc.getElementsByTagNameNS("*", "INFO"))) {
    const name = info.getAttribute("name");
    if (name === "QUERY_STATUS" && info.getAttribute("value") === "ERROR") message = info.textContent || "";
    if (name === "ERROR_LINE") line = Number(info.getAttribute("value")) || null;
    if (name === "ERROR_COLUMN") column = Number(info.getAttribute("value")) || null;
  }
  return message === null ? null : { message: message.trim(), line, column };
}

export async function getJSON<T>(path: string): Promise<T> {
  const response = await check(await call(path));
  return await response.json() as T;
}

export async function sendJSON<T>(method: string, path: string, body: unknown): Promise<T | null> {
  const response = await check(await call(path, {
    method, body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
  }));
  return response.status === 204 ? null : await response.json() as T;
}

export async function login(username: string, password: string): Promise<void> {
  const response = await call("auth/token", {
    method: "POST", body: JSON.stringify({ username, password }),
    headers: { "Content-Type": "application/json" },
  });
  await check(response);
  startSession(await response.json(), username);
  changed();
}

let refreshTimer: number | undefined;

interface TokenAnswer { access_token: string; username?: string; expires_at?: string | null;
                        refresh_before?: string }

function startSession(body: TokenAnswer, username: string): void {
  const expires = body.expires_at ? Date.parse(body.expires_at) : null;
  session = { username: body.username || username, token: body.access_token, expiresAt: expires };
  window.clearTimeout(refreshTimer);
  if (body.refresh_before) {
    // A page left open past the token's lifetime trades it for a new one in time.
    const delay = Math.max(1000, Date.parse(body.refresh_before) - Date.now());
    refreshTimer = window.setTimeout(refresh, Math.min(delay, 2 ** 31 - 1));
  }
}

async function refresh(): Promise<void> {
  const current = session;
  if (!current) return;
  try {
    const response = await check(await call("auth/refresh", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" }));
    if (session === current) startSession(await response.json(), current.username);
  } catch { /* an expired login shows itself on the next request */ }
}

export async function logout(): Promise<void> {
  if (!session) return;
  try {
    await call("auth/logout", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  } finally {
    window.clearTimeout(refreshTimer);
    session = null;
    changed();
  }
}

/** POST form parameters (TAP requests). */
export function form(params: Record<string, string | undefined>): URLSearchParams {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) body.set(k, v);
  return body;
}
