// `#/jobs/<id>`: one of the signed-in artist's jobs, frame by frame, and
// its settlement on-chain, live: the gateway pushes the job's view over
// server-sent events (`GET /api/v1/jobs/<id>/events`) whenever it changes,
// and the browser's EventSource reconnects by itself (after a gateway
// restart, say), getting the whole view again. (Downloads, cancel and
// refund from the wallet are planned.)

import { api } from "../api";
import { h, replace, table } from "../dom";
import { ApiError, describeError } from "../errors";
import { ether } from "../format";
import { addressLink, loadLinks, txLink } from "../links";
import { href } from "../router";
import type { FrameView, JobView, TxView } from "../types";
import { renderIfChanged, type Page } from "./view";

const NATIVE = "0x0000000000000000000000000000000000000000";


function frameCard(job: JobView, f: FrameView): HTMLElement {
  // The full frame once paid on-chain; the watermarked preview before.
  const base = `/api/v1/jobs/${job.job_id}/frames/${f.frame}`;
  const src = f.payout_tx ? base : f.preview ? `${base}/preview` : null;
  return h(
    "li",
    { class: "frame" },
    src
      ? h("img", {
          loading: "lazy",
          src,
          alt: `Frame ${f.frame}${f.payout_tx ? "" : " (watermarked preview)"}`,
          width: job.width,
          height: job.height,
        })
      : h("div", { class: "frame-empty", "aria-hidden": "true" }),
    h("div", null, `Frame ${f.frame} · `, h("span", { class: `state state-${f.state}` }, f.state)),
    f.node ? h("div", null, "Node ", addressLink(f.node)) : null,
    f.payout_tx ? h("div", null, "Paid in ", txLink(f.payout_tx)) : null,
    f.failure ? h("div", { class: "state-failed" }, f.failure) : null,
  );
}

function txRow(job: JobView, t: TxView): HTMLTableRowElement {
  const amount = t.amount === null ? "" : job.token === NATIVE ? ether(t.amount) : `${t.amount} (token units)`;
  return h(
    "tr",
    null,
    h("td", null, t.event),
    h("td", null, txLink(t.tx_hash)),
    h("td", { class: "num" }, t.block_number),
    h("td", { class: "num" }, amount),
  );
}

function renderJob(el: HTMLElement, job: JobView): void {
  const price = job.token === NATIVE ? ether(job.price_per_frame) : `${job.price_per_frame} units of ${job.token}`;
  replace(
    el,
    h(
      "p",
      null,
      h("span", { class: `state state-${job.state}` }, job.state.replace("_", " ")),
      ` · ${job.frame_count} frames at ${job.width}×${job.height} · ${price} per frame`,
    ),
    job.failure ? h("p", { class: "state-failed" }, job.failure) : null,
    job.settlement_parked ? h("p", { class: "state-failed" }, `Settlement parked: ${job.settlement_parked}`) : null,
    h("h2", null, "Frames"),
    h("ul", { class: "grid" }, job.frames.map((f) => frameCard(job, f))),
    h("h2", null, "On-chain settlement"),
    table("On-chain settlement", ["Event", "Transaction", "Block", "Amount"], job.transactions.map((t) => txRow(job, t)), "Nothing on-chain yet."),
  );
}

export const jobPage: Page = (params) => {
  const id = Number(params.id);
  let body: HTMLElement;
  let stream: EventSource | null = null;
  const close = () => {
    stream?.close();
    stream = null;
  };
  /** Follows the job's pushed views, once the artist may see it. */
  const follow = () => {
    if (stream) return;
    stream = new EventSource(`/api/v1/jobs/${id}/events`);
    stream.addEventListener("job", (event) => {
      const job = JSON.parse((event as MessageEvent<string>).data) as JobView;
      renderIfChanged(body, job, (j) => renderJob(body, j));
      body.dataset.live = "open";
    });
    stream.addEventListener("error", () => {
      // EventSource retries by itself; the page says it is catching up.
      if (body) body.dataset.live = "reconnecting";
    });
  };
  return {
    title: `Job ${id}`,
    live: true,
    unmount: close,
    mount(main) {
      body = h("div", null, h("p", { class: "hint" }, "Loading…"));
      replace(
        main,
        h("p", null, h("a", { href: href("/") }, "← All jobs")),
        h("h1", { tabindex: -1 }, `Job ${id}`),
        body,
      );
    },
    async refresh() {
      if (!Number.isSafeInteger(id) || id < 0) {
        replace(body, h("p", { class: "state-failed" }, "That is not a job number."));
        return;
      }
      let job: JobView | null;
      try {
        await loadLinks();
        job = await api.job(id);
      } catch (err) {
        if (err instanceof ApiError && (err.status === 403 || err.status === 404)) {
          close();
          renderIfChanged(body, err.status, () =>
            replace(body, h("p", { class: "hint" }, "No job of yours has this number.")),
          );
          return;
        }
        replace(body, h("p", { class: "state-failed" }, describeError(err)));
        return;
      }
      if (job === null) {
        close();
        renderIfChanged(body, null, () =>
          replace(body, h("p", { class: "hint" }, "Jobs are private to their artist: connect your wallet and sign in to see this one.")),
        );
        return;
      }
      renderIfChanged(body, job, (j) => renderJob(body, j));
      follow();
    },
  };
};
