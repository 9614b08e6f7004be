// What every browser test file (and the job-page benchmark) does the same
// way: generate a scene with Blender, wait for text on the page, call the
// injected test wallet, sign in.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { root } from "./devnet.mjs";

/**
 * Writes an animated `frames`-frame scene to `path` with
 * `scripts/make-sample-scene.py` (Cycles, `width`×`height`, `samples`).
 */
export function makeScene(path, { frames = 2, width = 64, height = 36, samples = 4 } = {}) {
  const made = spawnSync(
    "blender",
    ["-b", "--factory-startup", "--python", join(root, "scripts/make-sample-scene.py"), "--python-exit-code", "3", "--",
      "--out", path, "--frames", String(frames), "--width", String(width), "--height", String(height),
      "--samples", String(samples)],
    { stdio: "ignore", timeout: 120_000 },
  );
  assert.equal(made.status, 0, "scene generation failed (is Blender installed?)");
  return path;
}

/**
 * Waits until `locator`'s text contains `text` (a string) or matches it (a
 * RegExp): Playwright's auto-waiting, without its test runner.
 */
export async function waitForText(locator, text, timeout = 15_000) {
  const started = Date.now();
  for (;;) {
    const content = (await locator.textContent({ timeout }).catch(() => "")) ?? "";
    if (typeof text === "string" ? content.includes(text) : text.test(content)) return content;
    if (Date.now() - started > timeout) assert.fail(`expected ${text} in ${JSON.stringify(content)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Calls `window.__lumenTestWallet[fn](...args)` in the page (see wallet.mjs). */
export const wallet = (page, fn, ...args) =>
  page.evaluate(([fn, args]) => window.__lumenTestWallet[fn](...args), [fn, args]);

/** Connects the test wallet from the header and signs in with it. */
export async function signIn(page) {
  await page.getByRole("button", { name: "Connect wallet" }).click();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("signed-in").waitFor();
}
