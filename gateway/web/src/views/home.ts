// `#/`: the network at a glance (public), the signed-in artist's jobs, and
// the nodes.

import { api } from "../api";
import { h, replace, table } from "../dom";
import { addressLink, loadLinks } from "../links";
import { href } from "../router";
import { state, update } from "../state";
import type { JobView, NetworkStats, NodeView } from "../types";
import { renderIfChanged, type Page } from "./view";

function statsList(stats: NetworkStats): HTMLElement {
  const jobs = Object.values(stats.jobs).reduce((sum, n) => sum + n, 0);
  const item = (value: number, label: string): HTMLElement =>
    h("div", { class: "stat" }, h("dt", null, label), h("dd", null, value.toLocaleString("en")));
  return h(
    "dl",
    { class: "stats" },
    item(stats.nodes_connected, "nodes connected"),
    item(stats.artists, "artists"),
    item(jobs, "jobs"),
    item(stats.frames_verified, "frames verified"),
    item(stats.frames_paid, "frames paid on-chain"),
  );
}

export function jobRow(job: JobView): HTMLTableRowElement {
  const verified = job.frames.filter((f) => f.state === "verified").length;
  const paid = job.frames.filter((f) => f.payout_tx).length;
  return h(
    "tr",
    null,
    h("td", null, h("a", { href: href(`/jobs/${job.job_id}`) }, `Job ${job.job_id}`)),
    h("td", null, h("span", { class: `state state-${job.state}` }, job.state.replace("_", " "))),
    h("td", { class: "num" }, job.frame_count),
    h("td", { class: "num" }, verified),
    h("td", { class: "num" }, paid),
  );
}

function nodeRow(node: NodeView): HTMLTableRowElement {
  return h(
    "tr",
    null,
    h("td", null, addressLink(node.address)),
    h("td", null, addressLink(node.owner)),
    h("td", null, h("span", { class: `state node-${node.state.toLowerCase()}` }, node.state)),
    h("td", null, node.connected ? "yes" : "no"),
    h("td", null, node.capabilities.blender_version),
    h("td", { class: "num" }, node.consecutive_failures),
  );
}

function renderJobs(el: HTMLElement, jobs: JobView[] | null): void {
  if (jobs === null) {
    replace(
      el,
      h(
        "p",
        { class: "hint" },
        "Jobs and frames are private to their artist: connect your wallet and sign in to see yours.",
      ),
    );
    return;
  }
  replace(
    el,
    table(
      "Your jobs",
      ["Job", "State", "Frames", "Verified", "Paid"],
      jobs.map(jobRow),
      "You have no jobs yet. Submit one on the “New job” page, or with “lumen job submit scene.blend”.",
    ),
  );
}

export const homePage: Page = () => {
  let statsEl: HTMLElement;
  let jobsEl: HTMLElement;
  let nodesEl: HTMLElement;
  return {
    title: "Network",
    reloadOn: ["jobs", "nodes", "chain"],
    mount(main) {
      statsEl = h("div", { "aria-live": "off" }, h("p", { class: "hint" }, "Loading…"));
      jobsEl = h("div", null, h("p", { class: "hint" }, "Loading…"));
      nodesEl = h("div", null, h("p", { class: "hint" }, "Loading…"));
      replace(
        main,
        h("h1", { tabindex: -1 }, "Lumen render network"),
        h(
          "p",
          { class: "lede" },
          "Artists lock payment for Blender jobs in an escrow contract; operator nodes render the frames, " +
            "a verifier checks them, and every verified frame is paid on-chain.",
        ),
        h("section", { "aria-labelledby": "network-title" }, h("h2", { id: "network-title" }, "Network"), statsEl),
        h("section", { "aria-labelledby": "jobs-title" }, h("h2", { id: "jobs-title" }, "Your jobs"), jobsEl),
        h("section", { "aria-labelledby": "nodes-title" }, h("h2", { id: "nodes-title" }, "Nodes"), nodesEl),
      );
    },
    async refresh() {
      // Signed out, the jobs are not asked for (the answer would be 401).
      const asked = state.session;
      await loadLinks();
      const [stats, nodes, jobs] = await Promise.all([
        api.stats(),
        api.nodes(),
        asked ? api.myJobs() : Promise.resolve(null),
      ]);
      update({ healthyNodes: nodes.filter((n) => n.state === "HEALTHY").length });
      // Asked and refused: the session ended (expired, or signed out elsewhere).
      if (asked && jobs === null && state.session === asked) update({ session: null });
      renderIfChanged(statsEl, stats, (s) => replace(statsEl, statsList(s)));
      renderIfChanged(jobsEl, jobs, (j) => renderJobs(jobsEl, j));
      renderIfChanged(nodesEl, nodes, (n) =>
        replace(
          nodesEl,
          table("Nodes", ["Node", "Owner", "State", "Connected", "Blender", "Failures"], n.map(nodeRow), "No node is connected."),
        ),
      );
    },
  };
};
