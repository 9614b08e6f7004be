// Unit tests of the dashboard's pure parts (the SIWE message, error words,
// routing, wallet discovery, the submit page's fields and hashing), bundled from the TypeScript sources with
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
        'export * from "./src/jobform";',
        'export * from "./src/upload";',
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

/** A scene as the gateway reports it. */
const scene = (over = {}) => ({
  frame_start: 1,
  frame_end: 24,
  frame_step: 1,
  width: 64,
  height: 36,
  engine: "CYCLES",
  fps: 24,
  saved_with: "3.4.1",
  samples: 4,
  ...over,
});
const market = { max_frames_per_job: 10_000, min_deadline_secs: 3_600, tokens: [{ token: m.NATIVE, min_price_per_frame: "1000000000000" }] };
const value = (parsed) => (parsed.ok ? parsed.value : `error: ${parsed.error}`);

test("frame ranges: A-B or one frame, inside the scene's range and on its step", () => {
  assert.deepEqual(value(m.parseFrameRange("1-24", scene())), { start: 1, end: 24 });
  assert.deepEqual(value(m.parseFrameRange(" 3 – 7 ", scene())), { start: 3, end: 7 }, "en dash, spaces");
  assert.deepEqual(value(m.parseFrameRange("5..6", scene())), { start: 5, end: 6 });
  assert.deepEqual(value(m.parseFrameRange("5", scene())), { start: 5, end: 5 });
  assert.deepEqual(value(m.parseFrameRange("-2-4", scene({ frame_start: -5 }))), { start: -2, end: 4 }, "negative frames");
  assert.match(value(m.parseFrameRange("", scene())), /Enter the frames/);
  assert.match(value(m.parseFrameRange("1 to 5", scene())), /is not a frame range: write first-last/);
  assert.match(value(m.parseFrameRange("7-3", scene())), /last frame \(3\) comes before the first \(7\)/);
  assert.match(value(m.parseFrameRange("0-5", scene())), /Frames 0-5 are outside the scene's range 1-24/);
  assert.match(value(m.parseFrameRange("20-25", scene())), /outside/);
  const stepped = scene({ frame_step: 2 });
  assert.deepEqual(value(m.parseFrameRange("3-9", stepped)), { start: 3, end: 9 });
  assert.match(value(m.parseFrameRange("2-9", stepped)), /every 2 frames from 1: start on one of those \(1 or 3\)/);
  assert.equal(m.frameCount(1, 24, 1), 24);
  assert.equal(m.frameCount(3, 9, 2), 4);
  assert.equal(m.frameCount(3, 10, 2), 4, "the last frame off the step is not rendered");
  assert.equal(m.frameCount(5, 4, 1), 0);
  assert.equal(m.sceneRange(scene()), "1-24");
  assert.equal(m.sceneRange(scene({ frame_end: 1 })), "1");
  assert.match(m.frameLimit(10_001, market), /10001 frames: this gateway takes at most 10000 per job/);
  assert.equal(m.frameLimit(10_000, market), null);
});

test("prices: decimals of the token, exact, never rounded", () => {
  assert.equal(value(m.parseAmount("0.001", 18, "ETH")), 10n ** 15n);
  assert.equal(value(m.parseAmount("1", 18, "ETH")), 10n ** 18n);
  assert.equal(value(m.parseAmount(".5", 18, "ETH")), 5n * 10n ** 17n);
  assert.equal(value(m.parseAmount(" 2. ", 6, "USDC")), 2_000_000n);
  // Above 2^53: exact, as a bigint.
  assert.equal(value(m.parseAmount("0.009007199254740993", 18, "LTD")), 9007199254740993n);
  assert.equal(value(m.parseAmount("12", 0, "PTS")), 12n);
  assert.match(value(m.parseAmount("", 18, "ETH")), /Enter a price/);
  assert.match(value(m.parseAmount("0", 18, "ETH")), /above zero/);
  assert.match(value(m.parseAmount("0.0000000000000000001", 18, "ETH")), /ETH has 18 decimals: 0.0000000000000000001 has 19/);
  assert.match(value(m.parseAmount("1.5", 0, "PTS")), /PTS has no decimals/);
  for (const wrong of ["1e3", "-1", "1,5", "0x10", ".", "abc", "1 000"]) {
    assert.match(value(m.parseAmount(wrong, 18, "ETH")), /is not a number/, wrong);
  }
  assert.match(value(m.parseAmount("340282366920938463463.374607431768211456", 18, "ETH")), /too large/, "2^128 wei");
  assert.equal(value(m.parseAmount("340282366920938463463.374607431768211455", 18, "ETH")), (1n << 128n) - 1n);
  const terms = market.tokens[0];
  assert.equal(m.priceLimit(10n ** 12n, terms, 18, "ETH"), null);
  assert.equal(m.priceLimit(10n ** 12n - 1n, terms, 18, "ETH"), "This gateway takes at least 0.000001 ETH a frame.");
  assert.equal(m.tokenTerms(market, "0x0000000000000000000000000000000000000000"), terms);
  assert.equal(m.tokenTerms(market, "0x00000000000000000000000000000000000000ee"), undefined);
});

test("costs are shown in whole tokens without trailing zeros", () => {
  assert.equal(m.formatAmount(4_000_000_000_000n, 18, "ETH"), "0.000004 ETH");
  assert.equal(m.formatAmount(10n ** 24n, 18, "LTD"), "1000000 LTD");
  assert.equal(m.formatAmount(0n, 18, "LTD"), "0 LTD");
  assert.equal(m.formatAmount(1_500_000n, 6, "USDC"), "1.5 USDC");
});

test("verification renders and the deadline", () => {
  assert.equal(value(m.parseVerifications("2", 2)), 2);
  assert.equal(value(m.parseVerifications("0", 2)), 0);
  assert.match(value(m.parseVerifications("3", 2)), /At most one per frame: 2 for 2 frames/);
  assert.match(value(m.parseVerifications("-1", 2)), /whole number from 0 to 2/);
  assert.match(value(m.parseVerifications("", 1)), /whole number from 0 to 1/);
  // An hour's minimum at the gateway leaves 2 whole hours once the transaction's time is counted.
  assert.equal(m.minDeadlineHours(market), 2);
  assert.equal(m.minDeadlineHours({ ...market, min_deadline_secs: 0 }), 1);
  assert.equal(m.minDeadlineHours({ ...market, min_deadline_secs: 86_400 }), 25);
  assert.equal(value(m.parseDeadlineHours("24", market)), 24);
  assert.equal(
    value(m.parseDeadlineHours("1", market)),
    "error: At least 2 hours: this gateway needs 1 hour to render and settle once the job is registered.",
  );
  assert.match(value(m.parseDeadlineHours("1.5", market)), /whole number of hours, at least 2/);
  assert.equal(m.duration(3_600), "1 hour");
  assert.equal(m.duration(5_400), "90 minutes");
  assert.equal(m.duration(86_400), "24 hours");
  assert.equal(m.duration(172_800), "2 days");
  assert.equal(m.duration(45), "45 seconds");
  assert.equal(m.engineName("BLENDER_EEVEE_NEXT"), "EEVEE");
  assert.equal(m.engineName("SOMETHING_NEW"), "SOMETHING_NEW");
});

test("the job spec and its registration body, with the u128 price written out in full", () => {
  const hash = "0x" + "ab".repeat(32);
  const spec = m.jobSpec(hash, scene({ frame_step: 2 }), { start: 3, end: 9 }, m.NATIVE, (1n << 100n) + 1n, 255n);
  assert.deepEqual(
    { ...spec, pricePerFrame: String(spec.pricePerFrame), salt: String(spec.salt) },
    {
      blendHash: hash,
      frameStart: 3,
      frameEnd: 9,
      frameStep: 2,
      width: 64,
      height: 36,
      engine: "CYCLES",
      token: m.NATIVE,
      pricePerFrame: "1267650600228229401496703205377",
      salt: "255",
    },
  );
  const body = m.registerJobBody(7n, spec, "0x1234");
  assert.equal(
    body,
    `{"job_id":7,"spec":{"blendHash":"${hash}","frameStart":3,"frameEnd":9,"frameStep":2,"width":64,"height":36,` +
      `"engine":"CYCLES","token":"${m.NATIVE}","pricePerFrame":1267650600228229401496703205377,"salt":"0xff"},` +
      `"signature":"0x1234"}`,
  );
  assert.doesNotThrow(() => JSON.parse(body));
  const a = m.randomSalt();
  assert.ok(a >= 0n && a < 1n << 256n);
  assert.notEqual(a, m.randomSalt());
});

test("a file's blake3 is the same in one slice or many, with progress, and hashing can be cancelled", async () => {
  const { blake3 } = await import("@noble/hashes/blake3");
  const hex = (bytes) => "0x" + Buffer.from(bytes).toString("hex");
  // The reference vectors of BLAKE3.
  assert.equal(await m.hashFile(new Blob([])), "0xaf1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
  assert.equal(await m.hashFile(new Blob(["abc"])), "0x6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
  const bytes = Uint8Array.from({ length: 5_000 }, (_, i) => (i * 31) % 251);
  const seen = [];
  const sliced = await m.hashFile(new Blob([bytes]), (done, total) => seen.push([done, total]), undefined, 1_024);
  assert.equal(sliced, hex(blake3(bytes)));
  assert.deepEqual(seen.map(([done]) => done), [0, 1024, 2048, 3072, 4096, 5000]);
  assert.ok(seen.every(([, total]) => total === 5_000));
  const stop = new AbortController();
  const hashing = m.hashFile(new Blob([bytes]), () => stop.abort(), stop.signal, 1_024);
  await assert.rejects(hashing, (err) => err.name === "AbortError");
  assert.ok(m.isBlendName("Scene.BLEND"));
  assert.ok(!m.isBlendName("scene.blend1"), "Blender's backups are not scenes");
  assert.ok(!m.isBlendName("scene.blend.zip"));
  assert.equal(m.formatBytes(999), "999 B");
  assert.equal(m.formatBytes(1_500), "1.5 kB");
  assert.equal(m.formatBytes(579_012), "579 kB");
  assert.equal(m.formatBytes(2_300_000_000), "2.3 GB");
  assert.equal(m.percent(1, 3), 33);
  assert.equal(m.percent(5, 5), 100);
  assert.equal(m.percent(0, 0), 0);
});
