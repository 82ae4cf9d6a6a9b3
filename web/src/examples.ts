// The service's examples (DALI /examples, RDFa): one click puts a query in the editor.

import { call, check } from "./api";
import { h, replace } from "./dom";

export interface Example { id: string; name: string; description: string; query: string }

export async function loadExamples(): Promise<Example[]> {
  const response = await check(await call("tap/examples"));
  // Parsed as an inert document: only text is read from it.
  const doc = new DOMParser().parseFromString(await response.text(), "application/xhtml+xml");
  const out: Example[] = [];
  for (const el of Array.from(doc.querySelectorAll("[typeof~='example']"))) {
    const query = el.querySelector("[property='query']")?.textContent?.trim();
    if (!query) continue;
    const name = el.querySelector("[property='name']")?.textContent?.trim() || el.getAttribute("id") || "example";
    const description = Array.from(el.querySelectorAll("p")).map((p) => p.textContent || "").join(" ").trim();
    out.push({ id: el.getAttribute("id") || name, name, description, query });
  }
  return out;
}

export function examplesPanel(use: (query: string) => void): { element: HTMLElement; load(): Promise<void> } {
  const list = h("ul", { class: "examples" });
  const element = h("div", null, h("div", { class: "panel-head" }, h("h2", null, "Examples")), list);
  return {
    element,
    async load() {
      try {
        const examples = await loadExamples();
        replace(list, ...examples.map((ex) => h("li", null,
          h("button", { type: "button", class: "example", "data-example": ex.id,
            title: `${ex.description}\n\n${ex.query}`.trim(),
            onclick: () => use(ex.query) },
          h("span", { class: "example-name" }, ex.name),
          ex.description ? h("span", { class: "example-description" }, ex.description) : null))));
      } catch (e) {
        replace(list, h("li", { class: "muted" }, `No examples: ${(e as Error).message}`));
      }
    },
  };
}
