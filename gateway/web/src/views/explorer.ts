// The payout explorer, public like the chain it shows, from the gateway's
// mirror and the chain's RPC:
// - `#/explorer/tx/<hash>`: a transaction of the escrow or the registry —
//   block, status, gas, and its decoded events;
// - `#/explorer/address/<address>`: what an address did and was paid —
//   payouts, withdrawals, jobs, slashes, stake — newest first;
// - `#/explorer/jobs/<id>`: every on-chain event of a job, in chain order,
//   and the slashes of nodes that cheated on it with their evidence.
// Addresses link to their page (or the external explorer on a real chain),
// job ids to the job's explorer page, never to the artist's private one.

import { api } from "../api";
import { h, replace, table, type Child } from "../dom";
import { ApiError, describeError } from "../errors";
import { checksummed, ether, short, utc } from "../format";
import { addressLink, jobLink, loadLinks, txLink } from "../links";
import { href } from "../router";
import { NATIVE, loadTokens, tokenAmount } from "../tokens";
import type { ExplorerAddress, ExplorerJob, ExplorerSlash, ExplorerTx, Hex, JobToken, MirroredEvent, Wei } from "../types";
import { renderIfChanged, type Page } from "./view";

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const HASH = /^0x[0-9a-fA-F]{64}$/;

/** Fields shown as amounts (in the event's token), times, or not at all (shown in their own column). */
const AMOUNTS = new Set(["fee", "price_per_frame", "stake", "unbonding"]);
const TIMES = new Set(["deadline", "opened_at", "refundable_at", "available_at"]);
const OWN_COLUMN = new Set(["event", "job_id", "amount", "token"]);

/** Events whose amounts are in the registry's stake coin (native), not a job's token. */
const STAKE_EVENTS = new Set([
  "NodeRegistered",
  "NodeDeregistered",
  "NodeSlashed",
  "StakeAdded",
  "UnstakeRequested",
  "StakeWithdrawn",
  "ClaimableWithdrawn",
]);

type Fields = MirroredEvent["event"];

/** The token an event's amounts are in; `null` when the job's token is not known here. */
function tokenOf(e: Fields, jobTokens: Map<number, Hex>): Hex | null {
  if (typeof e.token === "string") return e.token as Hex;
  if (STAKE_EVENTS.has(e.event)) return NATIVE;
  if (typeof e.job_id === "number") return jobTokens.get(e.job_id) ?? null;
  return null;
}

function jobTokenMap(list: JobToken[] | undefined): Map<number, Hex> {
  return new Map((list ?? []).map((j) => [j.job_id, j.token]));
}

/** The frame indices of a release's bitmap word (`{ index, bits }`, bits as hex). */
function frameIndices(word: unknown): number[] {
  const { index, bits } = (word ?? {}) as { index?: number; bits?: string };
  if (typeof index !== "number" || typeof bits !== "string") return [];
  let rest: bigint;
  try {
    rest = BigInt(bits);
  } catch {
    return [];
  }
  const frames: number[] = [];
  for (let i = 0; rest > 0n; i++, rest >>= 1n) if (rest & 1n) frames.push(index * 256 + i);
  return frames;
}

