// Unit tests of the dashboard's pure parts (the SIWE message, error words,
// routing, wallet discovery), bundled from the TypeScript sources with
// esbuild and run in Node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const web = fileURLToPath(new URL("..", import.meta.url));

async function load() {
  const out = await build({
    stdin: {
      contents: [
        'export * from "./src/siwe";',
        'export * from "./src/errors";',
        'export * from "./src/router";',
        'export * from "./src/format";',
        'export * from "./src/wallets";',
        'export { tokenAmount, learn } from "./src/tokens";',
        'export { escrowAbi } from "./src/abi";',
        'export { RevertedOnChain } from "./src/chain";',
        'export { ContractFunctionExecutionError, ContractFunctionRevertedError, encodeErrorResult } from "viem";',
      ].join("\n"),
      resolveDir: web,
      loader: "ts",
    },
    bundle: true,
    format: "esm",
    platform: "browser",
    write: false,
    logLevel: "error",
  });
  const dir = mkdtempSync(join(tmpdir(), "lumen-web-unit-"));
  const file = join(dir, "units.mjs");
  writeFileSync(file, out.outputFiles[0].text);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const m = await load();

// The fixture `SiweChallenge::message` is tested against too.
const fixture = JSON.parse(readFileSync(join(web, "../../crates/protocol/fixtures/siwe-message.json"), "utf8"));

test("the SIWE message is SiweChallenge::message's, with a checksummed address", () => {
  assert.equal(m.siweMessage(fixture.challenge, fixture.address), fixture.message);
  assert.ok(fixture.message.includes("\n0x70997970C51812dc3A010C7d01b50e0d17dc79C8\n"), "checksummed");
  assert.throws(() => m.siweMessage(fixture.challenge, "0x1234"), /address/i);
});

test("wallet errors are found along the cause chain and said in plain words", () => {
  const rejected = { code: 4001, message: "User rejected the request." };
  assert.equal(m.walletCode(rejected), 4001);
  // As viem wraps it: its own error with the provider's as `cause`.
  const wrapped = Object.assign(new Error("User rejected the request."), { cause: Object.assign(new Error("inner"), { cause: rejected }) });
  assert.equal(m.walletCode(wrapped), 4001);
  assert.match(m.describeError(wrapped), /rejected the request in your wallet/);
  assert.match(m.describeError({ code: 4902 }), /does not know this network/);
  assert.match(m.describeError({ code: -32002 }), /already has a request waiting/);
  assert.match(m.describeError({ code: 4100 }), /not allowed this page/);
  assert.match(m.describeError(new Error("insufficient funds for gas * price + value")), /enough funds/);
  assert.match(m.describeError(new TypeError("Failed to fetch")), /gateway cannot be reached/);
  // A cause cycle ends the walk instead of looping.
  const a = {}, b = { cause: a };
  a.cause = b;
  assert.equal(m.walletCode(a), undefined);
  assert.equal(m.describeError(new Error("something odd")), "Something odd.");
});

test("gateway errors keep their message, with words for the known codes", () => {
  const refused = new m.ApiError("/api/v1/auth/siwe", 401, "bad_signature", "the message is not signed by 0xabc");
  assert.equal(m.describeError(refused), "The gateway refused: the message is not signed by 0xabc.");
  assert.match(m.describeError(new m.ApiError("/x", 429, "rate_limited", "slow down")), /busy/);
  assert.match(m.describeError(new m.ApiError("/x", 401, "nonce_expired", "expired")), /try again/);
  assert.match(m.describeError(new m.ApiError("/x", 401, "unauthorized", "sign in first")), /not signed in/);
});

test("hash routes match literal segments and parameters", () => {
  const routes = [
    { path: "/", view: "home" },
    { path: "/jobs/:id", view: "job" },
    { path: "/explorer/tx/:hash", view: "tx" },
  ];
  const at = (hash) => {
    const match = m.matchRoute(routes, m.hashPath(hash));
    return match && [match.route.view, match.params];
  };
  assert.deepEqual(at(""), ["home", {}]);
  assert.deepEqual(at("#"), ["home", {}]);
  assert.deepEqual(at("#/"), ["home", {}]);
  assert.deepEqual(at("#/jobs/7"), ["job", { id: "7" }]);
  assert.deepEqual(at("#/jobs/7/"), ["job", { id: "7" }]);
  assert.deepEqual(at("#/jobs/7?tab=frames"), ["job", { id: "7" }]);
  assert.deepEqual(at("#/explorer/tx/0xab%20cd"), ["tx", { hash: "0xab cd" }]);
  assert.equal(at("#/jobs"), null);
  assert.equal(at("#/jobs/7/frames"), null);
  assert.equal(at("#/jobs/%E0%A4%A"), null, "a broken escape is no match");
  assert.equal(m.href("/jobs/3"), "#/jobs/3");
});

test("formatting: short hex, chain names, ether amounts", () => {
  assert.equal(m.short("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"), "0x7099…79C8");
  assert.equal(m.short("0x70997970c51812dc3a010c7d01b50e0d17dc79c8"), "0x7099…79C8", "addresses checksummed");
  assert.equal(m.short("0x" + "ab".repeat(32)), "0xabab…abab", "hashes as they are");
  assert.equal(m.short(null), "");
  assert.equal(m.chainName(31337), "the local devnet (chain 31337)");
  assert.equal(m.chainName(1), "Ethereum (chain 1)");
  assert.equal(m.chainName(999999), "chain 999999");
  assert.equal(m.ether("1500000000000000000"), "1.5 ETH");
  assert.equal(m.ether("not a number"), "not a number wei");
  assert.ok(m.sameAddress("0xAB", "0xab"));
  assert.ok(!m.sameAddress(null, "0xab"));
});

test("wallet discovery lists every announced wallet once, and window.ethereum only when none announces", () => {
  const page = new EventTarget();
  globalThis.window = page;
  try {
    const provider = { request: async () => null };
    const legacy = { request: async () => null };
    page.ethereum = legacy;
    const seen = [];
    // A wallet that answers requestProvider, as EIP-6963 wallets do.
    const announce = (uuid, name, icon) =>
      page.dispatchEvent(
        new CustomEvent("eip6963:announceProvider", { detail: { info: { uuid, name, icon, rdns: "dev.test" }, provider } }),
      );
    let requested = 0;
    page.addEventListener("eip6963:requestProvider", () => requested++);
    const stop = m.discoverWallets((wallets) => seen.push(wallets.map((w) => w.info.name)));
    assert.equal(requested, 1, "discovery asks wallets to announce");
    assert.deepEqual(seen.at(-1), ["Browser wallet"], "nobody announced: the legacy provider");
    announce("a", "Wallet A", "data:image/svg+xml,<svg/>");
    announce("b", "Wallet B", "https://tracker.example/icon.png");
    announce("a", "Wallet A again", "");
    page.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: { info: { uuid: "c" } } }));
    assert.deepEqual(seen.at(-1), ["Wallet A", "Wallet B"]);
    let last;
    stop();
    m.discoverWallets((wallets) => (last = wallets));
    announce("a", "Wallet A", "data:image/svg+xml,<svg/>");
    announce("b", "Wallet B", "https://tracker.example/icon.png");
    assert.equal(last[0].info.icon, "data:image/svg+xml,<svg/>");
    assert.equal(last[1].info.icon, "", "an icon that is not a data: image is dropped");
    assert.equal(last[0].provider, provider);
  } finally {
    delete globalThis.window;
  }
});

