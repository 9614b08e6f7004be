// The submit page (`#/submit`) in a real browser against a real devnet: a
// scene generated with Blender is uploaded through the page (the file
// button and a drop), the spec is signed as EIP-712 typed data by the test
// wallet (Anvil's dev accounts), the escrow is funded in the native coin
// and in the devnet's test ERC-20, and the job is followed to its payment.
// Every failure path checks what did (not) happen on-chain and in the
// wallet, not only the words. Screenshots: docs/screenshots/submit.png,
// submit-phone.png (390 px) and submit-error.png (a decoded revert).
//
//   cargo build --bin lumen && (cd gateway/web && npm run build && npm run test:browser)
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { blake3 } from "@noble/hashes/blake3";
import { bytesToHex } from "@noble/hashes/utils";
import { chromium } from "playwright-core";
import {
  createPublicClient,
  decodeEventLog,
  decodeFunctionData,
  encodeFunctionData,
  formatUnits,
  getAddress,
  http,
  parseAbi,
} from "viem";
import { root, startDevnet } from "./devnet.mjs";
import { makeScene, signIn, waitForText, wallet } from "./kit.mjs";
import { installTestWallet, rpcBridge } from "./wallet.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = process.env.LUMEN_SCREENSHOT_DIR ?? join(root, "docs", "screenshots");
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const TEST_WALLET = { uuid: "4f0c6b9e-0a55-4a64-9d2f-6b1a3f2c7e01", name: "Lumen Test Wallet", rdns: "dev.lumen.test-wallet" };
/** Anvil's dev accounts 0 (the devnet's admin, the escrow's owner) and 4 (no role, no test token). */
const ADMIN = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const NO_TOKENS = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65";

const artifact = (name) =>
  JSON.parse(readFileSync(join(root, "crates", "chain", "artifacts", `${name}.json`), "utf8")).abi;
const escrowAbi = artifact("RenderEscrow");
const tokenAbi = artifact("MockERC20");
const transferEvent = parseAbi(["event Transfer(address indexed from, address indexed to, uint256 value)"]);

let devnet;
let browser;
let chain;
/** The generated scene: 2 frames, 64×36, Cycles with 4 samples. */
let scene;
let sceneHash;
/** The market's lowest native price a frame. */
let minPrice;
/** Script errors and policy violations on any page of any test. */
const problems = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  [devnet, browser] = await Promise.all([
    startDevnet({ nodes: 2 }),
    chromium.launch({ executablePath: CHROMIUM, headless: true }),
  ]);
  chain = createPublicClient({ transport: http(devnet.file.rpc_url) });
  scene = join(devnet.dir, "scene.blend");
  makeScene(scene);
  sceneHash = `0x${bytesToHex(blake3(readFileSync(scene)))}`;
  const market = await fetch(`${devnet.file.gateway_url}/api/v1/market`).then((r) => r.json());
  minPrice = BigInt(market.tokens.find((t) => /^0x0{40}$/.test(t.token)).min_price_per_frame);
});

after(async () => {
  await browser?.close();
  await devnet?.stop();
});

/**
 * A fresh browser profile with the test wallet as `account`, on the submit
 * page. `refusals`: more statuses the test expects Chromium to log.
 */
async function open({ viewport = DESKTOP, account = devnet.file.artist, refusals = [] } = {}) {
  const context = await browser.newContext({ viewport, colorScheme: "light" });
  await context.exposeFunction("__lumenWalletRpc", rpcBridge(devnet.file.rpc_url));
  await context.addInitScript(installTestWallet, {
    account,
    chainId: devnet.file.chain_id,
    wallets: [TEST_WALLET],
  });
  const page = await context.newPage();
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    // Chromium logs the API's refusals: 401 signed out, 404 for a file the
    // gateway does not have yet (the page then uploads it).
    const expected = [401, 404, ...refusals].some((status) => msg.text().includes(`status of ${status} `));
    if (msg.type() === "error" && !expected) problems.push(`console: ${msg.text()}`);
  });
  await page.goto(`${devnet.file.gateway_url}/#/submit`);
  await page.getByRole("heading", { name: "New job", level: 1 }).waitFor();
  return { context, page };
}



