// The dashboard in a real browser against a real devnet: headless Debian
// Chromium driven by playwright-core, a test wallet injected as an EIP-1193
// provider that forwards to the devnet's Anvil (real signatures), the
// gateway and chain of `lumen devnet`. Screenshots of the main screens go to
// docs/screenshots (LUMEN_SCREENSHOT_DIR to change).
//
//   cargo build --bin lumen && (cd gateway/web && npm run test:browser)
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { blake3 } from "@noble/hashes/blake3";
import { decodeEventLog, getAddress, numberToHex, parseAbiItem, toEventSelector, toFunctionSelector } from "viem";
import { root, startDevnet } from "./devnet.mjs";
import { makeScene, signIn, waitForText, wallet } from "./kit.mjs";
import { installTestWallet, rpcBridge } from "./wallet.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = process.env.LUMEN_SCREENSHOT_DIR ?? join(root, "docs", "screenshots");
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const TEST_WALLET = { uuid: "4f0c6b9e-0a55-4a64-9d2f-6b1a3f2c7e01", name: "Lumen Test Wallet", rdns: "dev.lumen.test-wallet" };
const SECOND_WALLET = { uuid: "9b7d2c1a-3e4f-4a5b-8c6d-7e8f9a0b1c2d", name: "Second Test Wallet", rdns: "dev.lumen.second-wallet" };

let devnet;
let browser;
/** A job of the devnet's artist, when Blender is there to make its scene. */
let jobId = null;
/** Script errors and policy violations on any page of any test. */
const problems = [];

/** A skip reason while no job could be made (no Blender); read when the test starts. */
const jobIdMissing = () => (blenderAvailable() ? false : "no Blender to make a job's scene");

/** How the page shows an address: checksummed, shortened. */
const short = (address) => {
  const text = getAddress(address);
  return `${text.slice(0, 6)}…${text.slice(-4)}`;
};

function blenderAvailable() {
  if (process.env.LUMEN_SKIP_BLENDER === "1") return false;
  return spawnSync("blender", ["--version"], { stdio: "ignore" }).status === 0;
}

/** A `frames`-frame 64×36 scene submitted through the CLI by the devnet's artist. */
function submitJob(frames = 2) {
  const scene = join(devnet.dir, `scene-${frames}.blend`);
  if (!existsSync(scene)) makeScene(scene, { frames });
  const out = devnet.lumen(["job", "submit", scene]);
  return Number(out.trim().split("\n").at(-1));
}

/** A JSON-RPC call to the devnet's Anvil. */
async function rpc(method, params = []) {
  const response = await fetch(devnet.file.rpc_url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = await response.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return body.result;
}

/** The page's view of the job through its own session (what the API answers the signed-in wallet). */
const jobAsSeen = (page, id) =>
  page.evaluate(async (id) => {
    const r = await fetch(`/api/v1/jobs/${id}`);
    return r.ok ? await r.json() : null;
  }, id);


/** The entries of a zip file: name and blake3 of the bytes (Python's zipfile reads it). */
function zipEntries(path) {
  const out = spawnSync(
    "python3",
    ["-c", "import json, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nprint(json.dumps([[i.filename, z.read(i).hex()] for i in z.infolist()]))", path],
    { encoding: "utf8" },
  );
  assert.equal(out.status, 0, out.stderr);
  return JSON.parse(out.stdout).map(([name, hex]) => ({ name, hash: blake3Hex(Buffer.from(hex, "hex")) }));
}

const blake3Hex = (bytes) => "0x" + Buffer.from(blake3(bytes)).toString("hex");

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  [devnet, browser] = await Promise.all([
    // Two nodes of two owners: fresh nodes verify each other, so the job
    // is verified, paid and shows up on the leaderboard.
    startDevnet({ nodes: 2 }),
    chromium.launch({ executablePath: CHROMIUM, headless: true }),
  ]);
  if (blenderAvailable()) jobId = submitJob();
});

after(async () => {
  await browser?.close();
  await devnet?.stop();
});

