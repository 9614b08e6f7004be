// The submit page's rules without the page: reading what the artist typed
// (frames, price, verification renders, deadline), checked as the gateway
// and the escrow will check them, with a sentence saying what is wrong;
// amounts in a token's own decimals; and the job spec as the wallet signs
// it and as the gateway reads it. Mirrors `lumen job submit`
// (`crates/cli/src/cmd/job.rs`).

import { formatUnits, toHex } from "viem";
import type { Hex, JobSpec, Market, SceneSummary, TokenPrice } from "./types";

/** `address(0)`: the native coin, in the escrow and the market. */
export const NATIVE: Hex = "0x0000000000000000000000000000000000000000";

/** The largest `uint128`, the type of a price per frame. */
const U128_MAX = (1n << 128n) - 1n;

/**
 * Time allowed between reading the chain's clock and the gateway checking
 * the deadline: the wallet prompts and the confirmations happen in between.
 */
export const DEADLINE_SLACK_SECS = 600;

/** What was read from a field: its value, or why it cannot be used. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(error: string): Parsed<T> => ({ ok: false, error });

export interface FrameRange {
  start: number;
  end: number;
}

/** How many frames `start`…`end` holds every `step` frames (0 when empty). */
export function frameCount(start: number, end: number, step: number): number {
  if (end < start || step < 1) return 0;
  return Math.floor((end - start) / step) + 1;
}

/**
 * `A-B` (or one frame `A`; en dashes and `..` too; frame numbers may be
 * negative, as Blender's are), within the scene's range and on its step.
 */
export function parseFrameRange(text: string, scene: SceneSummary): Parsed<FrameRange> {
  const trimmed = text.trim();
  if (trimmed === "") return bad("Enter the frames to render, for example 1-24.");
  const range = /^(-?\d+)\s*(?:-|–|—|\.\.)\s*(-?\d+)$/.exec(trimmed);
  const single = /^-?\d+$/.exec(trimmed);
  if (!range && !single) return bad(`“${trimmed}” is not a frame range: write first-last, for example 1-24.`);
  const start = Number(range ? range[1] : trimmed);
  const end = Number(range ? range[2] : trimmed);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return bad("Those frame numbers are too large.");
  if (end < start) return bad(`The last frame (${end}) comes before the first (${start}).`);
  if (start < scene.frame_start || end > scene.frame_end) {
    return bad(`Frames ${start}-${end} are outside the scene's range ${scene.frame_start}-${scene.frame_end}.`);
  }
  const step = Math.max(1, scene.frame_step);
  if ((start - scene.frame_start) % step !== 0) {
    const below = start - ((start - scene.frame_start) % step);
    return bad(
      `The scene renders every ${step} frames from ${scene.frame_start}: start on one of those (${below} or ${below + step}).`,
    );
  }
  return ok({ start, end });
}

/** The range a scene renders, as the frames field shows it. */
export function sceneRange(scene: SceneSummary): string {
  return scene.frame_start === scene.frame_end
    ? String(scene.frame_start)
    : `${scene.frame_start}-${scene.frame_end}`;
}

/** Why the market refuses `frames` frames, if it does. */
export function frameLimit(frames: number, market: Market): string | null {
  return frames > market.max_frames_per_job
    ? `${frames} frames: this gateway takes at most ${market.max_frames_per_job} per job.`
    : null;
}

/**
 * A decimal amount of a token with `decimals` decimals (`0.001`), in its
 * smallest unit; never rounded: more decimals than the token has is an
 * error, as is anything that is not a plain positive decimal number.
 */
export function parseAmount(text: string, decimals: number, symbol: string): Parsed<bigint> {
  const trimmed = text.trim();
  if (trimmed === "") return bad("Enter a price per frame.");
  const match = /^(\d*)(?:\.(\d*))?$/.exec(trimmed);
  if (!match || !/\d/.test(trimmed)) return bad(`“${trimmed}” is not a number: write it like 0.001.`);
  const whole = match[1] ?? "";
  const fraction = match[2] ?? "";
  if (fraction.length > decimals) {
    return bad(
      decimals === 0
        ? `${symbol} has no decimals: enter a whole number.`
        : `${symbol} has ${decimals} decimals: ${trimmed} has ${fraction.length}.`,
    );
  }
  const value = BigInt((whole || "0") + fraction.padEnd(decimals, "0"));
  if (value === 0n) return bad("The price must be above zero.");
  if (value > U128_MAX) return bad("That price is too large for the escrow.");
  return ok(value);
}

/** `0.000001 ETH`: an amount in a token's smallest unit, in whole tokens, without trailing zeros. */
export function formatAmount(amount: bigint, decimals: number, symbol: string): string {
  return `${formatUnits(amount, decimals)} ${symbol}`;
}

