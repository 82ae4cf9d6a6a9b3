// The ADQL editor: CodeMirror 6 with the SQL language in an ADQL dialect, completion of
// schemas, tables, columns and functions from the service, errors at line and column.

import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap, completionStatus,
  startCompletion, type Completion, type CompletionContext, type CompletionResult } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { sql, type SQLNamespace } from "@codemirror/lang-sql";
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { setDiagnostics } from "@codemirror/lint";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { drawSelection, EditorView, highlightActiveLine, highlightActiveLineGutter, keymap,
  lineNumbers, placeholder } from "@codemirror/view";

import { ADQL, referencedTables } from "./adql";
import type { Catalog, ColumnInfo, TableInfo } from "./catalog";
import { formatCount, h } from "./dom";

export interface QueryEditor {
  view: EditorView;
  text(): string;
  setText(text: string): void;
  /** Put ``text`` where the cursor is (in place of the selection). */
  insert(text: string): void;
  showError(message: string, line: number | null, column: number | null): void;
  clearError(): void;
  focus(): void;
}

function tableInfo(t: TableInfo): () => Node {
  return () => h("div", { class: "cm-info" },
    h("div", { class: "cm-info-title" }, t.qualified_name),
    t.nrows !== null ? h("div", { class: "cm-info-meta" }, `${formatCount(t.nrows)} rows`) : null,
    t.description ? h("div", null, t.description) : null);
}

function columnInfo(table: TableInfo, c: ColumnInfo): () => Node {
  return () => h("div", { class: "cm-info" },
    h("div", { class: "cm-info-title" }, `${table.qualified_name}.${c.adql_name}`),
    h("div", { class: "cm-info-meta" },
      [c.datatype, c.unit ? `[${c.unit}]` : "", c.ucd || ""].filter(Boolean).join("  ")),
    c.description ? h("div", null, c.description) : null);
}

function columnCompletion(table: TableInfo, c: ColumnInfo): Completion {
  return { label: c.adql_name, type: "property", detail: c.unit || undefined, info: columnInfo(table, c) };
}

/** lang-sql's completion namespace: schema -> table -> columns (``mydb`` too). */
function namespace(catalog: Catalog): SQLNamespace {
  const ns: Record<string, { self: Completion; children: Record<string, SQLNamespace> }> = {};
  for (const d of catalog.databases) {
    ns[d.name] = { self: { label: d.name, type: "namespace", detail: d.kind === "user" ? "your tables" : undefined,
      info: d.description || undefined }, children: {} };
  }
  if (catalog.userSchema && ns[catalog.userSchema]) {
    ns.mydb = { self: { label: "mydb", type: "namespace", detail: "your tables" }, children: ns[catalog.userSchema].children };
  }
  for (const t of catalog.tables.values()) {
    const schema = ns[t.database];
    if (!schema) continue;
    schema.children[t.name] = {
      self: { label: t.name, type: "type", detail: t.nrows !== null ? `${formatCount(t.nrows)} rows` : undefined,
        info: tableInfo(t) },
      children: (t.columns || []).map((c) => columnCompletion(t, c)),
    };
  }
  return ns;
}

/** Columns of the tables the query reads and the service's functions, for a name
 *  typed without a qualifier. */
function columnsAndFunctions(catalog: Catalog) {
  return async (context: CompletionContext): Promise<CompletionResult | null> => {
    const word = context.matchBefore(/[A-Za-z_][\w]*/);
    if (!word || (word.from === word.to && !context.explicit)) return null;
    if (word.from > 0 && context.state.sliceDoc(word.from - 1, word.from) === ".") return null;
    const names = referencedTables(context.state.doc.toString());
    await catalog.ensureColumns(names);
    if (context.aborted) return null;
    const options: Completion[] = [];
    const seen = new Set<string>();
    for (const name of names) {
      const t = catalog.table(name);
      for (const c of t?.columns || []) {
        if (seen.has(c.adql_name)) continue;
        seen.add(c.adql_name);
        options.push({ ...columnCompletion(t as TableInfo, c), boost: 2 });
      }
    }
    for (const f of catalog.functions) {
      options.push({ label: f.name, type: "function", detail: f.signature,
        info: f.description || undefined, apply: f.name, boost: -1 });
    }
    return { from: word.from, options, validFor: /^[\w]*$/ };
  };
}

