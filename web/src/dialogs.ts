// In-page dialogs (<dialog>): never the browser's alert/confirm/prompt.

import { type Child, h } from "./dom";

export interface AskOptions {
  /** Fields shown under the text (inputs, labels...); the first input gets the focus. */
  fields?: Child[];
  /** Style the confirm button as a destructive action. */
  danger?: boolean;
  /** Checked before the dialog closes on confirm: a message keeps it open. */
  validate?: () => string | null;
}

/** Ask a question; resolves true when confirmed, false when cancelled. */
export function ask(title: string, text: string, confirm: string, options: AskOptions = {}): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "dialog" });
    const done = (answer: boolean) => { dialog.close(); dialog.remove(); resolve(answer); };
    const ok = h("button", { type: "submit", class: options.danger ? "primary danger-primary" : "primary", id: "dialog-ok" }, confirm);
    const problem = h("p", { class: "dialog-problem", role: "alert", hidden: true });
    const formEl = h("form", { method: "dialog" },
      h("h3", null, title), text ? h("p", null, text) : null, ...(options.fields || []), problem,
      h("div", { class: "dialog-buttons" },
        h("button", { type: "button", id: "dialog-cancel", onclick: () => done(false) }, "Cancel"), ok));
    formEl.addEventListener("submit", (e) => {
      e.preventDefault();
      const message = options.validate ? options.validate() : null;
      problem.hidden = !message;
      problem.textContent = message || "";
      if (!message) done(true);
    });
    dialog.addEventListener("cancel", () => done(false));
    dialog.appendChild(formEl);
    document.body.appendChild(dialog);
    dialog.showModal();
    (formEl.querySelector<HTMLElement>("input, textarea, select") || ok).focus();
  });
}

/** A labelled field for a dialog. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), control,
    hint ? h("span", { class: "field-hint" }, hint) : null);
}
