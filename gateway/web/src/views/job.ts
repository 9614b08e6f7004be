// `#/jobs/<id>`: one of the signed-in artist's jobs, frame by frame, and
// its escrow on-chain, live: the gateway pushes the job's view over
// server-sent events (`GET /api/v1/jobs/<id>/events`) whenever it changes,
// and the browser's EventSource reconnects by itself (after a gateway
// restart, say), getting the whole view again.
//
// The frame grid is keyed by frame: an update rebuilds only the cards whose
// frame changed, so a 1,000-frame job stays fast and an image that did not
// change is not fetched again. From here the artist downloads paid frames
// (one by one, or all as one archive) and cancels or refunds the job from
// the wallet (`escrow.cancel` / `escrow.refund`, with the terms the chain
// mirror holds).

import { escrowAbi } from "../abi";
import { api } from "../api";
import { send } from "../chain";
import { h, replace, table } from "../dom";
import { ApiError, describeError } from "../errors";
import { sameAddress, short } from "../format";
import { addressLink, loadLinks, txLink } from "../links";
import { href } from "../router";
import { onRightChain, state, subscribe, update } from "../state";
import { loadTokens, tokenAmount } from "../tokens";
import type { FrameView, Hex, JobView, OnchainJobView, RenderView, TxView } from "../types";
import type { Page, View } from "./view";

function amount(job: JobView, wei: string | null | undefined): string {
  return wei === null || wei === undefined ? "" : tokenAmount(wei, job.token);
}

const ROLE: Record<RenderView["role"], string> = {
  primary: "Render",
  verification: "Verification render",
  arbitration: "Arbitration render",
};

/** The sampled frames' second (and third) renders: who, and what came of it. */
function checks(f: FrameView): HTMLElement | null {
  const others = (f.renders ?? []).filter((r) => r.role !== "primary");
  if (others.length === 0) return null;
  return h(
    "ul",
    { class: "checks" },
    others.map((r) =>
      h(
        "li",
        null,
        `${ROLE[r.role]} by `,
        addressLink(r.node),
        ": ",
        h("span", { class: `state state-${r.state}` }, r.state),
        r.role === "verification" && f.verification_payout
          ? [" · paid in ", txLink(f.verification_payout.tx)]
          : null,
      ),
    ),
  );
}

function frameCard(job: JobView, f: FrameView): HTMLLIElement {
  // The full frame once paid on-chain; the watermarked preview before.
  const base = `/api/v1/jobs/${job.job_id}/frames/${f.frame}`;
  const src = f.payout_tx ? base : f.preview ? `${base}/preview` : null;
  return h(
    "li",
    { class: "frame", "data-frame": f.frame, "data-state": f.state },
    src
      ? h("img", {
          loading: "lazy",
          decoding: "async",
          src,
          alt: `Frame ${f.frame}${f.payout_tx ? "" : " (watermarked preview)"}`,
          width: job.width,
          height: job.height,
        })
      : h("div", { class: "frame-empty", "aria-hidden": "true" }),
    h("div", null, `Frame ${f.frame} · `, h("span", { class: `state state-${f.state}` }, f.state)),
    f.node ? h("div", null, "Node ", addressLink(f.node)) : null,
    f.verdict ? h("div", null, "Verdict: ", f.verdict) : null,
    checks(f),
    f.payout_tx ? h("div", { class: "payout" }, "Paid in ", txLink(f.payout_tx)) : null,
    f.payout_tx
      ? h("a", { class: "download", href: base, download: `lumen-job-${job.job_id}-frame-${f.frame}.png` }, `Download frame ${f.frame}`)
      : null,
    f.failure ? h("div", { class: "state-failed" }, f.failure) : null,
  );
}

function txRow(job: JobView, t: TxView): HTMLTableRowElement {
  return h(
    "tr",
    null,
    h("td", null, t.event),
    h("td", null, txLink(t.tx_hash)),
    h("td", { class: "num" }, t.block_number),
    h("td", { class: "num" }, amount(job, t.amount)),
  );
}

/** A Unix time in the reader's clock and words. */
function when(unix: number): string {
  return new Date(unix * 1000).toLocaleString();
}

/**
 * The frame grid, keyed by frame: `update` rebuilds the cards whose frame
 * changed and keeps the others (their images, the reader's focus).
 */
class FrameGrid {
  readonly el = h("ul", { class: "grid", "aria-label": "Frames" });
  private cards = new Map<number, { key: string; card: HTMLLIElement }>();