test("contract reverts are shown as their decoded custom error, in words where the page knows them", async () => {
  const m = await load();
  const revert = (data, functionName = "refund") =>
    new m.ContractFunctionExecutionError(
      new m.ContractFunctionRevertedError({ abi: m.escrowAbi, data, functionName }),
      { abi: m.escrowAbi, functionName, args: [] },
    );
  const notRefundable = m.encodeErrorResult({ abi: m.escrowAbi, errorName: "Escrow_NotRefundable", args: [7n] });
  assert.equal(
    m.describeError(revert(notRefundable)),
    "The job cannot be refunded yet (its deadline has not passed) or was already (the contract reverted with Escrow_NotRefundable(7)).",
  );
  // An error without words of its own is still named, with its arguments.
  const mismatch = m.encodeErrorResult({ abi: m.escrowAbi, errorName: "Escrow_FrameOutOfRange", args: [3n, 99n] });
  assert.equal(m.describeError(revert(mismatch)), "The contract reverted with Escrow_FrameOutOfRange(3, 99).");
  // A selector the ABI does not have.
  assert.equal(
    m.describeError(revert("0xdeadbeef")),
    "The contract reverted with an error this page does not know (0xdeadbeef).",
  );
  // Not a revert: the wallet's words win.
  assert.equal(m.contractRevert(Object.assign(new Error("User rejected"), { code: 4001 })), null);
  // Mined, then reverted.
  const mined = new m.RevertedOnChain({ transactionHash: "0xab", blockNumber: 12n, status: "reverted" });
  assert.equal(m.describeError(mined), "The transaction 0xab reverted on-chain in block 12: nothing changed.");
});

test("amounts in their token: whole tokens when the decimals are known, raw units otherwise; times in UTC", () => {
  const native = "0x0000000000000000000000000000000000000000";
  const ltd = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
  assert.equal(m.tokenAmount("1950000000000000", native), "0.00195 ETH");
  assert.equal(m.tokenAmount("2500", ltd), "2500 units of 0x5FbD…0aa3", "unknown token");
  m.learn([{ token: ltd.toLowerCase(), symbol: "LTD", decimals: 6 }]);
  assert.equal(m.tokenAmount("2500", ltd), "0.0025 LTD");
  assert.equal(m.tokenAmount("7", null), "7 units of the job's token");
  assert.equal(m.units("15", 1, "X"), "1.5 X");
  assert.equal(m.units("15", null, "X"), "15 units of X");
  assert.equal(m.units("oops", 18, "X"), "oops units of X");
  assert.equal(m.utc(1_769_904_000), "2026-02-01 00:00:00 UTC");
  assert.equal(m.utc(null), "");
});

test("a withdrawal with nothing to withdraw says so, naming the escrow's custom error", () => {
  const args = { abi: m.escrowAbi, functionName: "withdraw" };
  const data = m.encodeErrorResult({ abi: m.escrowAbi, errorName: "Escrow_NothingToWithdraw" });
  const reverted = new m.ContractFunctionRevertedError({ ...args, data });
  const err = new m.ContractFunctionExecutionError(reverted, { ...args, args: ["0x0000000000000000000000000000000000000000"] });
  assert.equal(
    m.describeError(err),
    "There is nothing to withdraw in this token: the credit was already withdrawn, or none was earned " +
      "(the contract reverted with Escrow_NothingToWithdraw()).",
  );
});
