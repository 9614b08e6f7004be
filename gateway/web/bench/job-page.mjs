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
//   previewed and verified by a second node (the shape is the gateway's
//   `JobView`, the values made up), served by a small HTTP proxy in front of
//   the gateway that answers the job's view, its stream and its images (a
//   1×1 PNG) itself and passes everything else on. A real server, not
//   Playwright's routing: intercepting requests through the DevTools
//   protocol costs more than the page does, and would be measured with it.
// For each: from navigation to the grid painted (the page marks
// `lumen:job-painted` after the first paint that follows a render), the JSON's size, and an update pushed over the
// live stream that changes one frame (the keyed grid rebuilds one card).
import { createServer, request as forwardRequest } from "node:http";
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

/**
 * A proxy in front of the gateway: while `serve(view)` is set it answers
 * job `id`'s view, its live stream (one event, then the body ends and
 * EventSource reconnects after `retry`) and its frames itself; everything
 * else (the page, its assets, the session, the change feed) goes to the
 * gateway. The session cookie is the gateway's: cookies do not tell ports
 * apart.
 */
async function startProxy(gatewayUrl, id) {
  const upstream = new URL(gatewayUrl);
  let json = null;
  const server = createServer((req, res) => {
    const path = req.url.split("?")[0];
    if (json !== null && path === `/api/v1/jobs/${id}`) {
      res.writeHead(200, { "content-type": "application/json" }).end(json);
    } else if (json !== null && path === `/api/v1/jobs/${id}/events`) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
      res.end(`retry: 200\nevent: job\ndata: ${json}\n\n`);
    } else if (json !== null && path.startsWith(`/api/v1/jobs/${id}/frames/`)) {
      res.writeHead(200, { "content-type": "image/png", "cache-control": "no-store" }).end(PNG);
    } else {
      const forward = forwardRequest(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
        (answer) => {
          res.writeHead(answer.statusCode, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on("error", () => res.destroy());
      req.pipe(forward);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** Answers with `view` from now on (null: the gateway answers). */
    serve(view) {
      json = view === null ? null : JSON.stringify(view);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
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

    const proxy = await startProxy(devnet.file.gateway_url, id);
    /** Opens the job page at `origin` afresh; ms from navigation to the grid rendered with every frame. */
    const load = async (origin) => {
      await page.goto("about:blank");
      await page.goto(`${origin}/#/jobs/${id}`);
      await page.waitForFunction((n) => document.querySelectorAll("li.frame").length === n, FRAMES, { timeout: 30_000 });
      await page.waitForFunction(() => performance.getEntriesByName("lumen:job-painted").length > 0);
      return page.evaluate(() => performance.getEntriesByName("lumen:job-painted")[0].startTime);
    };
    /** The durations of the page's renders so far (ms). */
    const renders = () =>
      page.evaluate(() => {
        const starts = performance.getEntriesByName("lumen:job-render-start");
        const ends = performance.getEntriesByName("lumen:job-rendered");
        return ends.map((end, i) => end.startTime - starts[i].startTime);
      });

    try {
      for (const [name, view] of [["pending (real gateway)", null], ["finished (proxied view)", done]]) {
        proxy.serve(view);
        const origin = view ? proxy.url : devnet.file.gateway_url;
        const times = [];
        for (let i = 0; i < RUNS; i++) times.push(await load(origin));
        // One frame changes: the page gets the whole view again (from the
        // proxy, on the stream's next reconnection) and swaps one card.
        const base = view ?? real;
        const changed = structuredClone(base);
        changed.frames[FRAMES - 1].attempts += 1;
        proxy.serve(base);
        await load(proxy.url);
        proxy.serve(changed);
        await page.waitForFunction(() => performance.getEntriesByName("lumen:job-rendered").length >= 2, null, { timeout: 10_000 });
        const [first, update] = await renders();
        const bytes = Buffer.byteLength(JSON.stringify(base));
        rows.push({ name, kib: (bytes / 1024).toFixed(0), best: Math.min(...times), worst: Math.max(...times), first, update });
        if (Math.max(...times) >= TARGET_MS) failed = true;
      }
    } finally {
      await page.goto("about:blank");
      await proxy.close();
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
