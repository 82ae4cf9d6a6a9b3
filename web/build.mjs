// Build the page into src/taphouse/web/static (or --outdir DIR): app.js, app.css,
// index.html, favicon.svg and the licences of the bundled packages. The output depends
// only on the sources and the locked packages, so a rebuild compares byte for byte.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const at = args.indexOf("--outdir");
const outdir = resolve(at >= 0 ? args[at + 1] : join(here, "..", "src", "taphouse", "web", "static"));

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

const result = await build({
  entryPoints: { app: join(here, "src", "main.ts"), worker: join(here, "src", "worker.ts") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome109", "firefox115", "safari16"],
  outdir,
  legalComments: "none",
  charset: "utf8",
  metafile: true,
  logLevel: "warning",
});

copyFileSync(join(here, "index.html"), join(outdir, "index.html"));
copyFileSync(join(here, "favicon.svg"), join(outdir, "favicon.svg"));

// The licences of every package whose code is in the bundle, in a stable order.
const packages = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) packages.add(m[1]);
}
const parts = ["Third-party code in app.js (all MIT licensed unless stated below)\n"];
for (const name of [...packages].sort()) {
  const dir = join(here, "node_modules", name);
  const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = readdirSync(dir).sort().find((f) => /^licen[cs]e/i.test(f));
  parts.push(`\n== ${name} ${meta.version} (${meta.license}) ==\n`);
  if (file) parts.push(readFileSync(join(dir, file), "utf8").trim() + "\n");
}
writeFileSync(join(outdir, "LICENSES.txt"), parts.join(""));
