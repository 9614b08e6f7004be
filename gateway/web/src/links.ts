// Where transaction and address links point (`GET /api/v1/explorer`): the
// gateway's own explorer pages on a devnet, or the external explorer
// configured for a real chain; loaded once. Job ids link to the explorer's
// job page (public on-chain facts), which has no external counterpart.

import { api } from "./api";
import { h } from "./dom";
import { checksummed, short } from "./format";
import { href } from "./router";
import type { ExplorerLinks } from "./types";

let links: ExplorerLinks | null = null;

/** Loads the link templates, once; a page calls it before rendering links. */
export async function loadLinks(): Promise<void> {
  links ??= await api.explorerLinks();
}

/** The page of transaction `hash`. */
export function txUrl(hash: string): string {
  return links ? links.tx_url.replace("{tx}", hash) : href(`/explorer/tx/${hash}`);
}

/** The page of `address` (lower case, as the gateway writes it). */
export function addressUrl(address: string): string {
  const lower = address.toLowerCase();
  return links ? links.address_url.replace("{address}", lower) : href(`/explorer/address/${lower}`);
}

/** A link to a transaction, shortened, its full hash in the title. */
export function txLink(hash: string): HTMLElement {
  return h("a", { href: txUrl(hash), title: hash, "data-focus": `tx:${hash}` }, h("code", null, short(hash)));
}

/** A link to an address's page, shortened and checksummed, the full address in the title. */
export function addressLink(address: string): HTMLElement {
  return h(
    "a",
    { href: addressUrl(address), title: checksummed(address), "data-focus": `address:${address.toLowerCase()}` },
    h("code", null, short(address)),
  );
}

/** A link to a job's on-chain events in the explorer. */
export function jobLink(id: number): HTMLElement {
  return h("a", { href: href(`/explorer/jobs/${id}`), "data-focus": `job:${id}` }, `Job ${id}`);
}
