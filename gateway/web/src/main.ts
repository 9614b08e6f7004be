// The dashboard's entry point: the page table, the wallet discovery, the
// header, and the change feed that tells pages when to reload.

import { connect, loadSession, wasConnected } from "./actions";
import { api } from "./api";
import { byId, h, replace } from "./dom";
import { describeError } from "./errors";
import { hashPath, href, matchRoute, type Route } from "./router";
import { state, subscribe, update } from "./state";
import { mountHeader } from "./views/header";
import { homePage } from "./views/home";
import { explorerAddressPage, explorerJobPage, explorerTxPage } from "./views/explorer";
import { jobPage } from "./views/job";
import { leaderboardPage } from "./views/leaderboard";
import { operatorPage } from "./views/operator";
import { submitPage } from "./views/submit";
import type { ChangePart, Changes } from "./types";
import type { Page, View } from "./views/view";
import { discoverWallets } from "./wallets";

/** Every page. */
const routes: Route<Page>[] = [
  { path: "/", view: homePage },
  { path: "/submit", view: submitPage },
  { path: "/jobs/:id", view: jobPage },
  { path: "/leaderboard", view: leaderboardPage },
  { path: "/explorer/tx/:hash", view: explorerTxPage },
  { path: "/operator", view: operatorPage },
  { path: "/operator/:owner", view: operatorPage },
  { path: "/explorer/address/:address", view: explorerAddressPage },
  { path: "/explorer/jobs/:id", view: explorerJobPage },
];

/** The longest wait before opening a refused change feed again. */
const FEED_RETRY_MAX_MS = 30_000;
/**
 * The least time between two reloads the change feed asks for: on a busy
 * network the feed moves several times a second, and a page reloads at
 * most this often (the moves in between are folded into one reload at the
 * end of the gap), so an open page costs the gateway a bounded load.
 */
const FEED_RELOAD_GAP_MS = 2_000;
/**
 * Each reload the feed asks for waits a random moment up to this long, so
 * the pages open on one network (all told at once) do not reload at the
 * same instant.
 */
const FEED_RELOAD_SPREAD_MS = 300;

let current: View | null = null;
let refreshing: Promise<void> | null = null;
let again = false;

const notFound: Page = () => ({
  title: "Not found",
  mount(main) {
    replace(
      main,
      h("h1", { tabindex: -1 }, "Page not found"),
      h("p", null, "There is no page at this address. ", h("a", { href: href("/") }, "Go to the network overview"), "."),
    );
  },
  async refresh() {},
});

/** Reloads the current page's data; a call during a reload runs once more after it. */
async function refresh(): Promise<void> {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      again = false;
      try {
        await current?.refresh();
        if (!state.gatewayUp) update({ gatewayUp: true });
      } catch (err) {
        // fetch rejects with a TypeError when nothing answers.
        if (err instanceof TypeError) update({ gatewayUp: false });
        else update({ notice: { kind: "error", text: describeError(err) } });
      }
    } while (again);
    refreshing = null;
  })();
  return refreshing;
}

function navigate(focus: boolean): void {
  const path = hashPath(location.hash);
  const match = matchRoute(routes, path);
  const view = (match?.route.view ?? notFound)(match?.params ?? {});
  const main = byId("main");
  current?.unmount?.();
  // The new page loads now: a reload planned for the last one is moot.
  if (plannedReload !== null) window.clearTimeout(plannedReload);
  plannedReload = null;
  current = view;
  view.mount(main);
  document.title = `${view.title} · Lumen`;
  // A new page is announced by moving focus to its heading.
  if (focus) main.querySelector<HTMLElement>("h1")?.focus();
  void refresh();
}

/**
 * Follows `GET /api/v1/changes`: the current page reloads when a part of
 * the network it shows moved. The first event of every connection is the
 * gateway's current stamps: after a restart the page compares them with
 * the last ones it saw and catches up. EventSource reconnects by itself
 * after a dropped stream; a refused one (too many feeds, not a stream) is
 * opened again with backoff.
 */
function followChanges(retryMs = 1000): void {
  let last: Changes | null = null;
  const source = new EventSource("/api/v1/changes");
  source.addEventListener("open", () => {
    retryMs = 1000;
    if (!state.gatewayUp) update({ gatewayUp: true });
  });
  source.addEventListener("changes", (event) => {
    const next = JSON.parse((event as MessageEvent<string>).data) as Changes;
    const moved = (Object.keys(next) as ChangePart[]).filter((part) => last === null || next[part] !== last[part]);
    last = next;
    // Hidden tabs catch up when shown (below).
    if (current?.reloadOn?.some((part) => moved.includes(part))) reloadSoon();
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      window.setTimeout(() => followChanges(Math.min(retryMs * 2, FEED_RETRY_MAX_MS)), retryMs);
    } else {
      // Connection lost: EventSource is trying again.
      update({ gatewayUp: false });
    }
  });
}

/** Set when the feed asked a hidden tab to reload: it does when shown. */
let staleWhileHidden = false;
/** When the feed last reloaded the page, and the reload it has planned. */
let lastFeedReload = 0;
let plannedReload: number | null = null;

/** A reload the feed asked for, at most one per `FEED_RELOAD_GAP_MS`. */
function reloadSoon(): void {
  if (plannedReload !== null) return;
  const wait = Math.max(0, lastFeedReload + FEED_RELOAD_GAP_MS - Date.now()) + Math.random() * FEED_RELOAD_SPREAD_MS;
  plannedReload = window.setTimeout(() => {
    plannedReload = null;
    lastFeedReload = Date.now();
    reloadWhenVisible();
  }, wait);
}

function reloadWhenVisible(): void {
  if (document.visibilityState === "visible") void refresh();
  else staleWhileHidden = true;
}

async function boot(): Promise<void> {
  mountHeader();
  let reconnecting = false;
  discoverWallets((wallets) => {
    update({ wallets });
    // A return visit: reconnect the wallet used last time, without a prompt.
    const previous = wallets.find(wasConnected);
    if (previous && !reconnecting && !state.wallet) {
      reconnecting = true;
      void connect(previous, true);
    }
  });
  window.addEventListener("hashchange", () => {
    // `#main` (the skip link) and other plain anchors are not pages.
    if (location.hash === "" || location.hash.startsWith("#/")) navigate(true);
  });
  byId("skip").addEventListener("click", (event) => {
    event.preventDefault();
    byId("main").focus();
  });
  // The session decides what the pages show: reload them when it changes.
  subscribe((s, previous) => {
    if (s.session?.address !== previous.session?.address) void refresh();
  });
  navigate(false);
  try {
    const [info] = await Promise.all([api.info(), loadSession()]);
    update({ info });
  } catch (err) {
    update({ gatewayUp: !(err instanceof TypeError), notice: { kind: "error", text: describeError(err) } });
  }
  followChanges();
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && staleWhileHidden) {
      staleWhileHidden = false;
      void refresh();
    }
  });
}

void boot();