/** The event's fields (but the name, job, amount and token, which have their own columns), in words. */
function details(e: Fields, token: Hex | null): Child[] {
  const parts: Child[] = [];
  for (const [key, value] of Object.entries(e)) {
    if (OWN_COLUMN.has(key)) continue;
    const label = key.replace(/_/g, " ");
    let shown: Child;
    if (key === "frames") {
      const frames = frameIndices(value);
      shown = frames.length === 1 ? `frame index ${frames[0]}` : `frame indices ${frames.join(", ")}`;
      parts.push(parts.length ? " · " : null, shown);
      continue;
    } else if (key === "evidence" && typeof value === "string") {
      shown = h("a", { href: `/api/v1/evidence/${value}`, title: value }, "evidence bundle");
    } else if (typeof value === "string" && ADDRESS.test(value)) {
      shown = addressLink(value);
    } else if (typeof value === "string" && HASH.test(value)) {
      shown = h("code", { title: value }, short(value));
    } else if (AMOUNTS.has(key) && typeof value === "string") {
      shown = tokenAmount(value, token);
    } else if (TIMES.has(key) && typeof value === "number") {
      shown = utc(value);
    } else if (key === "fee_bps" && typeof value === "number") {
      parts.push(parts.length ? " · " : null, `fee ${value / 100} %`);
      continue;
    } else {
      shown = typeof value === "object" ? JSON.stringify(value) : String(value);
    }
    parts.push(parts.length ? " · " : null, `${label} `, shown);
  }
  return parts;
}

interface Columns {
  /** A job column (not on a job's own page). */
  job: boolean;
  /** Transaction, block and time columns (not on a transaction's own page). */
  tx: boolean;
}

function eventRow(e: MirroredEvent, jobTokens: Map<number, Hex>, columns: Columns): HTMLTableRowElement {
  const fields = e.event;
  const token = tokenOf(fields, jobTokens);
  const amount = typeof fields.amount === "string" ? tokenAmount(fields.amount as Wei, token) : "";
  const job = typeof fields.job_id === "number" ? jobLink(fields.job_id) : "";
  return h(
    "tr",
    { "data-event": fields.event },
    h("td", null, fields.event),
    columns.job ? h("td", null, job) : null,
    h("td", { class: "details" }, details(fields, token)),
    h("td", { class: "num" }, amount),
    columns.tx ? h("td", null, txLink(e.tx_hash)) : null,
    columns.tx ? h("td", { class: "num" }, e.block_number) : null,
    columns.tx ? h("td", null, utc(e.block_time)) : null,
  );
}

function eventsTable(
  caption: string,
  events: MirroredEvent[],
  jobTokens: Map<number, Hex>,
  columns: Columns,
  empty: string,
): HTMLElement {
  const head = [
    "Event",
    ...(columns.job ? ["Job"] : []),
    "Details",
    "Amount",
    ...(columns.tx ? ["Transaction", "Block", "Time"] : []),
  ];
  return table(caption, head, events.map((e) => eventRow(e, jobTokens, columns)), empty);
}

function item(label: string, value: Child): HTMLElement {
  return h("div", { class: "stat" }, h("dt", null, label), h("dd", null, value));
}

/** A page's "not found" or error line, rendered once per distinct text. */
function problem(body: HTMLElement, err: unknown, notFound: string): void {
  const text = err instanceof ApiError && err.status === 404 ? notFound : describeError(err);
  renderIfChanged(body, text, () => replace(body, h("p", { class: "state-failed" }, text)));
}

// --- A transaction -----------------------------------------------------------

function renderTx(el: HTMLElement, tx: ExplorerTx): void {
  replace(
    el,
    h(
      "dl",
      { class: "stats stats-small" },
      item("status", tx.success ? "succeeded" : "reverted"),
      item("block", tx.block_number === null ? "pending" : String(tx.block_number)),
      item("time", tx.block_time === null ? "—" : utc(tx.block_time)),
      item("from", addressLink(tx.from)),
      item("to", tx.to ? addressLink(tx.to) : "—"),
      item("gas used", tx.gas_used.toLocaleString("en")),
      item("gas price", `${(tx.effective_gas_price / 1e9).toLocaleString("en", { maximumFractionDigits: 4 })} gwei`),
      item("fee paid", ether(String(BigInt(tx.gas_used) * BigInt(tx.effective_gas_price)))),
    ),
    h("h2", null, "Decoded events"),
    eventsTable(
      "Decoded events",
      tx.events,
      jobTokenMap(tx.job_tokens),
      { job: true, tx: false },
      "No escrow or registry event in the mirror for this transaction (yet).",
    ),
  );
}

