// Builds the dashboard into ../assets/dist (app.js, app.css): bundled,
// minified, no source maps, the same bytes for the same sources (the
// gateway embeds them at compile time, and `scripts/test.sh` fails when the
// committed bundle differs from a fresh build).
import { build } from "esbuild";
import { statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const outdir = fileURLToPath(new URL("../assets/dist", import.meta.url));

await build({
  absWorkingDir: here,
  entryPoints: [
    { in: "src/main.ts", out: "app" },
    { in: "src/app.css", out: "app" },
  ],
  outdir,
  bundle: true,
  minify: true,
  format: "iife",
  platform: "browser",
  // Browsers of the last few years: EIP-6963 wallets need no older.
  target: ["chrome111", "firefox114", "safari16.4"],
  sourcemap: false,
  legalComments: "eof",
  charset: "utf8",
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
});

for (const name of ["app.js", "app.css"]) {
  const { size } = statSync(`${outdir}/${name}`);
  console.log(`gateway/assets/dist/${name}: ${(size / 1024).toFixed(1)} KiB`);
}