  update(job: JobView): void {
    const next = new Map<number, { key: string; card: HTMLLIElement }>();
    const order: HTMLLIElement[] = [];
    const shape = `${job.job_id}:${job.width}x${job.height}:`;
    for (const f of job.frames) {
      const key = shape + JSON.stringify(f);
      const old = this.cards.get(f.frame);
      const entry = old && old.key === key ? old : { key, card: frameCard(job, f) };
      next.set(f.frame, entry);
      order.push(entry.card);
    }
    // Swap only what changed; rebuild the list when frames came or went.
    const same =
      this.cards.size === next.size && job.frames.every((f) => this.cards.has(f.frame));
    if (same) {
      for (const [frame, entry] of next) {
        const old = this.cards.get(frame);
        if (old && old.card !== entry.card) old.card.replaceWith(entry.card);
      }
    } else {
      this.el.replaceChildren(...order);
    }
    this.cards = next;
  }
}

/** The artist's actions on the escrow, and how far one of them got. */
interface Actions {
  confirmingCancel: boolean;
  /** What is in flight ("Waiting for your wallet…"), with its transaction once sent. */
  pending: { text: string; tx?: Hex } | null;
}

function termsArg(onchain: OnchainJobView) {
  const t = onchain.terms;
  return {
    specHash: t.spec_hash,
    artist: t.artist,
    token: t.token,
    pricePerFrame: BigInt(t.price_per_frame),
    frameCount: t.frame_count,
    verifications: t.verifications,
    deadline: BigInt(t.deadline),
    openedAt: BigInt(t.opened_at),
    feeBps: t.fee_bps,
  };
}