/** A fresh browser profile with the test wallet, on the dashboard. */
async function open({ viewport = DESKTOP, wallet = {} } = {}) {
  const context = await browser.newContext({ viewport, colorScheme: "light" });
  await context.exposeFunction("__lumenWalletRpc", rpcBridge(devnet.file.rpc_url));
  await context.addInitScript(installTestWallet, {
    account: devnet.file.artist,
    chainId: devnet.file.chain_id,
    wallets: [TEST_WALLET],
    ...wallet,
  });
  const page = await context.newPage();
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    // Chromium logs the API's access refusals (401 signed out, 403 another
    // artist's job), which the tests check where they happen; anything
    // else is a problem.
    if (msg.type() === "error" && !/status of 40[13] /.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  const response = await page.goto(`${devnet.file.gateway_url}/`);
  await page.getByRole("heading", { name: "Nodes" }).waitFor();
  return { context, page, response };
}


const session = (page) =>
  page.evaluate(async () => {
    const r = await fetch("/api/v1/auth/session");
    return { status: r.status, body: r.ok ? await r.json() : null };
  });


/** Every control has a name a screen reader can say, every image an `alt`, one `h1`. */
async function checkNames(page) {
  const found = await page.evaluate(() => ({
    unnamed: [...document.querySelectorAll("button, a[href]")]
      .filter((el) => el.getClientRects().length > 0 && !(el.textContent.trim() || el.getAttribute("aria-label")))
      .map((el) => el.outerHTML),
    noAlt: [...document.querySelectorAll("img:not([alt])")].map((el) => el.outerHTML),
    h1: document.querySelectorAll("h1").length,
  }));
  assert.deepEqual(found, { unnamed: [], noAlt: [], h1: 1 });
}

async function shot(page, name) {
  await checkNames(page);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** The checksummed artist address, as the page shows it. */
let artist;

describe("dashboard in Chromium", () => {
  test("the page is served with its policy, shows the network, and loads nothing from elsewhere", async () => {
    const { context, page, response } = await open();
    const csp = response.headers()["content-security-policy"];
    assert.match(csp, /^default-src 'self';/);
    assert.match(csp, /connect-src 'self';/);
    assert.doesNotMatch(csp, /unsafe/);
    const requested = [];
    page.on("request", (r) => requested.push(r.url()));
    await page.reload();
    await page.getByRole("heading", { name: "Nodes" }).waitFor();
    const node = devnet.file.nodes[0].address;
    await waitForText(page.locator("main"), short(node));
    await waitForText(page.locator("#network"), `chain ${devnet.file.chain_id}`);
    await waitForText(page.locator("#network"), "2 healthy nodes");
    assert.ok(requested.length > 0);
    for (const url of requested) {
      assert.ok(url.startsWith(`${devnet.file.gateway_url}/`) || url.startsWith("data:"), `loaded ${url}`);
    }
    await shot(page, "home");
    await context.close();
  });

  test("connect through EIP-6963, sign in with Ethereum, the cookie session works, sign out", async () => {
    const { context, page } = await open({ wallet: { wallets: [TEST_WALLET, SECOND_WALLET] } });
    await page.getByRole("button", { name: "Connect wallet" }).click();
    const picker = page.getByRole("dialog", { name: "Choose a wallet" });
    await picker.waitFor();
    assert.deepEqual(await picker.getByRole("button").allTextContents(), ["Lumen Test Wallet", "Second Test Wallet", "Cancel"]);
    await shot(page, "wallet-picker");
    await picker.getByRole("button", { name: "Lumen Test Wallet" }).click();

    const account = page.getByTestId("account");
    await account.waitFor();
    artist = await account.getAttribute("title");
    assert.equal(artist.toLowerCase(), devnet.file.artist.toLowerCase());
    assert.notEqual(artist, artist.toLowerCase(), "checksummed");
    await waitForText(account, short(artist));
    assert.equal((await session(page)).status, 401);

    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("signed-in").waitFor();
    await waitForText(page.locator("#status"), `Signed in as ${short(artist)}`);

    // The session is the HttpOnly cookie: the page's own requests carry it,
    // its script cannot read it.
    const current = await session(page);
    assert.equal(current.status, 200);
    assert.equal(current.body.address.toLowerCase(), devnet.file.artist.toLowerCase());
    assert.equal(current.body.token, undefined);
    const cookie = (await context.cookies()).find((c) => c.name === "lumen_session");
    assert.ok(cookie, "session cookie set");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Strict");
    assert.ok(!(await page.evaluate(() => document.cookie)).includes("lumen_session"));

    // What the wallet signed: the EIP-4361 message for this gateway and chain,
    // through the wallet the person chose.
    const requests = await wallet(page, "requests");
    assert.ok(requests.includes("Lumen Test Wallet personal_sign"), requests.join(", "));
    assert.ok(!requests.some((r) => r.startsWith("Second Test Wallet")), requests.join(", "));
    const [[data, signer]] = await wallet(page, "params", "personal_sign");
    const signed = Buffer.from(data.slice(2), "hex").toString("utf8");
    const host = new URL(devnet.file.gateway_url).host;
    assert.ok(signed.startsWith(`${host} wants you to sign in with your Ethereum account:\n${artist}\n`), signed);
    assert.match(signed, new RegExp(`\\nChain ID: ${devnet.file.chain_id}\\n`));
    assert.equal(signer.toLowerCase(), devnet.file.artist.toLowerCase());

    // The artist's jobs, and one job's page through its hash route.
    if (jobId !== null) {
      const link = page.getByRole("link", { name: `Job ${jobId}` });
      await link.waitFor();
      await shot(page, "signed-in");
      await link.click();
      await page.getByRole("heading", { name: `Job ${jobId}`, level: 1 }).waitFor();
      assert.equal(new URL(page.url()).hash, `#/jobs/${jobId}`);
      await page.getByRole("heading", { name: "Frames" }).waitFor();
      assert.equal(await page.locator("li.frame").count(), 2);
      // The page follows the job over server-sent events, not by polling.
      await page.locator('[data-live="open"]').waitFor();
      await shot(page, "job");
      // A payout link leads to the explorer's page of the settlement, with
      // its decoded release event.
      const paid = page.locator("li.frame .payout a").first();
      // Pushed to the open page once the job is settled on-chain.
      await paid.waitFor({ timeout: 180_000 });
      await paid.click();
      await page.getByRole("heading", { name: "Transaction", level: 1 }).waitFor();
      await waitForText(page.locator("main"), "succeeded");
      await waitForText(page.locator("main"), "FramesReleased");
      await shot(page, "explorer-tx");
      await page.goBack();
      await page.getByRole("heading", { name: `Job ${jobId}`, level: 1 }).waitFor();
      // The leaderboard ranks the devnet's node, with the gold badge.
      await page.getByRole("link", { name: "Leaderboard" }).click();
      await page.getByRole("heading", { name: "Leaderboard", level: 1 }).waitFor();
      const gold = page.locator("tr", { hasText: "Gold" });
      await gold.waitFor();
      const ranked = (await gold.getAttribute("data-node")) ?? "";
      assert.ok(devnet.file.nodes.some((n) => n.address.toLowerCase() === ranked), ranked);
      await shot(page, "leaderboard");
      await page.goBack();
      await page.getByRole("heading", { name: `Job ${jobId}`, level: 1 }).waitFor();
      await page.getByRole("link", { name: "← All jobs" }).click();
      await page.getByRole("heading", { name: "Nodes" }).waitFor();
    } else {
      await waitForText(page.locator("main"), "You have no jobs yet");
      await shot(page, "signed-in");
    }

    // A return visit: the wallet reconnects without a prompt, the cookie
    // still signs in.
    await page.reload();
    await page.getByTestId("signed-in").waitFor();
    const prompts = (await wallet(page, "requests")).filter((r) => r.endsWith("eth_requestAccounts"));
    assert.deepEqual(prompts, [], "no account prompt on a return visit");

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    await waitForText(page.locator("#status"), "Signed out.");
    assert.equal((await session(page)).status, 401);
    await waitForText(page.locator("main"), "connect your wallet and sign in to see yours");
    await context.close();
  });

  test("a rejected signature says so in plain words and leaves the person signed out", async () => {
    const { context, page } = await open();
    await page.getByRole("button", { name: "Connect wallet" }).click();
    await page.getByTestId("account").waitFor();
    await wallet(page, "rejectNext");
    await page.getByRole("button", { name: "Sign in" }).click();
    const alert = page.locator("#alert");
    await waitForText(alert, "Not signed in. You rejected the request in your wallet.");
    assert.equal(await alert.getAttribute("role"), "alert");
    assert.equal((await session(page)).status, 401);
    assert.equal(await page.getByTestId("signed-in").count(), 0);
    assert.ok(!(await context.cookies()).some((c) => c.name === "lumen_session"));
    await shot(page, "signature-rejected");
    // Trying again works.
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("signed-in").waitFor();
    assert.equal(await alert.isHidden(), true);
    await context.close();
  });

  test("a wallet on another chain is told so and switched with wallet_switchEthereumChain", async () => {
    const { context, page } = await open({ wallet: { reportChainId: 1 } });
    await page.getByRole("button", { name: "Connect wallet" }).click();
    const banner = page.locator("#chain");
    await waitForText(
      banner,
      `Wrong network: your wallet is on Ethereum (chain 1), but Lumen settles on the local devnet (chain ${devnet.file.chain_id}).`,
    );
    assert.equal(await page.getByRole("button", { name: "Sign in" }).count(), 0, "no sign-in on the wrong chain");
    await shot(page, "wrong-network");
    await banner.getByRole("button", { name: "Switch network" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    assert.equal(await banner.isHidden(), true);
    assert.deepEqual(await wallet(page, "params", "wallet_switchEthereumChain"), [
      [{ chainId: `0x${devnet.file.chain_id.toString(16)}` }],
    ]);
    assert.equal(await wallet(page, "chainId"), devnet.file.chain_id);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("signed-in").waitFor();
    await context.close();
  });

  test("a wallet that does not know the chain is asked to add it (4902, wallet_addEthereumChain)", async () => {
    const { context, page } = await open({ wallet: { reportChainId: 1, knowsChain: false } });
    await page.getByRole("button", { name: "Connect wallet" }).click();
    await page.getByRole("button", { name: "Switch network" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    const methods = (await wallet(page, "requests")).map((r) => r.split(" ").at(-1));
    const switching = methods.filter((m) => m.startsWith("wallet_"));
    assert.deepEqual(switching.slice(0, 2), ["wallet_switchEthereumChain", "wallet_addEthereumChain"]);
    const [[added]] = await wallet(page, "params", "wallet_addEthereumChain");
    assert.equal(added.chainId, `0x${devnet.file.chain_id.toString(16)}`);
    assert.deepEqual(added.rpcUrls, [devnet.file.rpc_url]);
    assert.equal(added.nativeCurrency.decimals, 18);
    await context.close();
  });

  test("another wallet signs in but cannot see the artist's job", { skip: jobIdMissing() }, async () => {
    // Anvil's dev account 9: no role in the devnet, unlocked like the others.
    const other = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720";
    const { context, page } = await open({ wallet: { account: other } });
    await page.getByRole("button", { name: "Connect wallet" }).click();
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("signed-in").waitFor();
    assert.equal((await session(page)).body.address.toLowerCase(), other.toLowerCase());
    await waitForText(page.locator("main"), "You have no jobs yet");
    await page.goto(`${devnet.file.gateway_url}/#/jobs/${jobId}`);
    await waitForText(page.locator("main"), "No job of yours has this number.");
    assert.equal(await page.locator("li.frame").count(), 0);
    // Nor fetch it, its frames, its archive or its live stream.
    const statuses = await page.evaluate(async (id) => {
      const paths = [`/api/v1/jobs/${id}`, `/api/v1/jobs/${id}/frames/1`, `/api/v1/jobs/${id}/frames/1/preview`, `/api/v1/jobs/${id}/frames.zip`, `/api/v1/jobs/${id}/events`];
      return Promise.all(paths.map(async (p) => [p, (await fetch(p)).status]));
    }, jobId);
    for (const [path, status] of statuses) assert.equal(status, 403, path);
    await context.close();
  });

  test("at 390 px nothing scrolls sideways, and the keyboard alone connects and signs in", async () => {
    const { context, page } = await open({ viewport: PHONE });
    const overflow = () =>
      page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.equal(await overflow(), 0, "horizontal scroll at 390 px");

    // Tab from the top of the page reaches Connect, with a visible focus ring.
    let reached = false;
    for (let i = 0; i < 10 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = await page.evaluate(() => document.activeElement?.textContent === "Connect wallet");
    }
    assert.ok(reached, "Tab reaches Connect wallet");
    const ring = await page.evaluate(() => {
      const style = getComputedStyle(document.activeElement);
      return { style: style.outlineStyle, width: parseFloat(style.outlineWidth) };
    });
    assert.notEqual(ring.style, "none");
    assert.ok(ring.width >= 2, `outline ${ring.width}px`);

    await page.keyboard.press("Enter");
    await page.getByTestId("account").waitFor();
    // Focus stays in the header: the next control is Sign in.
    await page.waitForFunction(() => document.activeElement?.textContent === "Sign in");
    await page.keyboard.press("Enter");
    await page.getByTestId("signed-in").waitFor();
    await page.waitForFunction(() => document.activeElement?.textContent === "Sign out");
    if (jobId !== null) await page.getByRole("link", { name: `Job ${jobId}` }).waitFor();
    assert.equal(await overflow(), 0, "horizontal scroll at 390 px when signed in");
    await shot(page, "phone-390px");
    await context.close();
  });

  test("the artist downloads a paid frame and the archive of every paid frame from the job page", { skip: jobIdMissing() }, async () => {
    const { context, page } = await open();
    await signIn(page);
    await page.goto(`${devnet.file.gateway_url}/#/jobs/${jobId}`);
    const all = page.getByRole("link", { name: /^Download all paid frames/ });
    await all.waitFor({ timeout: 180_000 });
    const job = await jobAsSeen(page, jobId);
    const paid = job.frames.filter((f) => f.payout_tx);
    assert.ok(paid.length > 0);
    await waitForText(all, `Download all paid frames (${paid.length}, .zip)`);

    // One frame: the verified output itself (its blake3 is the hash the node signed).
    const frame = paid[0];
    const [one] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: `Download frame ${frame.frame}`, exact: true }).click(),
    ]);
    assert.equal(one.suggestedFilename(), `lumen-job-${jobId}-frame-${frame.frame}.png`);
    assert.equal(blake3Hex(readFileSync(await one.path())), frame.output_hash);

    // The archive: every paid frame, byte for byte, and nothing else.
    const [zip] = await Promise.all([page.waitForEvent("download"), all.click()]);
    assert.equal(zip.suggestedFilename(), `lumen-job-${jobId}-frames.zip`);
    const entries = zipEntries(await zip.path());
    assert.deepEqual(entries.map((e) => e.hash).sort(), paid.map((f) => f.output_hash).sort());
    assert.equal(new Set(entries.map((e) => e.name)).size, entries.length, "distinct names");
    await context.close();
  });

  test("the artist cancels a running job from the wallet; the gateway stops it and the escrow refunds the rest", { skip: jobIdMissing() }, async () => {
    const id = submitJob(24);
    const { context, page } = await open();
    await signIn(page);
    await page.goto(`${devnet.file.gateway_url}/#/jobs/${id}`);
    const cancel = page.getByRole("button", { name: "Cancel job…" });
    await cancel.waitFor({ timeout: 60_000 });
    await cancel.click();
    await page.getByRole("button", { name: `Yes, cancel job ${id}` }).click();
    await waitForText(page.locator("#status"), `Job ${id} is cancelled`, 60_000);
    // What the wallet sent: `cancel(jobId, terms)` to the escrow, from the artist.
    const [tx] = (await wallet(page, "params", "eth_sendTransaction")).at(-1);
    assert.equal(tx.to.toLowerCase(), devnet.file.escrow.toLowerCase());
    assert.equal(tx.from.toLowerCase(), devnet.file.artist.toLowerCase());
    assert.ok(tx.data.startsWith(toFunctionSelector("cancel(uint256,(bytes32,address,address,uint128,uint32,uint32,uint64,uint64,uint16))")));
    // The gateway sees the cancel, stops rendering, pays what was verified
    // and closes the job: the escrow refunds the rest, pushed to the page.
    await waitForText(page.locator("main"), "The escrow is closed", 180_000);
    const job = await jobAsSeen(page, id);
    const events = job.transactions.map((t) => t.event);
    assert.ok(events.includes("JobCancelled") && events.includes("JobRefunded"), events.join(", "));
    assert.ok(job.frames.some((f) => f.state !== "verified"), "the cancel came before the end");
    assert.equal(job.onchain.state, "closed");
    await shot(page, "job-cancelled");
    await context.close();
  });

  test("the artist refunds from the wallet while the gateway is frozen; a refund asked too early shows the escrow's reason", { skip: jobIdMissing() }, async () => {
    const id = submitJob(24);
    const { context, page } = await open();
    await signIn(page);
    await page.goto(`${devnet.file.gateway_url}/#/jobs/${id}`);
    const refund = page.getByRole("button", { name: "Refund the rest" });
    await refund.waitFor({ timeout: 60_000 });

    // Before the deadline the escrow refuses: the page says why, the wallet asked nothing.
    const sentBefore = (await wallet(page, "params", "eth_sendTransaction")).length;
    await refund.click();
    await waitForText(page.locator("#alert"), "Nothing was refunded. The job cannot be refunded yet", 30_000);
    await waitForText(page.locator("#alert"), `Escrow_NotRefundable(${id})`);
    assert.equal((await wallet(page, "params", "eth_sendTransaction")).length, sentBefore);

    // The gateway and its indexer stop answering (SIGSTOP); the job's
    // deadline passes on-chain; the artist needs nobody to get the rest back.
    process.kill(devnet.file.pid, "SIGSTOP");
    let frozen = true;
    try {
      await rpc("evm_increaseTime", [25 * 3600]);
      await rpc("evm_mine");
      const before = BigInt(await rpc("eth_getBalance", [devnet.file.artist, "latest"]));
      await refund.click();
      await waitForText(page.locator("#status"), `Job ${id} is refunded`, 60_000);
      const [tx] = (await wallet(page, "params", "eth_sendTransaction")).at(-1);
      assert.equal(tx.to.toLowerCase(), devnet.file.escrow.toLowerCase());
      const event = parseAbiItem("event JobRefunded(uint256 indexed jobId, address indexed artist, uint256 amount)");
      const [log] = await rpc("eth_getLogs", [
        { address: devnet.file.escrow, fromBlock: "0x0", topics: [toEventSelector(event), numberToHex(BigInt(id), { size: 32 })] },
      ]);
      assert.ok(log, "a JobRefunded of the job on-chain");
      const receipt = await rpc("eth_getTransactionReceipt", [log.transactionHash]);
      assert.equal(receipt.status, "0x1");
      assert.equal(receipt.from.toLowerCase(), devnet.file.artist.toLowerCase(), "refunded by the artist's wallet");
      const refunded = decodeEventLog({ abi: [event], data: log.data, topics: log.topics }).args;
      assert.equal(refunded.jobId, BigInt(id));
      assert.ok(refunded.amount > 0n);
      const gas = BigInt(receipt.gasUsed) * BigInt(receipt.effectiveGasPrice);
      const after = BigInt(await rpc("eth_getBalance", [devnet.file.artist, receipt.blockNumber]));
      assert.equal(after - before, refunded.amount - gas, "the artist got the refund, less gas");
      process.kill(devnet.file.pid, "SIGCONT");
      frozen = false;
      // The gateway comes back, mirrors the refund and stops the job; the open page catches up.
      await waitForText(page.locator("main"), "The escrow is closed", 120_000);
    } finally {
      if (frozen) process.kill(devnet.file.pid, "SIGCONT");
    }
    await context.close();
  });

  test("a job page open while the gateway restarts reconnects and catches up", { skip: jobIdMissing() }, async () => {
    const id = submitJob(2);
    const { context, page } = await open();
    await signIn(page);
    await page.goto(`${devnet.file.gateway_url}/#/jobs/${id}`);
    await page.locator('[data-live="open"]').waitFor();
    const restarted = devnet.restartGateway();
    // The page notices the dropped stream…
    await page.locator('[data-live="reconnecting"]').waitFor({ timeout: 30_000 });
    await restarted;
    // …reconnects by itself, and shows what happened meanwhile: the job
    // rendered and paid by nodes that reconnected too.
    await page.locator('[data-live="open"]').waitFor({ timeout: 60_000 });
    await page.getByRole("link", { name: /^Download all paid frames \(2,/ }).waitFor({ timeout: 180_000 });
    const job = await jobAsSeen(page, id);
    assert.equal(job.state, "completed");
    assert.equal(await page.locator('li.frame[data-state="verified"]').count(), 2);
    await context.close();
  });

  test("pages reload when the gateway says their data moved, never on a timer, and at most every two seconds", { skip: jobIdMissing() }, async () => {
    const { context, page } = await open();
    await signIn(page);
    // Pushed, not polled: a job submitted meanwhile shows up by itself.
    const id = submitJob(2);
    await page.getByRole("link", { name: `Job ${id}`, exact: true }).waitFor({ timeout: 30_000 });

    // The feed served by the test, to move one part at a time.
    let stamps = { jobs: "j1", nodes: "n1", heartbeats: "h1", chain: "c1", minute: "m1" };
    await page.route("**/api/v1/changes", (r) =>
      r.fulfill({
        status: 200,
        headers: { "content-type": "text/event-stream" },
        // The body ends after one event: EventSource reconnects (`retry`) and gets the stamps of the moment.
        body: `retry: 100\nevent: changes\ndata: ${JSON.stringify(stamps)}\n\n`,
      }),
    );
    const reloads = [];
    page.on("request", (r) => {
      if (new URL(r.url()).pathname === "/api/v1/stats") reloads.push(r.url());
    });
    await page.reload();
    await page.getByRole("link", { name: `Job ${id}`, exact: true }).waitFor();
    await page.waitForTimeout(1_000);
    reloads.length = 0;
    // Seven seconds (the old timer reloaded every five) of a feed that
    // reconnects ten times a second, moving only parts the page does not
    // show: the page asks for nothing.
    for (let i = 2; i < 9; i++) {
      stamps = { ...stamps, heartbeats: `h${i}`, minute: `m${i}` };
      await page.waitForTimeout(1_000);
    }
    assert.deepEqual(reloads, []);
    // A part it shows moves: one reload, and no more while it stays put.
    stamps = { ...stamps, jobs: "j2" };
    for (let waited = 0; reloads.length === 0 && waited < 5_000; waited += 100) await page.waitForTimeout(100);
    await page.waitForTimeout(1_500);
    assert.equal(reloads.length, 1);
    // A part that moves ten times a second (a busy network): the page
    // follows it, one reload every two seconds at most, and the last move
    // is not lost.
    reloads.length = 0;
    const started = Date.now();
    for (let i = 3; Date.now() - started < 5_000; i++) {
      stamps = { ...stamps, jobs: `j${i}` };
      await page.waitForTimeout(100);
    }
    await page.waitForTimeout(2_600);
    const followed = reloads.length;
    assert.ok(followed >= 2 && followed <= 5, `${followed} reloads in 5 s of a part moving ten times a second`);
    await page.waitForTimeout(2_600);
    assert.equal(reloads.length, followed, "once the part stops moving, the page stops reloading");
    await context.close();
  });

  test("no page had a script error or a policy violation", () => {
    assert.deepEqual(problems, []);
  });
});