export const explorerTxPage: Page = (params) => {
  const hash = params.hash ?? "";
  let body: HTMLElement;
  return {
    title: `Transaction ${short(hash)}`,
    reloadOn: ["chain"],
    mount(main) {
      body = h("div", null, h("p", { class: "hint" }, "Loading…"));
      replace(main, h("h1", { tabindex: -1 }, "Transaction"), h("p", { class: "full-hex" }, h("code", null, hash)), body);
    },
    async refresh() {
      try {
        await Promise.all([loadLinks(), loadTokens()]);
        const tx = await api.explorerTx(hash);
        renderIfChanged(body, tx, (t) => renderTx(body, t));
      } catch (err) {
        problem(body, err, "No such transaction on this chain.");
      }
    },
  };
};

// --- An address --------------------------------------------------------------

/** The address page's sections: which events each lists. */
const SECTIONS: { title: string; kinds: string[]; empty: string }[] = [
  { title: "Payouts", kinds: ["FramesReleased", "VerificationsReleased"], empty: "No payout to or for this address." },
  {
    title: "Withdrawals",
    kinds: ["CreditsWithdrawn", "ClaimableWithdrawn", "FeesWithdrawn"],
    empty: "No withdrawal.",
  },
  { title: "Jobs", kinds: ["JobOpened", "JobCancelled", "JobRefunded"], empty: "No job opened by this address." },
  { title: "Slashes", kinds: ["NodeSlashed"], empty: "No slash." },
  {
    title: "Stake and registration",
    kinds: ["NodeRegistered", "NodeDeregistered", "StakeAdded", "UnstakeRequested", "StakeWithdrawn"],
    empty: "No registration or stake.",
  },
];

function sums(list: { token: Hex; amount: Wei }[]): string {
  return list.length === 0 ? "0" : list.map((t) => tokenAmount(t.amount, t.token)).join(" + ");
}

function renderAddress(el: HTMLElement, page: ExplorerAddress): void {
  const jobTokens = jobTokenMap(page.job_tokens);
  // Newest first: what someone looking up an address wants to see.
  const events = [...page.events].reverse();
  const listed = new Set(SECTIONS.flatMap((s) => s.kinds));
  const other = events.filter((e) => !listed.has(e.event.event));
  const { earnings } = page;
  const operator = earnings.nodes.length > 0 || earnings.withdrawn.length > 0;
  replace(
    el,
    operator
      ? h(
          "section",
          { "aria-labelledby": "earnings-title" },
          h("h2", { id: "earnings-title" }, "As a node owner"),
          h(
            "dl",
            { class: "stats stats-small" },
            item("nodes paid", earnings.nodes.length),
            item("renders paid", earnings.jobs_completed),
            item("credits", earnings.credits),
            item("earned", sums(earnings.earned)),
            item("withdrawn", sums(earnings.withdrawn)),
          ),
          h("p", null, h("a", { href: href(`/operator/${page.address}`) }, "Its nodes and withdrawable credit"), "."),
        )
      : null,
    SECTIONS.map((section) => {
      const id = `section-${section.title.toLowerCase().replace(/\W+/g, "-")}`;
      return h(
        "section",
        { "aria-labelledby": id },
        h("h2", { id }, section.title),
        eventsTable(
          section.title,
          events.filter((e) => section.kinds.includes(e.event.event)),
          jobTokens,
          { job: true, tx: true },
          section.empty,
        ),
      );
    }),
    other.length > 0
      ? [h("h2", null, "Other events"), eventsTable("Other events", other, jobTokens, { job: true, tx: true }, "")]
      : null,
    events.length >= 1000 ? h("p", { class: "hint" }, "Only the newest 1,000 events are listed.") : null,
  );
}