/** The market's terms for `token`, if it takes payment in it. */
export function tokenTerms(market: Market, token: Hex): TokenPrice | undefined {
  return market.tokens.find((t) => t.token.toLowerCase() === token.toLowerCase());
}

/** Why the market refuses `price` per frame in `token` (its lowest price in words), if it does. */
export function priceLimit(price: bigint, terms: TokenPrice, decimals: number, symbol: string): string | null {
  const min = BigInt(terms.min_price_per_frame);
  return price < min ? `This gateway takes at least ${formatAmount(min, decimals, symbol)} a frame.` : null;
}

/** Verification renders: a whole number from 0 to the frame count (at most one per frame). */
export function parseVerifications(text: string, frames: number): Parsed<number> {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) return bad(`Enter a whole number from 0 to ${frames}.`);
  const n = Number(trimmed);
  if (n > frames) return bad(`At most one per frame: ${frames} for ${frames} frame${frames === 1 ? "" : "s"}.`);
  return ok(n);
}

/** `1 hour`, `90 minutes`, `2 days`: a duration the market states in seconds. */
export function duration(secs: number): string {
  const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? "" : "s"}`;
  if (secs % 86_400 === 0 && secs >= 86_400 * 2) return plural(secs / 86_400, "day");
  if (secs % 3_600 === 0) return plural(secs / 3_600, "hour");
  if (secs % 60 === 0) return plural(secs / 60, "minute");
  return plural(secs, "second");
}

/** The fewest whole hours to the deadline the gateway accepts, with time to confirm the transaction. */
export function minDeadlineHours(market: Market): number {
  return Math.max(1, Math.ceil((market.min_deadline_secs + DEADLINE_SLACK_SECS) / 3_600));
}

/** Hours from now to the job's deadline, after which the artist can take back what was not paid. */
export function parseDeadlineHours(text: string, market: Market): Parsed<number> {
  const trimmed = text.trim();
  const least = minDeadlineHours(market);
  if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(Number(trimmed))) {
    return bad(`Enter a whole number of hours, at least ${least}.`);
  }
  const hours = Number(trimmed);
  if (hours < least) {
    return bad(
      `At least ${least} hours: this gateway needs ${duration(market.min_deadline_secs)} to render and settle ` +
        "once the job is registered.",
    );
  }
  return ok(hours);
}

/** Blender's engine names as people know them. */
export function engineName(engine: string): string {
  const known: Record<string, string> = {
    CYCLES: "Cycles",
    BLENDER_EEVEE: "EEVEE",
    BLENDER_EEVEE_NEXT: "EEVEE",
    BLENDER_WORKBENCH: "Workbench",
  };
  return known[engine] ?? engine;
}

/** A free 256-bit salt: the same scene and terms can be a second job with its own spec hash. */
export function randomSalt(): bigint {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return BigInt(toHex(bytes));
}

/** The spec a job of `blendHash`'s scene asks for: the scene's resolution, engine and step. */
export function jobSpec(
  blendHash: Hex,
  scene: SceneSummary,
  range: FrameRange,
  token: Hex,
  pricePerFrame: bigint,
  salt: bigint,
): JobSpec {
  return {
    blendHash,
    frameStart: range.start,
    frameEnd: range.end,
    frameStep: Math.max(1, scene.frame_step),
    width: scene.width,
    height: scene.height,
    engine: scene.engine,
    token,
    pricePerFrame,
    salt,
  };
}

/**
 * The body of `POST /api/v1/jobs` (`RegisterJob`), as the gateway's serde
 * reads it: the `uint128` price as a JSON number written out in full (a
 * JavaScript number would round it above 2^53), the `uint256` salt as hex.
 */
export function registerJobBody(jobId: bigint, spec: JobSpec, signature: Hex): string {
  const fields: [string, string][] = [
    ["blendHash", JSON.stringify(spec.blendHash)],
    ["frameStart", String(spec.frameStart)],
    ["frameEnd", String(spec.frameEnd)],
    ["frameStep", String(spec.frameStep)],
    ["width", String(spec.width)],
    ["height", String(spec.height)],
    ["engine", JSON.stringify(spec.engine)],
    ["token", JSON.stringify(spec.token)],
    ["pricePerFrame", spec.pricePerFrame.toString()],
    ["salt", JSON.stringify(toHex(spec.salt))],
  ];
  const json = `{${fields.map(([name, value]) => `${JSON.stringify(name)}:${value}`).join(",")}}`;
  return `{"job_id":${jobId.toString()},"spec":${json},"signature":${JSON.stringify(signature)}}`;
}
