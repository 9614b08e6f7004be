// The operator page and the explorer in a real browser against a real
// devnet (two nodes of two owners, a 2-frame Blender job rendered, verified
// and paid on-chain): the connected owner's nodes and credit match the API
// and the chain, a withdrawal from the wallet moves real coin, a rejected
// or empty withdrawal says why, another owner's page is read-only, and the
// withdrawal's transaction, its owner and the job can be followed through
// the explorer. Screenshots go to docs/screenshots (LUMEN_SCREENSHOT_DIR).
//
//   cargo build --bin lumen && (cd gateway/web && npm run test:browser)
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { createPublicClient, formatEther, getAddress, http, parseAbi } from "viem";
import { root, startDevnet } from "./devnet.mjs";
import { makeScene, waitForText, wallet } from "./kit.mjs";
import { installTestWallet, rpcBridge } from "./wallet.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = process.env.LUMEN_SCREENSHOT_DIR ?? join(root, "docs", "screenshots");
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const TEST_WALLET = { uuid: "4f0c6b9e-0a55-4a64-9d2f-6b1a3f2c7e01", name: "Lumen Test Wallet", rdns: "dev.lumen.test-wallet" };
const NATIVE = "0x0000000000000000000000000000000000000000";
const ABI = parseAbi([
  "function credits(address account, address token) view returns (uint256)",
  "struct NodeInfo { address owner; bool active; uint40 unbondingAt; uint40 boundAt; uint256 stake; uint256 unbonding; }",
  "function nodeInfo(address node) view returns (NodeInfo)",
]);

let devnet;
let browser;
let chain;
/** The job the devnet's artist submitted, paid on-chain. */
let jobId = null;
/** The owner that withdraws (the one with the larger credit) and its node; the other owner. */
let owner;
let node;
let other;
/** The page that withdrew, kept open to follow its transaction link into the explorer. */
let withdrew = null;
const problems = [];

const skip = () => {
  if (process.env.LUMEN_SKIP_BLENDER === "1") return "LUMEN_SKIP_BLENDER=1";
  return spawnSync("blender", ["--version"], { stdio: "ignore" }).status === 0 ? false : "no Blender to make a job's scene";
};

/** A 2-frame 64×36 scene submitted through the CLI by the devnet's artist; its id. */
function submitJob() {
  const scene = join(devnet.dir, "scene.blend");
  makeScene(scene);
  return Number(devnet.lumen(["job", "submit", scene]).trim().split("\n").at(-1));
}

const credits = (who, token = NATIVE) =>
  chain.readContract({ address: devnet.file.escrow, abi: ABI, functionName: "credits", args: [who, token] });

async function operatorView(who) {
  const response = await fetch(`${devnet.file.gateway_url}/api/v1/operators/${who.toLowerCase()}`);
  assert.equal(response.status, 200);
  return response.json();
}

before(async () => {
  if (skip()) return;
  mkdirSync(SHOTS, { recursive: true });
  [devnet, browser] = await Promise.all([
    startDevnet({ nodes: 2 }),
    chromium.launch({ executablePath: CHROMIUM, headless: true }),
  ]);
  chain = createPublicClient({ transport: http(devnet.file.rpc_url) });
  jobId = submitJob();
  // Rendered, verified and paid on-chain (the CLI waits for the payouts).
  devnet.lumen(["job", "wait", String(jobId), "--timeout", "100"]);
  const owners = await Promise.all(
    devnet.file.nodes.map(async (n) => ({ owner: n.owner, node: n.address, credit: await credits(n.owner) })),
  );
  owners.sort((a, b) => (a.credit < b.credit ? 1 : a.credit > b.credit ? -1 : 0));
  assert.ok(owners[0].credit > 0n, "an owner was credited");
  ({ owner, node } = owners[0]);
  other = owners[1];
});

after(async () => {
  await browser?.close();
  await devnet?.stop();
});