const methods = async (page) => (await wallet(page, "requests")).map((r) => r.split(" ").at(-1));

/** Chooses the scene with the file button and waits until the page shows what was read. */
async function chooseScene(page) {
  await page.locator("#blend-file").setInputFiles(scene);
  await page.getByTestId("scene-samples").waitFor();
}

/**
 * What a submission changes on-chain: the escrow's next job id, and the
 * transactions `account` sent (its nonce). Balances are left out: jobs of
 * earlier tests may be settling meanwhile.
 */
async function chainState(account = devnet.file.artist) {
  const [nextJobId, nonce] = await Promise.all([
    chain.readContract({ address: devnet.file.escrow, abi: escrowAbi, functionName: "nextJobId" }),
    chain.getTransactionCount({ address: account }),
  ]);
  return { nextJobId, nonce };
}

const quote = (frames, verifications, price) =>
  chain.readContract({ address: devnet.file.escrow, abi: escrowAbi, functionName: "quote", args: [frames, verifications, price] });

/** The `JobOpened` event of `jobId`. */
async function jobOpened(jobId) {
  const logs = await chain.getContractEvents({
    address: devnet.file.escrow,
    abi: escrowAbi,
    eventName: "JobOpened",
    args: { jobId: BigInt(jobId) },
    fromBlock: 0n,
  });
  assert.equal(logs.length, 1, `one JobOpened for job ${jobId}`);
  return logs[0];
}

/** Each step of the payment's progress list: its state. */
const stepStates = (page) => page.locator("ol.steps > li").evaluateAll((lis) => lis.map((li) => li.dataset.state));

/** The entries of a zip (stored, as the gateway writes them; zip64 sizes read from the extra field). */
function unzipStored(buf) {
  const entries = [];
  let at = 0;
  while (buf.readUInt32LE(at) === 0x04034b50) {
    const method = buf.readUInt16LE(at + 8);
    let size = buf.readUInt32LE(at + 18);
    const nameLength = buf.readUInt16LE(at + 26);
    const extraLength = buf.readUInt16LE(at + 28);
    const name = buf.subarray(at + 30, at + 30 + nameLength).toString("utf8");
    const extra = buf.subarray(at + 30 + nameLength, at + 30 + nameLength + extraLength);
    for (let e = 0; e + 4 <= extra.length; ) {
      const id = extra.readUInt16LE(e);
      const length = extra.readUInt16LE(e + 2);
      // Zip64: uncompressed, then compressed size (the same when stored).
      if (id === 0x0001 && size === 0xffffffff) size = Number(extra.readBigUInt64LE(e + 4 + 8));
      e += 4 + length;
    }
    assert.equal(method, 0, `${name} is stored`);
    const start = at + 30 + nameLength + extraLength;
    entries.push({ name, data: buf.subarray(start, start + size) });
    at = start + size;
  }
  return entries;
}

async function noOverflow(page) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, "nothing scrolls sideways");
}

