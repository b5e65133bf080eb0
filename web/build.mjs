// Builds the browser app into web/dist/ (gitignored), which the `web` crate embeds at
// compile time: `npm ci && npm run build`, then `cargo build`.
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";

const dist = new URL("./dist/", import.meta.url);
await rm(dist, { recursive: true, force: true });
await mkdir(new URL("assets/", dist), { recursive: true });
await build({
  entryPoints: [new URL("./app/main.js", import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  sourcemap: false,
  outfile: new URL("assets/live.js", dist).pathname,
  logLevel: "warning",
});
await copyFile(new URL("./app/live.css", import.meta.url), new URL("assets/live.css", dist));
await copyFile(new URL("./app/live.html", import.meta.url), new URL("live.html", dist));
console.log("web/dist: live.html, assets/live.js, assets/live.css");
