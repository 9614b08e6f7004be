// Benchmark: the job page with 1,000 frames, in headless Chromium, against
// a real devnet. Prints a table and fails when the page takes a second or
// more to render a 1,000-frame job (the dashboard's target).
//
//   cargo build --bin lumen && (cd gateway/web && npm run bench:job-page)
//
// Two views of the job are measured:
// - the real one: a 1,000-frame job submitted on a devnet with no nodes,
//   so every frame is pending (the page as it first opens on a big job);
// - a finished one: the same job's view with every frame verified, paid,
//   previewed and verified by a second node, served in place of the
//   gateway's answers (Playwright's routing; the shape is the gateway's
//   `JobView`, the values made up), images answered with a small PNG.
// For each: from navigation to the grid painted (the page marks
// `lumen:job-painted` after the first paint that follows a render), the JSON's size, and an update pushed over the
// live stream that changes one frame (the keyed grid rebuilds one card).
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startDevnet } from "../tests/devnet.mjs";
import { makeScene } from "../tests/kit.mjs";
import { installTestWallet, rpcBridge } from "../tests/wallet.mjs";

const FRAMES = Number(process.env.FRAMES ?? 1000);
const TARGET_MS = 1000;
const RUNS = 3;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const WALLET = { uuid: "4f0c6b9e-0a55-4a64-9d2f-6b1a3f2c7e01", name: "Lumen Test Wallet", rdns: "dev.lumen.test-wallet" };
// A 1×1 PNG.
const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5f0c1a50000000049454e44ae426082",
  "hex",
);


/** The finished version of `job`: every frame verified, paid, previewed, checked by a second node. */
function finished(job) {
  const hex = (n, bytes) => "0x" + n.toString(16).padStart(bytes * 2, "0");
  return {
    ...job,
    state: "completed",
    frames: job.frames.map((f, i) => ({
      ...f,
      state: "verified",
      node: hex(0xa000 + (i % 7), 20),
      output_hash: hex(0xb0000 + i, 32),
      verdict: "accepted",
      attempts: 1,
      payout_tx: hex(0xc000 + Math.floor(i / 256), 32),
      payout_owner: hex(0xd000 + (i % 7), 20),
      payout_amount: job.price_per_frame,
      payout_fee: "0",
      verification_payout: {
        node: hex(0xe000 + (i % 5), 20),
        owner: hex(0xf000 + (i % 5), 20),
        amount: job.price_per_frame,
        fee: "0",
        tx: hex(0xc000 + Math.floor(i / 256), 32),
      },
      renders: [
        { task_id: 2 * i + 1, role: "primary", state: "accepted", node: hex(0xa000 + (i % 7), 20), output_hash: hex(0xb0000 + i, 32), failure: null, dispatched_at_ms: 1, finished_at_ms: 2 },
        { task_id: 2 * i + 2, role: "verification", state: "accepted", node: hex(0xe000 + (i % 5), 20), output_hash: hex(0xb0000 + i, 32), failure: null, dispatched_at_ms: 1, finished_at_ms: 2 },
      ],
      preview: true,
    })),
  };
}