describe("the submit page in Chromium", () => {
  test("upload, estimate, sign, fund in the native coin, follow the job to its payment, download the frames; the node's owner withdraws and the leaderboard shows the node", async () => {
    const { context, page } = await open();
    // Signed out: the page says what to do, and takes no file.
    await waitForText(page.getByTestId("submit-gate"), "Sign in to submit a job");
    assert.equal(await page.locator("#blend-file").isDisabled(), true);
    await signIn(page);
    await page.locator("#blend-file:enabled").waitFor();
    assert.equal(await page.getByTestId("submit-gate").count(), 0);

    // The file button is a keyboard stop with a visible focus ring around the drop zone.
    await page.locator("#blend-file").focus();
    const ring = await page.getByTestId("dropzone").evaluate((el) => {
      const style = getComputedStyle(el);
      return { style: style.outlineStyle, width: parseFloat(style.outlineWidth) };
    });
    assert.notEqual(ring.style, "none");
    assert.ok(ring.width >= 2, `outline ${ring.width}px`);

    // Every step of the transfer is shown: reading (hashing), uploading, read.
    await page.evaluate(() => {
      window.__transferLog = [];
      const el = document.getElementById("transfer-text");
      new MutationObserver(() => window.__transferLog.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
    });
    const posts = [];
    page.on("request", (r) => r.method() === "POST" && r.url().endsWith("/api/v1/blends") && posts.push(r.url()));
    await chooseScene(page);
    const log = await page.evaluate(() => window.__transferLog);
    assert.ok(log.some((t) => t.startsWith("Reading the file")), log.join(" | "));
    assert.ok(log.some((t) => t.startsWith("Uploading")), log.join(" | "));
    assert.match(log.at(-1), /^Uploaded .*the gateway read the scene\.$/);
    assert.equal(posts.length, 1, "one upload");
    assert.equal(await page.locator(".transfer progress").evaluate((el) => el.value), 100);
    assert.equal(await page.getByTestId("scene-samples").textContent(), "4");
    assert.equal(await page.getByTestId("scene-resolution").textContent(), "64 × 36 px");
    assert.equal(await page.getByTestId("scene-engine").textContent(), "Cycles");
    assert.equal(await page.getByTestId("scene-frames").textContent(), "1–2 (2 frames)");
    const uploaded = await page.evaluate((h) => fetch(`/api/v1/blends/${h}`).then((r) => r.json()), sceneHash);
    assert.equal(uploaded.hash, sceneHash, "the page's blake3 is the gateway's content hash");

    // The form is filled in from the scene and the market; the estimate is the escrow's quote.
    assert.equal(await page.getByLabel("Frames").inputValue(), "1-2");
    assert.equal(await page.getByLabel("Price per frame").inputValue(), formatUnits(minPrice, 18));
    assert.equal(await page.getByLabel("Verification renders").inputValue(), "2");
    assert.equal(await page.getByLabel("Deadline, in hours from now").inputValue(), "24");
    const labelled = await page.evaluate(() =>
      [...document.querySelectorAll("main input, main select")].filter((el) => el.labels.length === 0).map((el) => el.outerHTML),
    );
    assert.deepEqual(labelled, [], "every control has a label");
    const total = page.getByTestId("estimate-total");
    await total.waitFor();
    const cost = await quote(2, 2, minPrice);
    assert.equal(BigInt(await total.getAttribute("data-amount")), cost);
    assert.equal(cost, 4n * minPrice, "2 frames and 2 verification renders");
    await waitForText(total, `${formatUnits(cost, 18)} ETH`);
    await waitForText(page.getByTestId("estimate"), "You pay only for verified frames");

    // A wrong field says why, and the button waits for it.
    await page.getByLabel("Frames").fill("0-5");
    await waitForText(page.locator("#job-frames-error"), "outside the scene's range 1-2");
    assert.equal(await page.getByTestId("pay").isDisabled(), true);
    await page.getByLabel("Frames").fill("1-2");
    await page.locator("#job-frames-error").waitFor({ state: "hidden" });
    await waitForText(page.getByTestId("pay"), `Sign and lock ${formatUnits(cost, 18)} ETH`);
    assert.equal(await page.getByTestId("pay").isEnabled(), true);
    await page.getByLabel("Frames").blur();

    await page.screenshot({ path: join(SHOTS, "submit.png"), fullPage: true });
    await page.setViewportSize(PHONE);
    await noOverflow(page);
    await page.screenshot({ path: join(SHOTS, "submit-phone.png"), fullPage: true });
    await page.setViewportSize(DESKTOP);

    const before = await chainState();
    await page.getByTestId("pay").click();
    await page.waitForURL(/#\/jobs\/\d+$/, { timeout: 60_000 });
    const jobId = Number(new URL(page.url()).hash.split("/").at(-1));
    await page.getByRole("heading", { name: `Job ${jobId}`, level: 1 }).waitFor();

    // What the wallet was asked: the typed spec (readable, field by field), then one transaction.
    assert.deepEqual(
      (await methods(page)).filter((m) => m === "eth_signTypedData_v4" || m === "eth_sendTransaction"),
      ["eth_signTypedData_v4", "eth_sendTransaction"],
    );
    const [[signer, json]] = await wallet(page, "params", "eth_signTypedData_v4");
    assert.equal(signer.toLowerCase(), devnet.file.artist.toLowerCase());
    const typed = JSON.parse(json);
    assert.equal(typed.primaryType, "JobSpec");
    assert.equal(getAddress(typed.domain.verifyingContract), getAddress(devnet.file.escrow));
    assert.equal(Number(typed.domain.chainId), devnet.file.chain_id);
    assert.equal(typed.message.blendHash, sceneHash);
    assert.deepEqual(
      [typed.message.frameStart, typed.message.frameEnd, typed.message.width, typed.message.height, typed.message.engine],
      [1, 2, 64, 36, "CYCLES"],
    );

    // On-chain: the job locks the quote in the native coin, for the spec the gateway registered.
    const opened = await jobOpened(jobId);
    assert.equal(getAddress(opened.args.artist), getAddress(devnet.file.artist));
    assert.equal(opened.args.amount, cost);
    assert.equal(opened.args.frameCount, 2);
    assert.equal(opened.args.verifications, 2);
    const sent = await chain.getTransaction({ hash: opened.transactionHash });
    assert.equal(sent.value, cost);
    assert.deepEqual(await chainState(), { nextJobId: before.nextJobId + 1n, nonce: before.nonce + 1 });
    assert.equal(BigInt(jobId), before.nextJobId);
    const job = await page.evaluate((id) => fetch(`/api/v1/jobs/${id}`).then((r) => r.json()), jobId);
    assert.equal(job.spec_hash, opened.args.specHash);
    assert.equal(job.frame_count, 2);

    // The job page follows it live; the frames arrive, are verified and paid.
    await page.locator('[data-live="open"]').waitFor();
    assert.equal(await page.locator("li.frame").count(), 2);
    const paid = page.locator("li.frame .payout a");
    await paid.nth(1).waitFor({ timeout: 180_000 });
    await waitForText(page.locator("main"), "completed", 120_000);

    // Every paid frame in one archive, as the gateway stored them.
    const download = page.getByRole("link", { name: /^Download all paid frames \(2,/ });
    await download.waitFor({ timeout: 60_000 });
    assert.equal(await download.getAttribute("href"), `/api/v1/jobs/${jobId}/frames.zip`);
    const archive = await page.evaluate(async (id) => {
      const r = await fetch(`/api/v1/jobs/${id}/frames.zip`);
      return { status: r.status, type: r.headers.get("content-type"), bytes: [...new Uint8Array(await r.arrayBuffer())] };
    }, jobId);
    assert.equal(archive.status, 200);
    assert.equal(archive.type, "application/zip");
    const entries = unzipStored(Buffer.from(archive.bytes));
    const view = await page.evaluate((id) => fetch(`/api/v1/jobs/${id}`).then((r) => r.json()), jobId);
    const paidFrames = view.frames.filter((f) => f.payout_tx);
    assert.equal(paidFrames.length, 2);
    assert.deepEqual(entries.map((e) => e.name).sort(), paidFrames.map((f) => `${String(f.frame).padStart(5, "0")}.png`).sort());
    for (const f of paidFrames) {
      const entry = entries.find((e) => e.name === `${String(f.frame).padStart(5, "0")}.png`);
      assert.ok(entry.data.subarray(0, 4).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47])), `${entry.name} is a PNG`);
      assert.equal(`0x${bytesToHex(blake3(entry.data))}`, f.output_hash, `${entry.name} is the verified output`);
    }

    // A payout link leads to the explorer's page of the settlement.
    await paid.first().click();
    await page.getByRole("heading", { name: "Transaction", level: 1 }).waitFor();
    await waitForText(page.locator("main"), "FramesReleased");
    await context.close();

    // The owner of a node that rendered it withdraws what it earned, from
    // its own wallet on the operator page: the coin arrives on-chain…
    const renderer = paidFrames[0];
    const operator = await open({ account: renderer.payout_owner });
    await operator.page.goto(`${devnet.file.gateway_url}/#/operator`);
    await operator.page.getByRole("button", { name: "Connect wallet" }).click();
    const withdraw = operator.page.getByRole("button", { name: /^Withdraw / });
    await withdraw.waitFor({ timeout: 30_000 });
    await withdraw.click();
    const status = operator.page.getByTestId("withdraw-status");
    await waitForText(status, "Withdrew", 60_000);
    const hash = await status.getByRole("link").getAttribute("title");
    const receipt = await chain.getTransactionReceipt({ hash });
    assert.equal(receipt.status, "success");
    assert.equal(receipt.from.toLowerCase(), renderer.payout_owner.toLowerCase());
    const credit = await chain.readContract({
      address: devnet.file.escrow,
      abi: escrowAbi,
      functionName: "credits",
      args: [renderer.payout_owner, "0x0000000000000000000000000000000000000000"],
      blockNumber: receipt.blockNumber - 1n,
    });
    assert.ok(credit >= BigInt(renderer.payout_amount) - BigInt(renderer.payout_fee), "the frame's pay was in the credit");
    const [balanceBefore, balanceAfter] = await Promise.all([
      chain.getBalance({ address: renderer.payout_owner, blockNumber: receipt.blockNumber - 1n }),
      chain.getBalance({ address: renderer.payout_owner, blockNumber: receipt.blockNumber }),
    ]);
    assert.equal(balanceAfter - balanceBefore, credit - receipt.gasUsed * receipt.effectiveGasPrice);
    // …and the leaderboard shows its node.
    await operator.page.getByRole("link", { name: "Leaderboard" }).click();
    await operator.page.locator(`tr[data-node="${renderer.node.toLowerCase()}"]`).waitFor({ timeout: 30_000 });
    await operator.context.close();
  });

  test("the same file again, dropped on the page, is not sent again; files that are not scenes are refused in words", async () => {
    const { context, page } = await open({ refusals: [422] });
    await signIn(page);
    await page.locator("#blend-file:enabled").waitFor();
    const requests = [];
    page.on("request", (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
    // A drop, as the browser delivers one: a DataTransfer holding the file.
    const bytes = readFileSync(scene).toString("base64");
    await page.evaluate((base64) => {
      const data = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([data], "scene.blend", { type: "application/octet-stream" }));
      const zone = document.querySelector('[data-testid="dropzone"]');
      zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }, bytes);
    await page.getByTestId("scene-samples").waitFor();
    await waitForText(page.locator("#transfer-text"), "Already uploaded: the gateway has this file from you, so nothing was sent.");
    assert.equal(await page.locator(".transfer progress").evaluate((el) => el.value), 100);
    assert.ok(requests.includes(`GET /api/v1/blends/${sceneHash}`), requests.join(", "));
    assert.ok(!requests.includes("POST /api/v1/blends"), requests.join(", "));

    // A file that is not a .blend is turned away before anything is sent…
    await page.locator("#blend-file").setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("hello") });
    await waitForText(page.getByRole("alert").filter({ hasText: "notes.txt" }), "is not a .blend file");
    assert.ok(!requests.includes("POST /api/v1/blends"), requests.join(", "));
    // …and one named like a scene is refused by the gateway, which says why.
    await page.locator("#blend-file").setInputFiles({ name: "broken.blend", mimeType: "", buffer: Buffer.from("%PDF-1.7 not a scene") });
    await waitForText(
      page.getByRole("alert").filter({ hasText: "broken.blend" }),
      "“broken.blend” was not accepted: not a .blend file: expected a Blender file header",
    );
    await waitForText(page.getByRole("alert").filter({ hasText: "broken.blend" }), "Nothing was locked.");
    assert.ok(requests.includes("POST /api/v1/blends"), "sent, and refused by the gateway");
    assert.equal(await page.getByTestId("scene-samples").isHidden(), true, "no scene to pay for");
    await context.close();
  });

  test("a job paid in the test ERC-20: exact approval, then openJob pulls the cost into the escrow", async () => {
    const { context, page } = await open();
    await signIn(page);
    await chooseScene(page);
    const token = page.getByLabel("Payment token");
    const option = token.locator("option", { hasText: "LTD" });
    await option.waitFor({ state: "attached" });
    await token.selectOption(await option.getAttribute("value"));
    // 0.01 LTD a frame: 10^16, beyond what a JavaScript number holds exactly.
    await page.getByLabel("Frames").fill("1");
    await page.getByLabel("Price per frame").fill("0.01");
    const price = 10n ** 16n;
    const cost = await quote(1, 1, price);
    const total = page.getByTestId("estimate-total");
    await waitForText(total, `${formatUnits(cost, 18)} LTD`);
    assert.equal(BigInt(await total.getAttribute("data-amount")), cost);
    await waitForText(page.getByTestId("estimate-balance"), "1000000 LTD");
    assert.equal(await page.locator("ol.steps > li").count(), 5, "check, sign, approve, lock, register");
    await waitForText(page.locator("ol.steps"), "Allow the escrow to take exactly the amount to lock in LTD");

    await page.getByTestId("pay").click();
    await page.waitForURL(/#\/jobs\/\d+$/, { timeout: 60_000 });
    const jobId = Number(new URL(page.url()).hash.split("/").at(-1));

    const sends = await wallet(page, "params", "eth_sendTransaction");
    assert.equal(sends.length, 2, "approve, then openJob");
    const approve = decodeFunctionData({ abi: tokenAbi, data: sends[0][0].data });
    assert.equal(getAddress(sends[0][0].to), getAddress(devnet.file.test_token));
    assert.equal(approve.functionName, "approve");
    assert.deepEqual([getAddress(approve.args[0]), approve.args[1]], [getAddress(devnet.file.escrow), cost]);
    const openJob = decodeFunctionData({ abi: escrowAbi, data: sends[1][0].data });
    assert.equal(openJob.functionName, "openJob");
    assert.equal(BigInt(sends[1][0].value ?? 0), 0n, "no native coin sent");

    // The allowance was exactly the cost once approved, and openJob used it up.
    const opened = await jobOpened(jobId);
    const approvedIn = await chain.getTransactionReceipt({
      hash: (await chain.getContractEvents({
        address: devnet.file.test_token,
        abi: tokenAbi,
        eventName: "Approval",
        args: { owner: devnet.file.artist, spender: devnet.file.escrow },
        fromBlock: 0n,
      })).at(-1).transactionHash,
    });
    const allowance = (blockNumber) =>
      chain.readContract({
        address: devnet.file.test_token,
        abi: tokenAbi,
        functionName: "allowance",
        args: [devnet.file.artist, devnet.file.escrow],
        blockNumber,
      });
    assert.equal(await allowance(approvedIn.blockNumber), cost);
    assert.equal(await allowance(opened.blockNumber), 0n);
    // The escrow's token balance rose by the cost in openJob's block, through a transfer from the artist.
    const balance = (blockNumber) =>
      chain.readContract({
        address: devnet.file.test_token,
        abi: tokenAbi,
        functionName: "balanceOf",
        args: [devnet.file.escrow],
        blockNumber,
      });
    assert.equal((await balance(opened.blockNumber)) - (await balance(opened.blockNumber - 1n)), cost);
    const receipt = await chain.getTransactionReceipt({ hash: opened.transactionHash });
    const transfers = receipt.logs
      .filter((l) => getAddress(l.address) === getAddress(devnet.file.test_token))
      .map((l) => decodeEventLog({ abi: transferEvent, data: l.data, topics: l.topics }).args);
    assert.deepEqual(transfers.map((t) => [getAddress(t.from), getAddress(t.to), t.value]), [
      [getAddress(devnet.file.artist), getAddress(devnet.file.escrow), cost],
    ]);
    assert.equal(getAddress(opened.args.token), getAddress(devnet.file.test_token));
    assert.equal(opened.args.pricePerFrame, price);
    // The gateway registered it with the full price (a u128 the page wrote out in full).
    const job = await page.evaluate((id) => fetch(`/api/v1/jobs/${id}`).then((r) => r.json()), jobId);
    assert.equal(job.price_per_frame, price.toString());
    assert.equal(getAddress(job.token), getAddress(devnet.file.test_token));
    await context.close();
  });

  test("a registration the gateway refuses after funding says the job is funded, and trying again registers it", async () => {
    const { context, page } = await open({ refusals: [503] });
    await signIn(page);
    await chooseScene(page);
    await page.getByLabel("Frames").fill("2");
    await waitForText(page.getByTestId("pay"), "Sign and lock");
    await page.getByTestId("estimate-total").waitFor();
    // The gateway answers the first registration with a refusal, as a restarting one would.
    await page.route(
      (url) => url.pathname === "/api/v1/jobs",
      (route) =>
        route.request().method() === "POST"
          ? route.fulfill({
              status: 503,
              contentType: "application/json",
              body: JSON.stringify({ code: "busy", error: "the gateway is restarting" }),
            })
          : route.continue(),
      { times: 1 },
    );
    const before = await chainState();
    await page.getByTestId("pay").click();
    const alert = page.getByRole("alert").filter({ hasText: "is funded on-chain" });
    const jobId = Number(before.nextJobId);
    await waitForText(alert, `Job ${jobId} is funded on-chain (`, 30_000);
    await waitForText(alert, "but the gateway did not register it. The gateway refused: the gateway is restarting.");
    await waitForText(alert, `cancel the job to get your money back: “lumen job cancel ${jobId}”`);
    assert.equal((await jobOpened(jobId)).args.frameCount, 1, "funded on-chain");
    const missing = await page.evaluate((id) => fetch(`/api/v1/jobs/${id}`).then((r) => r.status), jobId);
    assert.equal(missing, 404, "not registered");
    assert.equal(await page.getByTestId("pay").isHidden(), true, "no second payment for the same job");
    assert.deepEqual(await stepStates(page), ["done", "done", "done", "failed"]);
    await page.getByRole("button", { name: "Try registering again" }).click();
    await page.waitForURL(new RegExp(`#/jobs/${jobId}$`));
    const job = await page.evaluate((id) => fetch(`/api/v1/jobs/${id}`).then((r) => r.json()), jobId);
    assert.equal(job.frame_count, 1);
    assert.equal((await methods(page)).filter((m) => m === "eth_sendTransaction").length, 1, "one payment");
    await context.close();
  });

  test("rejecting the spec's signature opens nothing and asks for no transaction", async () => {
    const { context, page } = await open();
    await signIn(page);
    await chooseScene(page);
    await page.getByTestId("estimate-total").waitFor();
    const before = await chainState();
    await wallet(page, "rejectNext");
    await page.getByTestId("pay").click();
    const alert = page.getByRole("alert").filter({ hasText: "Job not opened" });
    await waitForText(alert, "Job not opened. You rejected the request in your wallet. Nothing was locked: your funds stay in your wallet.");
    const asked = await methods(page);
    assert.ok(asked.includes("eth_signTypedData_v4"), asked.join(", "));
    assert.ok(!asked.includes("eth_sendTransaction"), asked.join(", "));
    assert.deepEqual(await chainState(), before, "no job opened, no transaction sent");
    assert.deepEqual(await stepStates(page), ["done", "failed", "waiting", "waiting"], "checked, then the signature was refused");
    // The form is usable again.
    await page.getByTestId("pay").and(page.locator(":enabled")).waitFor();
    assert.equal(new URL(page.url()).hash, "#/submit");
    await context.close();
  });

  test("an account without the token is told so before anything is signed or approved", async () => {
    const { context, page } = await open({ account: NO_TOKENS });
    await signIn(page);
    await chooseScene(page);
    const token = page.getByLabel("Payment token");
    const option = token.locator("option", { hasText: "LTD" });
    await option.waitFor({ state: "attached" });
    await token.selectOption(await option.getAttribute("value"));
    await waitForText(page.getByTestId("estimate-balance"), "0 LTD — not enough for this job");
    const cost = await quote(2, 2, minPrice);
    const before = await chainState(NO_TOKENS);
    await page.getByTestId("pay").click();
    const alert = page.getByRole("alert").filter({ hasText: "Job not opened" });
    await waitForText(
      alert,
      `Not enough LTD: your account ${getAddress(NO_TOKENS).slice(0, 6)}…${getAddress(NO_TOKENS).slice(-4)} holds 0 LTD, ` +
        `and this job locks ${formatUnits(cost, 18)} LTD. Nothing was locked`,
    );
    const asked = await methods(page);
    assert.ok(!asked.includes("eth_signTypedData_v4"), asked.join(", "));
    assert.ok(!asked.includes("eth_sendTransaction"), asked.join(", "));
    assert.deepEqual(await stepStates(page), ["failed", "waiting", "waiting", "waiting", "waiting"]);
    const allowance = await chain.readContract({
      address: devnet.file.test_token,
      abi: tokenAbi,
      functionName: "allowance",
      args: [NO_TOKENS, devnet.file.escrow],
    });
    assert.equal(allowance, 0n, "no approval");
    assert.deepEqual(await chainState(NO_TOKENS), before, "no job opened, no transaction sent");
    await context.close();
  });

  test("a paused escrow: the decoded Escrow_Paused, before any prompt, and nothing locked", async () => {
    const admin = (functionName) =>
      fetch(devnet.file.rpc_url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "eth_sendTransaction",
          params: [{ from: ADMIN, to: devnet.file.escrow, data: encodeFunctionData({ abi: escrowAbi, functionName }) }],
        }),
      })
        .then((r) => r.json())
        .then((body) => chain.waitForTransactionReceipt({ hash: body.result }));
    const { context, page } = await open();
    try {
      await signIn(page);
      await chooseScene(page);
      await page.getByTestId("estimate-total").waitFor();
      assert.equal((await admin("pause")).status, "success");
      const before = await chainState();
      await page.getByTestId("pay").click();
      const alert = page.getByRole("alert").filter({ hasText: "Job not opened" });
      await waitForText(
        alert,
        "Job not opened. The escrow is paused by its owner: no job can be opened now (the contract reverted with Escrow_Paused()). " +
          "Nothing was locked",
      );
      const asked = await methods(page);
      assert.ok(!asked.includes("eth_signTypedData_v4"), asked.join(", "));
      assert.ok(!asked.includes("eth_sendTransaction"), asked.join(", "));
      assert.deepEqual(await stepStates(page), ["failed", "waiting", "waiting", "waiting"]);
      assert.deepEqual(await chainState(), before, "no job opened, no transaction sent");
      await alert.scrollIntoViewIfNeeded();
      await page.screenshot({ path: join(SHOTS, "submit-error.png") });
    } finally {
      await admin("unpause");
    }
    assert.equal(await chain.readContract({ address: devnet.file.escrow, abi: escrowAbi, functionName: "paused" }), false);
    await context.close();
  });

  test("no page had a script error or a policy violation", () => {
    assert.deepEqual(problems, []);
  });
});