export function createEditor(parent: HTMLElement, catalog: Catalog, onRun: () => void): QueryEditor {
  const language = new Compartment();
  const config = () => [
    sql({ dialect: ADQL, schema: namespace(catalog), upperCaseKeywords: true }),
    ADQL.language.data.of({ autocomplete: columnsAndFunctions(catalog) }),
  ];
  let timer: number | undefined;
  let errorShown = false;
  const run = () => { onRun(); return true; };
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: "",
      extensions: [
        lineNumbers(), highlightActiveLineGutter(), history(), drawSelection(), indentOnInput(),
        bracketMatching(), closeBrackets(), highlightActiveLine(),
        autocompletion({ activateOnTyping: true, icons: true }),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        placeholder("Write an ADQL query, or pick an example. Ctrl-Enter runs it."),
        Prec.highest(keymap.of([{ key: "Mod-Enter", run }, { key: "Ctrl-Enter", run }])),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap]),
        language.of(config()),
        EditorView.lineWrapping,
        // The editor's own styles go in a <style> element: allowed by the page's
        // Content-Security-Policy through the nonce the server put in this response.
        EditorView.cspNonce.of(document.querySelector<HTMLMetaElement>("meta[name=csp-nonce]")?.content || ""),
        EditorView.contentAttributes.of({ "aria-label": "ADQL query", spellcheck: "false" }),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged) return;
          if (errorShown) window.setTimeout(() => editor.clearError(), 0);
          loadSchemaBeforeCursor();
          // Columns of the tables the query names, loaded shortly after typing stops.
          window.clearTimeout(timer);
          timer = window.setTimeout(() => {
            catalog.ensureColumns(referencedTables(view.state.doc.toString()));
          }, 250);
        }),
      ],
    }),
  });
  // The completion's namespace follows the catalogue, rebuilt at most once per burst of
  // changes (a database's list arrives a page at a time).
  let pending: number | undefined;
  const refresh = () => {
    window.clearTimeout(pending);
    pending = undefined;
    view.dispatch({ effects: language.reconfigure(config()) });
  };
  catalog.onChange(() => {
    if (pending === undefined) pending = window.setTimeout(refresh, 30);
  });

  // Tables are listed per database when first needed: typing "schema." loads that
  // database's tables, then the completion opens again with them.
  function schemaBeforeCursor(): string | null {
    const head = view.state.selection.main.head;
    const line = view.state.doc.lineAt(head);
    const m = /([A-Za-z_][\w]*)\.[\w]*$/.exec(line.text.slice(0, head - line.from));
    return m ? m[1].toLowerCase() : null;
  }

  function loadSchemaBeforeCursor(): void {
    const schema = schemaBeforeCursor();
    if (!schema || !catalog.database(schema) || catalog.listed(schema).complete) return;
    void catalog.ensureTables(schema).then(() => {
      if (view.hasFocus && schemaBeforeCursor() === schema && completionStatus(view.state) !== "active") {
        refresh();
        startCompletion(view);
      }
    }).catch(() => undefined);
  }

  const editor: QueryEditor = {
    view,
    text: () => view.state.doc.toString(),
    setText(text: string) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text },
        selection: { anchor: text.length } });
    },
    showError(message, line, column) {
      const doc = view.state.doc;
      if (!line || line < 1 || line > doc.lines) return;
      const l = doc.line(line);
      const from = Math.min(l.from + Math.max(0, (column || 1) - 1), l.to);
      // The token at the position: a quoted identifier or string, or a (dotted) name.
      const word = /^("(?:[^"]|"")*"|'(?:[^']|'')*'|[\w.]+)/.exec(doc.sliceString(from, l.to));
      const to = word ? from + word[0].length : Math.min(from + 1, l.to);
      view.dispatch(setDiagnostics(view.state, [{ from, to, severity: "error", message }]));
      errorShown = true;
      view.dispatch({ selection: { anchor: from }, scrollIntoView: true });
    },
    clearError() {
      errorShown = false;
      view.dispatch(setDiagnostics(view.state, []));
    },
    insert(text: string) {
      const range = view.state.selection.main;
      // A name typed right after another word gets a space between them.
      if (/[\w*)"]$/.test(view.state.sliceDoc(Math.max(0, range.from - 1), range.from))) text = " " + text;
      view.dispatch({ changes: { from: range.from, to: range.to, insert: text },
        selection: { anchor: range.from + text.length }, scrollIntoView: true });
      view.focus();
    },
    focus: () => view.focus(),
  };
  return editor;
}