export const jobPage: Page = (params) => {
  const id = Number(params.id);
  let body: HTMLElement;
  let head: HTMLElement;
  let actionsEl: HTMLElement;
  let txs: HTMLElement;
  let grid: FrameGrid | null = null;
  let job: JobView | null = null;
  let stream: EventSource | null = null;
  /** What the page shows now: the last job view's JSON, or a message's key. */
  let shown: string | null = null;
  const actions: Actions = { confirmingCancel: false, pending: null };

  let retry: ReturnType<typeof setTimeout> | null = null;
  let retryMs = 1000;
  const close = () => {
    stream?.close();
    stream = null;
    if (retry) clearTimeout(retry);
    retry = null;
  };

  /** Sends `cancel` or `refund` of this job from the connected wallet. */
  const act = async (what: "cancel" | "refund") => {
    const onchain = job?.onchain;
    const { wallet, account } = state;
    if (!job || !onchain || !wallet || !account || !state.info) return;
    actions.confirmingCancel = false;
    const verb = what === "cancel" ? "Cancelling" : "Refunding";
    const set = (text: string, tx?: Hex) => {
      actions.pending = tx ? { text, tx } : { text };
      renderActions();
    };
    try {
      const receipt = await send(
        wallet,
        account,
        {
          address: state.info.escrow,
          abi: escrowAbi,
          functionName: what,
          args: [BigInt(job.job_id), termsArg(onchain)],
        },
        (step, hash) => {
          if (step === "simulating") set(`${verb} job ${id}: checking the call with the escrow…`);
          else if (step === "signing") set(`${verb} job ${id}: confirm the transaction in ${wallet.name}…`);
          else set(`${verb} job ${id}: waiting for the transaction to be mined…`, hash);
        },
      );
      actions.pending = null;
      const done = what === "cancel" ? `Job ${id} is cancelled` : `Job ${id} is refunded`;
      update({
        notice: {
          kind: "info",
          text: `${done} (transaction ${short(receipt.transactionHash)}, block ${receipt.blockNumber}). The page updates as the gateway sees it.`,
        },
      });
    } catch (err) {
      actions.pending = null;
      const nothing = what === "cancel" ? "The job was not cancelled" : "Nothing was refunded";
      update({ notice: { kind: "error", text: `${nothing}. ${describeError(err)}` } });
    }
    renderActions();
  };

  function renderActions(): void {
    if (!actionsEl || !job) return;
    const paid = job.frames.filter((f) => f.payout_tx).length;
    const download =
      paid > 0
        ? h(
            "a",
            { class: "button", href: `/api/v1/jobs/${job.job_id}/frames.zip`, download: `lumen-job-${job.job_id}-frames.zip` },
            `Download all paid frames (${paid}, .zip)`,
          )
        : h("p", { class: "hint" }, "Paid frames can be downloaded here, one by one or all at once, as soon as they are paid on-chain.");
    const onchain = job.onchain;
    const escrow: HTMLElement[] = [];
    if (!onchain) {
      escrow.push(h("p", { class: "hint" }, "The escrow's record of this job appears once the gateway has seen it on-chain."));
    } else if (onchain.state === "closed") {
      escrow.push(h("p", null, "The escrow is closed: every verified frame is paid and the rest went back to you."));
    } else {
      const { wallet, account } = state;
      const artist = onchain.terms.artist;
      const blocker = !wallet || !account
        ? "Connect the wallet of this job's artist to cancel or refund it."
        : !sameAddress(account, artist)
          ? `Your wallet's account ${short(account)} is not this job's artist (${short(artist)}).`
          : !onRightChain()
            ? "Your wallet is on another network: switch it to cancel or refund."
            : null;
      const busy = actions.pending !== null;
      const refundAt = onchain.refundable_at;
      const canCancel = onchain.state === "open" && !job.frames.every((f) => f.state === "verified" || f.state === "failed");
      if (canCancel && !actions.confirmingCancel) {
        escrow.push(
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              disabled: busy || blocker !== null,
              onclick: () => {
                actions.confirmingCancel = true;
                renderActions();
                actionsEl.querySelector<HTMLElement>("[data-confirm]")?.focus();
              },
            },
            "Cancel job…",
          ),
        );
      }
      if (canCancel && actions.confirmingCancel) {
        escrow.push(
          h(
            "div",
            { class: "confirm", role: "group", "aria-label": "Confirm cancelling" },
            h(
              "p",
              { tabindex: -1, "data-confirm": "" },
              `Cancel job ${id}? Nothing more is rendered. Frames already verified are still paid; the rest can be refunded to you after the escrow's grace period.`,
            ),
            h("button", { type: "button", class: "primary", disabled: busy, onclick: () => void act("cancel") }, `Yes, cancel job ${id}`),
            " ",
            h(
              "button",
              {
                type: "button",
                class: "secondary",
                onclick: () => {
                  actions.confirmingCancel = false;
                  renderActions();
                },
              },
              "Keep it running",
            ),
          ),
        );
      }
      // The escrow decides when a refund is possible, by the chain's clock:
      // a refund asked too early is stopped by the simulation, with the
      // escrow's reason, before the wallet asks anything.
      escrow.push(
        h(
          "button",
          { type: "button", class: "secondary", disabled: busy || blocker !== null, onclick: () => void act("refund") },
          "Refund the rest",
        ),
        h(
          "p",
          { class: "hint" },
          onchain.state === "cancelled" ? "Cancelled. " : "",
          refundAt === null
            ? ""
            : `The escrow refunds what was not paid to nodes from ${when(refundAt)}${
                onchain.state === "open" ? " (the job's deadline), or after a cancel's grace period" : ""
              }.`,
        ),
      );
      if (blocker) escrow.push(h("p", { class: "hint" }, blocker));
    }
    replace(
      actionsEl,
      h("div", { class: "actions" }, download, escrow),
      actions.pending
        ? h(
            "p",
            { class: "pending", role: "status" },
            actions.pending.text,
            actions.pending.tx ? [" ", txLink(actions.pending.tx)] : null,
          )
        : null,
    );
  }

  function renderHead(j: JobView): void {
    const price = tokenAmount(j.price_per_frame, j.token);
    const verified = j.frames.filter((f) => f.state === "verified").length;
    const paid = j.frames.filter((f) => f.payout_tx).length;
    const failed = j.frames.filter((f) => f.state === "failed").length;
    replace(
      head,
      h(
        "p",
        null,
        h("span", { class: `state state-${j.state}` }, j.state.replace("_", " ")),
        ` · ${j.frame_count} frames at ${j.width}×${j.height} · ${price} per frame`,
      ),
      h(
        "p",
        null,
        h("progress", { max: j.frame_count, value: verified, "aria-label": "Frames verified" }),
        ` ${verified} of ${j.frame_count} verified · ${paid} paid${failed ? ` · ${failed} failed` : ""}`,
      ),
      j.failure ? h("p", { class: "state-failed" }, j.failure) : null,
      j.settlement_parked ? h("p", { class: "state-failed" }, `Settlement parked: ${j.settlement_parked}`) : null,
      (j.unpayable ?? []).map((u) =>
        h("p", { class: "state-failed" }, "Node ", addressLink(u.node), ` cannot be paid for this job: ${u.reason}`),
      ),
    );
  }

  /** Shows `j` unless it is what the page shows already. */
  function show(j: JobView, json = JSON.stringify(j)): void {
    if (json === shown) return;
    shown = json;
    // Marks for the benchmark (bench/job-page.mjs): how long a render takes.
    performance.mark("lumen:job-render-start");
    render(j);
    performance.mark("lumen:job-rendered");
    // After the next paint (a timer set in a frame callback runs after it).
    requestAnimationFrame(() => setTimeout(() => performance.mark("lumen:job-painted")));
  }

  /** Shows a message instead of the job. */
  function message(key: string, el: HTMLElement): void {
    close();
    grid = null;
    if (shown === key) return;
    shown = key;
    replace(body, el);
  }

  function render(j: JobView): void {
    const first = !grid;
    job = j;
    if (first) {
      head = h("div");
      actionsEl = h("div", { class: "job-actions" });
      txs = h("div");
      grid = new FrameGrid();
      replace(body, head, actionsEl, h("h2", null, "Frames"), grid.el, h("h2", null, "On-chain settlement"), txs);
    }
    renderHead(j);
    renderActions();
    grid?.update(j);
    replace(
      txs,
      table("On-chain settlement", ["Event", "Transaction", "Block", "Amount"], j.transactions.map((t) => txRow(j, t)), "Nothing on-chain yet."),
    );
    body.dataset.frames = String(j.frames.length);
  }

  /**
   * Follows the job's pushed views: the stream's first event is the whole
   * view, so the page loads the job through it (one request, not two).
   */
  const follow = () => {
    if (stream) return;
    const source = new EventSource(`/api/v1/jobs/${id}/events`);
    stream = source;
    source.addEventListener("job", (event) => {
      const data = (event as MessageEvent<string>).data;
      show(JSON.parse(data) as JobView);
      body.dataset.live = "open";
    });
    source.addEventListener("open", () => {
      retryMs = 1000;
    });
    source.addEventListener("error", () => {
      if (stream !== source) return;
      // EventSource retries by itself after a dropped connection; the page
      // says it is catching up. An answer that is not a stream closes it for
      // good: signed out, not this artist's job, too many streams, the
      // gateway failing. The API says which.
      if (body) body.dataset.live = "reconnecting";
      if (source.readyState === EventSource.CLOSED) {
        stream = null;
        void explain();
      }
    });
  };

  /** After the stream was refused: shows why, and tries again later unless it never can. */
  const explain = async () => {
    try {
      const job = await api.job(id);
      if (job === null) {
        message(
          "signed-out",
          h("p", { class: "hint" }, "Jobs are private to their artist: connect your wallet and sign in to see this one."),
        );
        return;
      }
      show(job);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 403 || err.status === 404)) {
        message("not-yours", h("p", { class: "hint" }, "No job of yours has this number."));
        return;
      }
      // The gateway is down or failing: keep what the page shows.
      if (shown === null) message("error", h("p", { class: "state-failed" }, describeError(err)));
    }
    retry = setTimeout(follow, retryMs);
    retryMs = Math.min(retryMs * 2, 30_000);
  };

  // The wallet decides what the artist can do: redraw the actions when it changes.
  let unsubscribe: (() => void) | null = null;

  const view: View = {
    title: `Job ${id}`,
    unmount() {
      close();
      unsubscribe?.();
    },
    mount(main) {
      body = h("div", { "aria-live": "off" }, h("p", { class: "hint" }, "Loading…"));
      replace(
        main,
        h("p", null, h("a", { href: href("/") }, "← All jobs")),
        h("h1", { tabindex: -1 }, `Job ${id}`),
        body,
      );
      unsubscribe = subscribe((s, previous) => {
        if (s.wallet !== previous.wallet || s.account !== previous.account || s.chainId !== previous.chainId) {
          renderActions();
        }
      });
    },
    async refresh() {
      if (!Number.isSafeInteger(id) || id < 0) {
        message("bad-id", h("p", { class: "state-failed" }, "That is not a job number."));
        return;
      }
      // Names for links and amounts; the page works without them (plain hashes, raw units).
      await Promise.all([loadLinks(), loadTokens()]).catch(() => {});
      // Called on navigation and when the session changes: what the stream
      // may send depends on who is signed in, so it starts again.
      close();
      follow();
    },
  };
  return view;
};