async function main() {
  const devnet = await startDevnet({ nodes: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  const rows = [];
  let failed = false;
  try {
    const scene = join(devnet.dir, "big.blend");
    makeScene(scene, { frames: FRAMES, samples: 1 });
    const out = devnet.lumen(["job", "submit", scene, "--verifications", "0"]);
    const id = Number(out.trim().split("\n").at(-1));

    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.exposeFunction("__lumenWalletRpc", rpcBridge(devnet.file.rpc_url));
    await context.addInitScript(installTestWallet, {
      account: devnet.file.artist,
      chainId: devnet.file.chain_id,
      wallets: [WALLET],
    });
    const page = await context.newPage();
    await page.goto(`${devnet.file.gateway_url}/`);
    await page.getByRole("button", { name: "Connect wallet" }).click();
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("signed-in").waitFor();
    const real = await page.evaluate(async (id) => (await fetch(`/api/v1/jobs/${id}`)).json(), id);
    if (real.frames.length !== FRAMES) throw new Error(`the job has ${real.frames.length} frames, not ${FRAMES}`);
    const done = finished(real);

    /** Opens the job page afresh; ms from navigation to the grid rendered with every frame. */
    const load = async () => {
      await page.goto("about:blank");
      await page.goto(`${devnet.file.gateway_url}/#/jobs/${id}`);
      await page.waitForFunction((n) => document.querySelectorAll("li.frame").length === n, FRAMES, { timeout: 30_000 });
      await page.waitForFunction(() => performance.getEntriesByName("lumen:job-painted").length > 0);
      return page.evaluate(() => performance.getEntriesByName("lumen:job-painted")[0].startTime);
    };

    /**
     * Serves `view` for the job and over its stream; once `advance()` is
     * called, every later connection of the stream gets `next` instead. The
     * switch is explicit, not a count of connections: a page still open from
     * the last load, or a stream the page restarts while it loads, must not
     * use up the first view.
     */
    let advance = () => {};
    const route = async (view, next = view) => {
      await page.goto("about:blank");
      await page.unroute("**/api/v1/jobs/*/events");
      await page.unroute(`**/api/v1/jobs/${id}`);
      if (!view) return;
      let current = view;
      advance = () => {
        current = next;
      };
      await page.route(`**/api/v1/jobs/${id}`, (r) => r.fulfill({ contentType: "application/json", body: JSON.stringify(current) }));
      // The body ends after one event: EventSource reconnects (`retry: 200`) and gets the current view.
      await page.route("**/api/v1/jobs/*/events", (r) =>
        r.fulfill({
          status: 200,
          headers: { "content-type": "text/event-stream" },
          body: `retry: 200\nevent: job\ndata: ${JSON.stringify(current)}\n\n`,
        }),
      );
    };
    await page.route("**/api/v1/jobs/*/frames/**", (r) => r.fulfill({ contentType: "image/png", body: PNG }));
    /** The durations of the page's renders so far (ms). */
    const renders = () =>
      page.evaluate(() => {
        const starts = performance.getEntriesByName("lumen:job-render-start");
        const ends = performance.getEntriesByName("lumen:job-rendered");
        return ends.map((end, i) => end.startTime - starts[i].startTime);
      });

    for (const [name, view] of [["pending (real gateway)", null], ["finished (routed view)", done]]) {
      await route(view);
      const times = [];
      for (let i = 0; i < RUNS; i++) times.push(await load());
      // One frame changes: the page gets the whole view again and swaps one card.
      const base = view ?? real;
      const changed = structuredClone(base);
      changed.frames[FRAMES - 1].attempts += 1;
      await route(base, changed);
      await load();
      advance();
      await page.waitForFunction(() => performance.getEntriesByName("lumen:job-rendered").length >= 2, null, { timeout: 10_000 });
      const [first, update] = await renders();
      const bytes = Buffer.byteLength(JSON.stringify(base));
      rows.push({ name, kib: (bytes / 1024).toFixed(0), best: Math.min(...times), worst: Math.max(...times), first, update });
      if (Math.max(...times) >= TARGET_MS) failed = true;
      await route(null);
    }
    await context.close();
  } finally {
    await browser.close();
    await devnet.stop();
  }

  const pad = (text, n) => String(text).padEnd(n);
  console.log(`\njob page, ${FRAMES} frames, headless Chromium (${RUNS} loads each; target < ${TARGET_MS} ms)\n`);
  console.log(
    `${pad("view", 26)}${pad("JSON KiB", 10)}${pad("load best ms", 14)}${pad("load worst ms", 15)}${pad("render ms", 11)}one-frame update ms`,
  );
  for (const r of rows) {
    console.log(
      `${pad(r.name, 26)}${pad(r.kib, 10)}${pad(r.best.toFixed(0), 14)}${pad(r.worst.toFixed(0), 15)}${pad(r.first.toFixed(1), 11)}${r.update.toFixed(1)}`,
    );
  }
  console.log("\nload: navigation start to the first paint of the grid with every frame (the page's `lumen:job-painted` mark);");
  console.log("render: building the page from a view; update: a pushed view with one frame changed (one card rebuilt).");
  if (failed) {
    console.error(`\nFAIL: a load took ${TARGET_MS} ms or more`);
    process.exit(1);
  }
}

await main();