export const explorerAddressPage: Page = (params) => {
  const address = params.address ?? "";
  let body: HTMLElement;
  return {
    title: `Address ${short(address)}`,
    reloadOn: ["chain"],
    mount(main) {
      body = h("div", null, h("p", { class: "hint" }, "Loading…"));
      replace(
        main,
        h("h1", { tabindex: -1 }, "Address"),
        h("p", { class: "full-hex" }, h("code", null, checksummed(address))),
        body,
      );
    },
    async refresh() {
      if (!ADDRESS.test(address)) {
        replace(body, h("p", { class: "state-failed" }, "That is not an address."));
        return;
      }
      try {
        await Promise.all([loadLinks(), loadTokens()]);
        const page = await api.explorerAddress(address);
        renderIfChanged(body, page, (p) => renderAddress(body, p));
      } catch (err) {
        problem(body, err, "Nothing is known about this address.");
      }
    },
  };
};

// --- A job -------------------------------------------------------------------

function slashRow(s: ExplorerSlash): HTMLTableRowElement {
  return h(
    "tr",
    null,
    h("td", null, addressLink(s.node)),
    h("td", { class: "num" }, s.frame_index),
    h("td", { class: "details" }, s.reason),
    h(
      "td",
      null,
      HASH.test(s.evidence)
        ? h("a", { href: `/api/v1/evidence/${s.evidence}`, title: s.evidence, "data-evidence": s.evidence }, "Evidence bundle")
        : "",
    ),
    h("td", null, s.tx ? txLink(s.tx) : "not sent yet"),
  );
}

function renderJob(el: HTMLElement, job: ExplorerJob): void {
  const opened = job.events.find((e) => e.event.event === "JobOpened")?.event;
  const token = typeof opened?.token === "string" ? (opened.token as Hex) : null;
  const jobTokens = new Map<number, Hex>(token ? [[job.job_id, token]] : []);
  const released = job.events.filter((e) => e.event.event === "FramesReleased");
  const paidFrames = released.reduce((n, e) => n + frameIndices(e.event.frames).length, 0);
  replace(
    el,
    opened
      ? h(
          "dl",
          { class: "stats stats-small" },
          item("artist", typeof opened.artist === "string" ? addressLink(opened.artist) : "—"),
          item("frames", String(opened.frame_count)),
          item("price per frame", tokenAmount(String(opened.price_per_frame), token)),
          item("locked", tokenAmount(String(opened.amount), token)),
          item("frames paid", String(paidFrames)),
          item("deadline", utc(opened.deadline as number)),
        )
      : h("p", { class: "hint" }, "The job's JobOpened is not in the mirror (yet)."),
    h("h2", null, "On-chain events"),
    eventsTable("On-chain events", job.events, jobTokens, { job: false, tx: true }, "No event yet."),
    h("h2", null, "Slashes"),
    h(
      "p",
      { class: "hint" },
      "A node outvoted by independent renders of a frame is banned and its stake slashed; the evidence bundle holds the renders, their signatures and comparisons, and its hash is on-chain.",
    ),
    table("Slashes", ["Node", "Frame index", "Reason", "Evidence", "Slash transaction"], job.slashes.map(slashRow), "No node was slashed for this job."),
  );
}

export const explorerJobPage: Page = (params) => {
  const id = Number(params.id);
  let body: HTMLElement;
  return {
    title: `Job ${params.id ?? ""} on-chain`,
    reloadOn: ["chain"],
    mount(main) {
      body = h("div", null, h("p", { class: "hint" }, "Loading…"));
      replace(main, h("h1", { tabindex: -1 }, `Job ${params.id ?? ""} on-chain`), body);
    },
    async refresh() {
      if (!Number.isSafeInteger(id) || id < 0) {
        replace(body, h("p", { class: "state-failed" }, "That is not a job number."));
        return;
      }
      try {
        await Promise.all([loadLinks(), loadTokens()]);
        const job = await api.explorerJob(id);
        renderIfChanged(body, job, (j) => renderJob(body, j));
      } catch (err) {
        problem(body, err, "No on-chain event of this job (yet).");
      }
    },
  };
};
