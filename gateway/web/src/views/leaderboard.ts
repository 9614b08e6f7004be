// `#/leaderboard`: nodes ranked by jobs completed, uptime and earnings,
// with gold, silver and bronze for the first three (public; the gateway
// computes it from its chain mirror at most once a minute, uptime from its
// own heartbeat records).

import { api } from "../api";
import { h, replace, table } from "../dom";
import { addressLink, loadLinks } from "../links";
import { loadTokens, tokenAmount } from "../tokens";
import type { Leaderboard, LeaderboardEntry, TokenAmount } from "../types";
import { renderIfChanged, type Page } from "./view";

const BADGE = { gold: "🥇 Gold", silver: "🥈 Silver", bronze: "🥉 Bronze" } as const;

function earned(list: TokenAmount[]): string {
  if (list.length === 0) return "0";
  return list.map((t) => tokenAmount(t.amount, t.token)).join(" + ");
}

function row(e: LeaderboardEntry): HTMLTableRowElement {
  return h(
    "tr",
    { "data-node": e.node.toLowerCase() },
    h("td", { class: "num" }, e.rank),
    h("td", null, e.badge ? h("span", { class: `badge badge-${e.badge}` }, BADGE[e.badge]) : ""),
    h("td", null, addressLink(e.node)),
    h("td", null, addressLink(e.owner)),
    h("td", { class: "num" }, e.jobs_completed),
    h("td", { class: "num" }, `${e.uptime_percent.toFixed(1)} %`),
    h("td", { class: "num" }, e.credits),
    h("td", { class: "num" }, earned(e.earned)),
  );
}

function render(el: HTMLElement, board: Leaderboard): void {
  replace(
    el,
    h(
      "p",
      { class: "hint" },
      `Jobs completed and earnings come from the chain; uptime is this gateway's record of heartbeats over the last ${board.uptime_window_days} days.`,
    ),
    table(
      "Leaderboard",
      ["Rank", "Badge", "Node", "Owner", "Jobs completed", "Uptime", "Credits", "Earned"],
      board.entries.map(row),
      "No node has completed a job yet.",
    ),
  );
}

export const leaderboardPage: Page = () => {
  let body: HTMLElement;
  return {
    title: "Leaderboard",
    // The gateway recomputes the board once a clock minute; earnings move with the chain.
    reloadOn: ["minute", "chain"],
    mount(main) {
      body = h("div", null, h("p", { class: "hint" }, "Loading…"));
      replace(main, h("h1", { tabindex: -1 }, "Leaderboard"), body);
    },
    async refresh() {
      const [board] = await Promise.all([api.leaderboard(), loadLinks(), loadTokens()]);
      // computed_at changes every minute; the rows are what the reader sees.
      renderIfChanged(body, board.entries, () => render(body, board));
    },
  };
};