/** A fresh browser profile whose wallet is `account`, on `path`, connected. */
async function openAs(account, path, { viewport = DESKTOP } = {}) {
  const context = await browser.newContext({ viewport, colorScheme: "light" });
  await context.exposeFunction("__lumenWalletRpc", rpcBridge(devnet.file.rpc_url));
  await context.addInitScript(installTestWallet, { account, chainId: devnet.file.chain_id, wallets: [TEST_WALLET] });
  const page = await context.newPage();
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    // Signed out, the page's session check is answered 401; anything else is a problem.
    if (msg.type() === "error" && !/status of 401 /.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  await page.goto(`${devnet.file.gateway_url}/#${path}`);
  await page.getByRole("heading", { level: 1 }).waitFor();
  await page.getByRole("button", { name: "Connect wallet" }).click();
  await page.getByTestId("account").waitFor();
  return { context, page };
}


const cell = (row, col) => row.locator(`[data-col="${col}"]`).textContent();
const eth = (wei) => `${formatEther(BigInt(wei))} ETH`;

async function checkNames(page) {
  const found = await page.evaluate(() => ({
    unnamed: [...document.querySelectorAll("button, a[href], input")]
      .filter((el) => el.getClientRects().length > 0)
      .filter((el) => !(el.textContent.trim() || el.getAttribute("aria-label") || el.labels?.length))
      .map((el) => el.outerHTML),
    h1: document.querySelectorAll("h1").length,
  }));
  assert.deepEqual(found, { unnamed: [], h1: 1 });
}

async function shot(page, name) {
  await checkNames(page);
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

const overflow = (page) =>
  page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);

describe("operator page and explorer in Chromium", { skip: skip() }, () => {
  test("the owner's page lists its node as the API and the chain have it, with its credit to withdraw", async () => {
    const { context, page } = await openAs(owner, "/operator");
    await page.getByRole("heading", { name: "My nodes", level: 1 }).waitFor();
    const row = page.locator(`tr[data-node="${node.toLowerCase()}"]`);
    await row.waitFor();
    await waitForText(row, "HEALTHY");
    const api = await operatorView(owner);
    const mine = api.nodes.find((n) => n.node === node.toLowerCase());
    assert.ok(mine.jobs_completed > 0, "the node was paid for renders");
    assert.match(await cell(row, "heartbeat"), /^\d+ s ago$/);
    assert.equal(await cell(row, "reputation"), `${Math.round(mine.trust.reputation * 100)} %`);
    assert.equal(await cell(row, "frames"), String(mine.jobs_completed));
    assert.equal(await cell(row, "credits"), String(mine.jobs_completed * 10));
    assert.equal(await cell(row, "earned"), eth(mine.earned.find((t) => t.token === NATIVE).amount));
    const info = await chain.readContract({ address: devnet.file.registry, abi: ABI, functionName: "nodeInfo", args: [node] });
    assert.equal(await cell(row, "stake"), eth(info.stake), "the registry's stake");
    // The other owner's node is not on this page.
    assert.equal(await page.locator(`tr[data-node="${other.node.toLowerCase()}"]`).count(), 0);

    // The credit is the escrow's, read over RPC; earned and withdrawn the mirror's.
    const native = page.locator(`tr[data-token="${NATIVE}"]`);
    const credit = await credits(owner);
    assert.equal(await cell(native, "withdrawable"), eth(credit));
    assert.equal(await cell(native, "withdrawn"), "0 ETH");
    assert.equal(await cell(native, "earned"), eth(api.tokens[0].earned));
    // The devnet's test token, named by its contract.
    const ltd = page.locator(`tr[data-token="${devnet.file.test_token.toLowerCase()}"]`);
    await waitForText(ltd, "LTD");
    assert.equal(await cell(ltd, "withdrawable"), "0 LTD");
    await page.getByRole("button", { name: `Withdraw ${eth(credit)}` }).waitFor();
    await waitForText(page.getByTestId("access"), "This is your connected wallet");
    await shot(page, "operator");
    await context.close();
  });

  test("at 390 px the page does not scroll sideways and the keyboard reaches Withdraw", async () => {
    const { context, page } = await openAs(owner, "/operator", { viewport: PHONE });
    const button = page.getByRole("button", { name: /^Withdraw / });
    await button.waitFor();
    assert.equal(await overflow(page), 0, "horizontal scroll at 390 px");
    await page.locator("body").focus();
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = await page.evaluate(() => document.activeElement?.textContent?.startsWith("Withdraw ") ?? false);
    }
    assert.ok(reached, "Tab reaches the Withdraw button");
    const ring = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(ring, "none");
    await shot(page, "operator-phone");
    await context.close();
  });

  test("a rejected withdrawal says so and changes nothing", async () => {
    const { context, page } = await openAs(owner, "/operator");
    const button = page.getByRole("button", { name: /^Withdraw / });
    await button.waitFor();
    const [credit, balance] = await Promise.all([credits(owner), chain.getBalance({ address: owner })]);
    await wallet(page, "rejectNext");
    await button.click();
    await waitForText(page.getByTestId("withdraw-error"), "Not withdrawn. You rejected the request in your wallet.");
    assert.equal(await page.getByTestId("withdraw-error").getAttribute("role"), "alert");
    assert.equal(await credits(owner), credit);
    assert.equal(await chain.getBalance({ address: owner }), balance);
    const sent = (await wallet(page, "requests")).filter((r) => r.endsWith("eth_sendTransaction"));
    assert.equal(sent.length, 1, "asked once, refused by the person");
    // And it can be tried again.
    await page.waitForFunction(() => document.querySelector("button[data-focus^='withdraw:']")?.disabled === false);
    await context.close();
  });

  test("withdraw: the wallet sends withdraw(0x0), the coin arrives, the page follows; a stale page is told there is nothing left", async () => {
    // A second page of the same owner, in a background tab: it does not
    // refresh and still offers the old credit.
    const stale = await openAs(owner, "/operator");
    await stale.page.getByRole("button", { name: /^Withdraw / }).waitFor();
    await stale.page.evaluate(() => Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" }));

    const { context, page } = await openAs(owner, "/operator");
    const button = page.getByRole("button", { name: /^Withdraw / });
    await button.waitFor();
    const credit = await credits(owner);
    await page.evaluate(() => {
      // Every status the page shows while withdrawing.
      window.__statuses = [];
      const status = document.querySelector('[data-testid="withdraw-status"]');
      new MutationObserver(() => window.__statuses.push(status.textContent)).observe(status, { childList: true, subtree: true, characterData: true });
    });
    await button.click();
    const status = page.getByTestId("withdraw-status");
    await waitForText(status, `Withdrew ${eth(credit)} in block`);
    const statuses = (await page.evaluate(() => window.__statuses)).filter(Boolean);
    const steps = ["Checking the withdrawal with the escrow…", "Waiting for your signature in Lumen Test Wallet…", "Withdrawal sent, waiting for it to be mined"];
    for (const step of steps) assert.ok(statuses.some((s) => s.startsWith(step)), `${step} in ${JSON.stringify(statuses)}`);

    // The transaction: withdraw(address(0)) from the owner to the escrow.
    const link = status.getByRole("link");
    const hash = await link.getAttribute("title");
    const [params] = await wallet(page, "params", "eth_sendTransaction");
    assert.equal(params[0].from.toLowerCase(), owner.toLowerCase());
    assert.equal(params[0].to.toLowerCase(), devnet.file.escrow.toLowerCase());
    assert.ok(params[0].data.startsWith("0x51cff8d9"), "withdraw(address)");
    const receipt = await chain.getTransactionReceipt({ hash });
    assert.equal(receipt.status, "success");
    const gas = receipt.gasUsed * receipt.effectiveGasPrice;
    const [before, after] = await Promise.all([
      chain.getBalance({ address: owner, blockNumber: receipt.blockNumber - 1n }),
      chain.getBalance({ address: owner, blockNumber: receipt.blockNumber }),
    ]);
    assert.equal(after - before, credit - gas, "the balance rose by the credit less the gas");
    assert.equal(await credits(owner), 0n);

    // The page: no credit left at once (the chain's), withdrawn once the mirror has it.
    const native = page.locator(`tr[data-token="${NATIVE}"]`);
    await waitForText(native.locator('[data-col="withdrawable"]'), "0 ETH");
    assert.equal(await page.getByRole("button", { name: /^Withdraw / }).count(), 0);
    await waitForText(native.locator('[data-col="withdrawn"]'), eth(credit), 30_000);

    // The stale page still offers the old credit; the escrow refuses, in words.
    await stale.page.getByRole("button", { name: /^Withdraw / }).click();
    await waitForText(
      stale.page.getByTestId("withdraw-error"),
      "Not withdrawn. There is nothing to withdraw in this token: the credit was already withdrawn, or none was earned (the contract reverted with Escrow_NothingToWithdraw()).",
    );
    const staleSent = (await wallet(stale.page, "requests")).filter((r) => r.endsWith("eth_sendTransaction"));
    assert.deepEqual(staleSent, [], "refused by the simulation: the wallet was never asked");
    await stale.context.close();
    withdrew = { context, page, hash };
  });

  test("another owner's page is read-only", async () => {
    const { context, page } = await openAs(owner, `/operator/${other.owner.toLowerCase()}`);
    await page.getByRole("heading", { name: "Operator", level: 1 }).waitFor();
    await page.locator(`tr[data-node="${other.node.toLowerCase()}"]`).waitFor();
    await waitForText(page.getByTestId("access"), "Read-only: only this owner's wallet can withdraw its credit.");
    assert.ok((await credits(other.owner)) > 0n, "it has a credit");
    await waitForText(page.locator(`tr[data-token="${NATIVE}"] [data-col="withdrawable"]`), eth(await credits(other.owner)));
    assert.equal(await page.getByRole("button", { name: /^Withdraw/ }).count(), 0);
    await context.close();
  });

  test("without a wallet, the page looks an owner up by address", async () => {
    const context = await browser.newContext({ viewport: DESKTOP, colorScheme: "light" });
    const page = await context.newPage();
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
    await page.goto(`${devnet.file.gateway_url}/#/operator`);
    await waitForText(page.locator("main"), "Connect your wallet");
    const field = page.getByLabel("Owner address");
    await field.fill("0x1234");
    await field.press("Enter");
    assert.equal(new URL(page.url()).hash, "#/operator", "an address that is not one goes nowhere");
    await field.fill(getAddress(other.owner));
    await page.getByRole("button", { name: "Show nodes" }).click();
    await page.getByRole("heading", { name: "Operator", level: 1 }).waitFor();
    assert.equal(new URL(page.url()).hash, `#/operator/${other.owner.toLowerCase()}`);
    await page.locator(`tr[data-node="${other.node.toLowerCase()}"]`).waitFor();
    await waitForText(page.getByTestId("access"), "Read-only");
    await context.close();
  });

  test("explorer: the withdrawal's transaction, its owner's address, the job's on-chain events", async () => {
    assert.ok(withdrew, "the withdrawal test ran");
    const { context, page, hash } = withdrew;
    await page.getByTestId("withdraw-status").getByRole("link").click();
    await page.getByRole("heading", { name: "Transaction", level: 1 }).waitFor();
    assert.equal(new URL(page.url()).hash, `#/explorer/tx/${hash}`);
    await waitForText(page.locator("main"), "succeeded");
    const event = page.locator('tr[data-event="CreditsWithdrawn"]');
    await event.waitFor();
    const credited = (await operatorView(owner)).tokens[0].withdrawn;
    await waitForText(event, eth(credited));

    // From the sender's address link to its page: payouts and the withdrawal.
    await page.locator(".stat", { hasText: "from" }).getByRole("link").click();
    await page.getByRole("heading", { name: "Address", level: 1 }).waitFor();
    assert.equal(new URL(page.url()).hash, `#/explorer/address/${owner.toLowerCase()}`);
    await waitForText(page.locator("main"), getAddress(owner));
    // Its node rendered the frames or their verification renders: paid either way.
    const payouts = page.getByRole("region", { name: "Payouts" });
    await payouts.locator('tr[data-event="FramesReleased"], tr[data-event="VerificationsReleased"]').first().waitFor();
    const withdrawals = page.getByRole("region", { name: "Withdrawals" });
    await waitForText(withdrawals.locator('tr[data-event="CreditsWithdrawn"]'), eth(credited));
    await shot(page, "explorer-address");

    // From a payout's job to the job's explorer page: every on-chain event of it.
    await payouts.getByRole("link", { name: `Job ${jobId}` }).first().click();
    await page.getByRole("heading", { name: `Job ${jobId} on-chain`, level: 1 }).waitFor();
    assert.equal(new URL(page.url()).hash, `#/explorer/jobs/${jobId}`);
    const api = await (await fetch(`${devnet.file.gateway_url}/api/v1/explorer/jobs/${jobId}`)).json();
    const table = page.getByRole("region", { name: "On-chain events" });
    await table.locator('tr[data-event="JobOpened"]').waitFor();
    assert.deepEqual(
      await table.locator("tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.event)),
      api.events.map((e) => e.event.event),
    );
    assert.ok(api.events.some((e) => e.event.event === "FramesReleased"));
    await waitForText(page.getByRole("region", { name: "Slashes" }), "No node was slashed for this job.");
    await shot(page, "explorer-job");
    await context.close();
  });

  test("a slash on the job page links to its evidence bundle (rendered from API data: no node cheats on this devnet)", async () => {
    const context = await browser.newContext({ viewport: DESKTOP, colorScheme: "light" });
    const page = await context.newPage();
    page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
    const evidence = "0x" + "ab".repeat(32);
    const cheat = devnet.file.nodes[1].address.toLowerCase();
    await page.route(`**/api/v1/explorer/jobs/${jobId}`, async (route) => {
      const real = await (await route.fetch()).json();
      real.slashes = [{ node: cheat, frame_index: 1, reason: "outvoted by 2 independent renders", evidence, tx: null }];
      await route.fulfill({ json: real });
    });
    await page.goto(`${devnet.file.gateway_url}/#/explorer/jobs/${jobId}`);
    const slashes = page.getByRole("region", { name: "Slashes" });
    const link = slashes.getByRole("link", { name: "Evidence bundle" });
    await link.waitFor();
    assert.equal(await link.getAttribute("href"), `/api/v1/evidence/${evidence}`);
    await waitForText(slashes, "outvoted by 2 independent renders");
    await waitForText(slashes, "not sent yet");
    assert.equal(await slashes.getByRole("link", { name: /^0x/ }).getAttribute("href"), `${devnet.file.gateway_url}/#/explorer/address/${cheat}`);
    // The gateway serves only bans' evidence: this hash is none.
    assert.equal((await fetch(`${devnet.file.gateway_url}/api/v1/evidence/${evidence}`)).status, 404);
    // The page may be reloading (the change feed): let a routed answer in flight end quietly.
    await page.unrouteAll({ behavior: "ignoreErrors" });
    await context.close();
  });

  test("the leaderboard shows the owner's node with its badge", async () => {
    const { context, page } = await openAs(owner, "/leaderboard");
    const row = page.locator(`tr[data-node="${node.toLowerCase()}"]`);
    await row.waitFor();
    await waitForText(row, /Gold|Silver/);
    assert.equal(await row.getByRole("link").nth(1).getAttribute("href"), `${devnet.file.gateway_url}/#/explorer/address/${owner.toLowerCase()}`);
    await context.close();
  });

  test("no page had a script error or a policy violation", () => {
    assert.deepEqual(problems, []);
  });
});
