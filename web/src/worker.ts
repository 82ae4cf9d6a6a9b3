// Fetches and parses a result off the page's thread, so that a big result never
// freezes the page; answers with the table's columns (typed arrays moved, not copied).

import { parseExact, type ResultTable, toColumns, transferables } from "./table";

export interface ResultRequest { url: string; headers: Record<string, string> }

export type ResultAnswer =
  | { ok: true; table: ResultTable }
  | { ok: false; status: number; statusText: string; contentType: string; text: string };

self.onmessage = async (event: MessageEvent<ResultRequest>) => {
  const post = (answer: ResultAnswer, transfer: ArrayBuffer[] = []) =>
    (self as unknown as Worker).postMessage(answer, transfer);
  try {
    const response = await fetch(event.data.url, { headers: event.data.headers, credentials: "omit" });
    const text = await response.text();
    if (!response.ok) {
      post({ ok: false, status: response.status, statusText: response.statusText,
        contentType: response.headers.get("content-type") || "", text });
      return;
    }
    const doc = parseExact(text);
    if (doc.status === "ERROR") {
      post({ ok: false, status: 500, statusText: "", contentType: "application/json",
        text: JSON.stringify({ error: doc.error || "the result is incomplete" }) });
      return;
    }
    const values = toColumns(doc.metadata, doc.data);
    post({ ok: true, table: { columns: doc.metadata, values, length: doc.data.length,
      overflow: !!doc.overflow, infos: doc.infos || {} } }, transferables(values));
  } catch (e) {
    post({ ok: false, status: 0, statusText: "", contentType: "text/plain",
      text: `the result could not be read (${(e as Error).message})` });
  }
};
