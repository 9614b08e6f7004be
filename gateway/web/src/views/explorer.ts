// `#/explorer/tx/<hash>`: a transaction of the escrow or the registry —
// block, status, gas, and its decoded events, from the gateway's mirror.

import { api } from "../api";
import { h, replace, table } from "../dom";
import { ApiError, describeError } from "../errors";
import { checksummed, short } from "../format";
import type { ExplorerTx, MirroredEvent } from "../types";
import { renderIfChanged, type Page } from "./view";

/** The event's fields, but its name, as `name: value` pairs. */
function fields(e: MirroredEvent): string {
  return Object.entries(e.event)
    .filter(([k]) => k !== "event")
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(", ");
}

function render(el: HTMLElement, tx: ExplorerTx): void {
  const item = (label: string, value: string | HTMLElement): HTMLElement =>
    h("div", { class: "stat" }, h("dt", null, label), h("dd", null, value));
  replace(
    el,
    h(
      "dl",
      { class: "stats" },
      item("status", tx.success ? "succeeded" : "reverted"),
      item("block", tx.block_number === null ? "pending" : String(tx.block_number)),
      item("time", tx.block_time === null ? "—" : new Date(tx.block_time * 1000).toISOString()),
      item("from", h("code", { title: checksummed(tx.from) }, short(tx.from))),
      item("to", tx.to ? h("code", { title: checksummed(tx.to) }, short(tx.to)) : "—"),
      item("gas used", tx.gas_used.toLocaleString("en")),
    ),
    table(
      "Decoded events",
      ["Event", "Fields"],
      tx.events.map((e) => h("tr", null, h("td", null, e.event.event), h("td", null, fields(e)))),
      "No escrow or registry event in the mirror for this transaction (yet).",
    ),
  );
}

export const explorerTxPage: Page = (params) => {
  const hash = params.hash ?? "";
  let body: HTMLElement;
  return {
    title: `Transaction ${short(hash)}`,
    mount(main) {
      body = h("div", null, h("p", { class: "hint" }, "Loading…"));
      replace(main, h("h1", { tabindex: -1 }, "Transaction"), h("p", null, h("code", null, hash)), body);
    },
    async refresh() {
      try {
        const tx = await api.explorerTx(hash);
        renderIfChanged(body, tx, (t) => render(body, t));
      } catch (err) {
        const text = err instanceof ApiError && err.status === 404 ? "No such transaction on this chain." : describeError(err);
        renderIfChanged(body, text, () => replace(body, h("p", { class: "state-failed" }, text)));
      }
    },
  };
};
