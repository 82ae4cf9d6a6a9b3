// Workspaces: named sets of databases, each a TAP service of its own (its URL for
// TOPCAT, pyvo, astroquery). The databases offered are whatever the server lists for
// this user (GET /api/databases, any kind: remote services appear there too).

import { call, check, currentUser, getJSON, sendJSON } from "./api";
import type { Catalog, DatabaseInfo } from "./catalog";
import { ask, field } from "./dialogs";
import { h, replace } from "./dom";

export interface Workspace { name: string; databases: string[]; description: string | null; created: string | null; tap_url: string }

const KIND_TITLES: Record<string, string> = {
  catalogue: "Catalogues", user: "Shared with you", remote: "Remote TAP services",
};

const NAME = /^[a-z][a-z0-9_]*$/;

/** Put text on the clipboard (the Clipboard API where the page may use it, else the
 *  selection of a text field). */
export async function copyText(text: string, from?: HTMLInputElement): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (!from) return false;
    from.focus();
    from.select();
    return document.execCommand("copy");
  }
}

export class Workspaces {
  readonly element: HTMLElement;
  private list: HTMLElement;
  private message: HTMLElement;
  private newButton: HTMLButtonElement;

  constructor(private catalog: Catalog) {
    this.list = h("ul", { class: "workspace-list", "aria-label": "your workspaces" });
    this.message = h("p", { class: "small", role: "status" });
    this.newButton = h("button", { type: "button", class: "small primary", id: "new-workspace", onclick: () => void this.create() }, "New workspace…");
    this.element = h("div", { class: "workspaces" },
      h("div", { class: "panel-head" }, h("h2", null, "Workspaces"), this.newButton),
      h("p", { class: "muted small intro" },
        "A workspace is a TAP service of its own that sees only the databases you choose, and your tables. " +
        "Give its URL to TOPCAT, pyvo or astroquery."),
      this.message, this.list);
  }

  async reload(): Promise<void> {
    this.newButton.disabled = !currentUser();
    if (!currentUser()) {
      replace(this.list);
      this.message.textContent = "Log in to create workspaces.";
      return;
    }
    try {
      const items = await getJSON<Workspace[]>("api/workspaces");
      replace(this.list, ...items.map((w) => this.item(w)));
      this.message.textContent = items.length ? "" : "No workspaces yet.";
    } catch (e) {
      this.message.textContent = `Could not load your workspaces: ${(e as Error).message}`;
    }
  }

  clear(): void {
    replace(this.list);
  }

  private item(w: Workspace): HTMLElement {
    const url = h("input", { class: "tap-url", readonly: true, "aria-label": `TAP URL of ${w.name}`, value: w.tap_url });
    const copied = h("span", { class: "small copied", role: "status" });
    const copy = h("button", { type: "button", class: "small", title: "copy the URL", "data-action": "copy" }, "Copy");
    copy.addEventListener("click", async () => {
      copied.textContent = await copyText(w.tap_url, url) ? "Copied" : "Select and copy the URL";
      window.setTimeout(() => { copied.textContent = ""; }, 2000);
    });
    url.addEventListener("focus", () => url.select());
    const li = h("li", { class: "workspace" },
      h("div", { class: "workspace-head" }, h("strong", { class: "workspace-name" }, w.name),
        h("button", { type: "button", class: "small danger", "data-action": "delete", title: "delete the workspace (not its databases)",
          onclick: () => void this.remove(w) }, "Delete")),
      w.description ? h("div", { class: "small muted" }, w.description) : null,
      h("div", { class: "chips" }, ...(w.databases.length ? w.databases : []).map((d) => h("span", { class: "chip" }, d)),
        h("span", { class: "chip own" }, "mydb")),
      h("div", { class: "url-row" }, url, copy, copied));
    li.dataset.workspace = w.name;
    return li;
  }

  private choices(): DatabaseInfo[] {
    return this.catalog.databases.filter((d) => d.name !== this.catalog.userSchema);
  }

  private async create(): Promise<void> {
    const name = h("input", { id: "workspace-name", "aria-label": "workspace name", maxlength: 63, autocomplete: "off", spellcheck: "false", placeholder: "e.g. gaia_only" });
    const description = h("input", { id: "workspace-description", "aria-label": "description", placeholder: "optional" });
    const boxes: HTMLInputElement[] = [];
    const groups = new Map<string, HTMLElement[]>();
    for (const d of this.choices()) {
      const box = h("input", { type: "checkbox", value: d.name, "data-db": d.name });
      boxes.push(box);
      const label = h("label", { class: "choice", title: d.description || d.name }, box, h("span", { class: "choice-name" }, d.name),
        d.description ? h("span", { class: "choice-desc" }, d.description) : null);
      const list = groups.get(d.kind) || [];
      list.push(label);
      groups.set(d.kind, list);
    }
    const choiceList = h("div", { class: "choices" }, ...[...groups].map(([kind, labels]) =>
      h("fieldset", null, h("legend", null, KIND_TITLES[kind] || kind), ...labels)));
    const ok = await ask("New workspace", "", "Create", {
      fields: [field("Name", name), field("Databases", choiceList, "your own tables (mydb) are always in"),
        field("Description", description)],
      validate: () => {
        if (!NAME.test(name.value.trim())) return "A workspace name starts with a lower-case letter and has only lower-case letters, digits and _.";
        if (!boxes.some((b) => b.checked)) return "Choose at least one database.";
        return null;
      },
    });
    if (!ok) return;
    try {
      await sendJSON("POST", "api/workspaces", { name: name.value.trim(), description: description.value.trim(),
        databases: boxes.filter((b) => b.checked).map((b) => b.value) });
      await this.reload();
      this.message.textContent = `Created the workspace ${name.value.trim()}.`;
    } catch (e) {
      this.message.textContent = `Could not create the workspace: ${(e as Error).message}`;
    }
  }

  private async remove(w: Workspace): Promise<void> {
    if (!await ask(`Delete the workspace ${w.name}?`, "Its TAP URL stops working; the databases and your tables stay.",
      "Delete", { danger: true })) return;
    try {
      await check(await call(`api/workspaces/${encodeURIComponent(w.name)}`, { method: "DELETE" }));
      await this.reload();
      this.message.textContent = `Deleted the workspace ${w.name}.`;
    } catch (e) {
      this.message.textContent = `Could not delete the workspace: ${(e as Error).message}`;
    }
  }
}
