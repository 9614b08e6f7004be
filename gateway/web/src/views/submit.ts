// `#/submit`: a new job, in four steps on one page, as `lumen job submit`
// does it (`crates/cli/src/cmd/job.rs`):
//
// 1. the `.blend`: hashed here (blake3, the gateway's content hash); a file
//    this artist uploaded before is not sent again, any other is uploaded
//    with its progress shown;
// 2. what the gateway read from it;
// 3. the terms (frames, token, price, verification renders, deadline),
//    checked against the market's limits, with the escrow's own quote and
//    the account's balance;
// 4. the payment: the spec signed as EIP-712 typed data, the token approved
//    for exactly the amount (ERC-20 only), `openJob`, and the registration
//    with the gateway; then the job's page.
//
// Nothing reaches the wallet before the balance is checked and `openJob`
// passed the escrow's checks in a simulation, and every failure says
// whether anything was locked.

import { BaseError, ContractFunctionRevertedError, hashTypedData, parseEventLogs, type TypedDataDefinition } from "viem";
import { escrowAbi, tokenAbi } from "../abi";
import { api } from "../api";
import { RevertedOnChain, balanceOf, chainTime, read, send, simulate, type Progress } from "../chain";
import { h, replace, type Child } from "../dom";
import { ApiError, describeError } from "../errors";
import { chainName, checksummed, sameAddress, short } from "../format";
import {
  NATIVE,
  engineName,
  formatAmount,
  frameCount,
  frameLimit,
  jobSpec,
  minDeadlineHours,
  parseAmount,
  parseDeadlineHours,
  parseFrameRange,
  parseVerifications,
  priceLimit,
  randomSalt,
  registerJobBody,
  sceneRange,
  tokenTerms,
  type FrameRange,
} from "../jobform";
import { href } from "../router";
import { onRightChain, state, subscribe, update, type AppState } from "../state";
import type { ExplorerLinks, Hex, JobSpec, JobSpecTypedData, Market, UploadedBlend } from "../types";
import { formatBytes, hashFile, isBlendName, percent } from "../upload";
import type { Page } from "./view";

/** A token's symbol and decimals. */
interface TokenInfo {
  symbol: string;
  decimals: number;
}

/** The native coin, as the wallet's chain definition names it (`settlementChain`). */
const NATIVE_INFO: TokenInfo = { symbol: "ETH", decimals: 18 };

/** Symbols and decimals read from the tokens' contracts, by lower-case address. */
const tokenInfos = new Map<string, TokenInfo>();

function tokenInfo(token: Hex): TokenInfo | undefined {
  return token === NATIVE ? NATIVE_INFO : tokenInfos.get(token.toLowerCase());
}

/** What the artist asks for, once every field checks out. */
interface Terms {
  range: FrameRange;
  frames: number;
  token: Hex;
  info: TokenInfo;
  price: bigint;
  verifications: number;
  hours: number;
}

/** A job opened on-chain, whatever the gateway says next. */
interface Funded {
  jobId: bigint;
  tx: Hex;
  spec: JobSpec;
  signature: Hex;
}

const PAY_LABEL = "Sign and lock payment";

/**
 * The escrow's ABI with the token's custom errors: a token transfer that
 * `openJob` makes and the token refuses is decoded by name.
 */
const openJobAbi = [...escrowAbi, ...tokenAbi.filter((item) => item.type === "error")];

/** A stop before anything was asked of the wallet, with its own words. */
class Refusal extends Error {}

type StepState = "waiting" | "active" | "done" | "failed" | "skipped";

const STEP_WORDS: Record<StepState, string> = {
  waiting: "To do: ",
  active: "In progress: ",
  done: "Done: ",
  failed: "Failed: ",
  skipped: "Not needed: ",
};

/** One line of the payment's progress. */
class Step {
  readonly li: HTMLLIElement;
  private readonly status = h("span", { class: "visually-hidden" });
  private readonly detail = h("span", { class: "step-detail" });

  constructor(label: string) {
    this.li = h(
      "li",
      { class: "step", "data-state": "waiting" },
      this.status,
      h("span", { class: "step-label" }, label),
      this.detail,
    );
    this.set("waiting");
  }

  set(to: StepState, ...detail: Child[]): void {
    this.li.dataset.state = to;
    this.status.textContent = STEP_WORDS[to];
    replace(this.detail, ...detail);
  }
}

/** The name of a contract's custom error along `err`'s cause chain, if it is a revert. */
function revertName(err: unknown): string | null {
  if (!(err instanceof BaseError)) return null;
  const revert = err.walk((e) => e instanceof ContractFunctionRevertedError);
  return revert instanceof ContractFunctionRevertedError ? (revert.data?.errorName ?? null) : null;
}

/** A revert `openJob` gives only because the escrow is not yet allowed to take the token. */
const NOT_YET_APPROVED = new Set(["ERC20InsufficientAllowance", "SafeERC20FailedOperation"]);

export const submitPage: Page = () => {
  let market: Market | null = null;
  let typed: JobSpecTypedData | null = null;
  let links: ExplorerLinks | null = null;
  /** The uploaded scene the form is about. */
  let blend: UploadedBlend | null = null;
  /** The account the scene was uploaded as: only its signature registers a job of it. */
  let blendOwner: Hex | null = null;
  /** The hashing or upload under way. */
  let transfer: AbortController | null = null;
  /** Whether the payment is under way (the form is locked). */
  let paying = false;
  let funded: Funded | null = null;
  /** Whether the artist changed the verification renders (else they follow the frame count). */
  let verificationsEdited = false;
  let lastTerms: Terms | null = null;
  let quoteTimer: number | undefined;
  let quoteSeq = 0;
  let unsubscribe: (() => void) | null = null;

  // The skeleton: every part exists from the start, and is shown or filled in.
  const gate = h("div", { class: "submit-gate" });
  const fileInput = h("input", { type: "file", id: "blend-file", accept: ".blend", class: "visually-hidden" });
  const dropzone = h(
    "div",
    { class: "dropzone", "data-testid": "dropzone" },
    fileInput,
    h(
      "label",
      { for: "blend-file", class: "dropzone-label" },
      h("span", { class: "dropzone-title" }, "Choose a .blend file"),
      h(
        "span",
        { class: "dropzone-hint" },
        "or drop it here. Pack its textures into it first (File › External Data › Pack Resources).",
      ),
    ),
  );
  const transferName = h("p", { class: "transfer-name" });
  const progress = h("progress", { max: 100, value: 0, "aria-labelledby": "transfer-text" });
  const progressText = h("p", { class: "transfer-text", id: "transfer-text", role: "status", "aria-live": "polite" });
  const cancelTransfer = h(
    "button",
    { type: "button", class: "secondary", onclick: () => transfer?.abort() },
    "Cancel upload",
  );
  const transferBox = h("div", { class: "transfer", hidden: true }, transferName, progress, progressText, cancelTransfer);
  const uploadError = h("p", { class: "form-error", role: "alert", hidden: true });

  const sceneFacts = h("dl", { class: "facts" });
  const sceneSection = h(
    "section",
    { "aria-labelledby": "scene-title", hidden: true },
    h("h2", { id: "scene-title" }, "2. What the gateway read"),
    sceneFacts,
  );

  // The terms' fields.
  const framesInput = h("input", { type: "text", id: "job-frames", autocomplete: "off", spellcheck: "false" });
  const tokenSelect = h("select", { id: "job-token" });
  const priceInput = h("input", { type: "text", id: "job-price", inputmode: "decimal", autocomplete: "off" });
  const priceUnit = h("span", { class: "unit", "aria-hidden": "true" });
  const verificationsInput = h("input", { type: "text", id: "job-verifications", inputmode: "numeric", autocomplete: "off" });
  const deadlineInput = h("input", { type: "text", id: "job-deadline", inputmode: "numeric", autocomplete: "off", value: "24" });
  const controls = [framesInput, tokenSelect, priceInput, verificationsInput, deadlineInput];

  const hints = new Map<HTMLElement, HTMLElement>();
  const errors = new Map<HTMLElement, HTMLElement>();
  const field = (label: string, control: HTMLInputElement | HTMLSelectElement, unit?: HTMLElement): HTMLElement => {
    const hint = h("p", { class: "field-hint", id: `${control.id}-hint` });
    const error = h("p", { class: "field-error", id: `${control.id}-error`, hidden: true });
    hints.set(control, hint);
    errors.set(control, error);
    control.setAttribute("aria-describedby", `${control.id}-hint ${control.id}-error`);
    return h(
      "div",
      { class: "field" },
      h("label", { for: control.id }, label),
      unit ? h("div", { class: "with-unit" }, control, unit) : control,
      hint,
      error,
    );
  };
  const setError = (control: HTMLElement, message: string | null): void => {
    const el = errors.get(control);
    if (!el) return;
    if (el.textContent !== (message ?? "")) el.textContent = message ?? "";
    el.hidden = message === null;
    control.setAttribute("aria-invalid", message === null ? "false" : "true");
  };
  const setHint = (control: HTMLElement, text: string): void => {
    const el = hints.get(control);
    if (el && el.textContent !== text) el.textContent = text;
  };

  const estimate = h("div", { class: "estimate", "aria-live": "polite", "data-testid": "estimate" });
  const steps = h("ol", { class: "steps", "aria-label": "What happens when you submit" });
  const payError = h("div", { class: "form-error", role: "alert", hidden: true });
  const payButton = h("button", { type: "submit", class: "primary", "data-testid": "pay" }, PAY_LABEL);
  const retryButton = h(
    "button",
    { type: "button", class: "primary", hidden: true, onclick: () => void register() },
    "Try registering again",
  );
  const payHint = h("p", { class: "hint", id: "pay-hint" });
  payButton.setAttribute("aria-describedby", "pay-hint");

  const form = h(
    "form",
    { class: "terms", novalidate: true, onsubmit: (event: Event) => {
      event.preventDefault();
      void pay();
    } },
    h(
      "section",
      { "aria-labelledby": "terms-title" },
      h("h2", { id: "terms-title" }, "3. Terms"),
      h(
        "div",
        { class: "fields" },
        field("Frames", framesInput),
        field("Payment token", tokenSelect),
        field("Price per frame", priceInput, priceUnit),
        field("Verification renders", verificationsInput),
        field("Deadline, in hours from now", deadlineInput),
      ),
      h("h3", null, "Cost"),
      estimate,
    ),
    h(
      "section",
      { "aria-labelledby": "pay-title" },
      h("h2", { id: "pay-title" }, "4. Sign and pay"),
      steps,
      payError,
      h("div", { class: "actions" }, payButton, retryButton),
      payHint,
    ),
  );
  const termsBox = h("div", { hidden: true }, form);

  // ------------------------------------------------------------ the gate

  /** Why the page cannot take a file now, if it cannot. */
  function uploadBlocked(s: AppState): string | null {
    if (!s.session) {
      return (
        "Sign in to submit a job: connect your wallet and sign in with the buttons at the top of the page. " +
        "Your scenes and jobs are private to your account."
      );
    }
    return null;
  }

  /** Why the page cannot pay now, if it cannot. */
  function payBlocked(s: AppState): string | null {
    const blocked = uploadBlocked(s);
    if (blocked) return blocked;
    if (!s.wallet || !s.account) return "Connect your wallet (top of the page): it signs the job and pays for it.";
    if (!onRightChain(s)) {
      const chain = s.info ? chainName(s.info.chain_id) : "the settlement chain";
      return `Your wallet is on another network: switch it to ${chain} (banner above) to pay.`;
    }
    if (s.session && !sameAddress(s.session.address, s.account)) {
      return (
        `Your wallet's account ${short(s.account)} is not the one signed in (${short(s.session.address)}): ` +
        "sign in with it at the top of the page, or switch accounts in your wallet."
      );
    }
    return null;
  }

  function renderGate(): void {
    const why = payBlocked(state);
    const key = why ?? "";
    if (gate.dataset.reason !== key) {
      gate.dataset.reason = key;
      replace(gate, why ? h("p", { class: "notice-box", "data-testid": "submit-gate" }, why) : null);
    }
    const uploadWhy = uploadBlocked(state);
    const locked = uploadWhy !== null || paying || funded !== null;
    fileInput.disabled = locked;
    dropzone.classList.toggle("disabled", locked);
    renderPayButton();
  }

  function renderPayButton(): void {
    const blocked = payBlocked(state);
    const terms = lastTerms;
    payButton.disabled = paying || funded !== null || blocked !== null || terms === null || blend === null;
    payButton.hidden = funded !== null;
    if (paying) payHint.textContent = "Follow the steps above; your wallet asks you to confirm each one.";
    else if (blocked) payHint.textContent = blocked;
    else if (!terms) payHint.textContent = "Correct the fields marked above first.";
    else payHint.textContent = "Nothing leaves your wallet until you confirm there. Your wallet shows the job spec field by field.";
  }

  // ------------------------------------------------------------ the file

  function showTransfer(text: string, value: number): void {
    transferBox.hidden = false;
    progress.value = value;
    progressText.textContent = text;
  }

  function resetJob(): void {
    blend = null;
    funded = null;
    lastTerms = null;
    verificationsEdited = false;
    sceneSection.hidden = true;
    termsBox.hidden = true;
    payError.hidden = true;
    retryButton.hidden = true;
  }

  async function takeFile(file: File): Promise<void> {
    if (paying || funded) return;
    transfer?.abort();
    resetJob();
    uploadError.hidden = true;
    if (!isBlendName(file.name)) {
      transferBox.hidden = true;
      showUploadError(
        `“${file.name}” is not a .blend file: choose the scene you saved from Blender. Nothing was uploaded.`,
      );
      return;
    }
    const controller = new AbortController();
    transfer = controller;
    cancelTransfer.hidden = false;
    transferName.textContent = `${file.name} · ${formatBytes(file.size)}`;
    try {
      showTransfer("Reading the file… 0%", 0);
      const hash = await hashFile(
        file,
        (done, total) => showTransfer(`Reading the file… ${percent(done, total)}%`, percent(done, total)),
        controller.signal,
      );
      replace(transferName, `${file.name} · ${formatBytes(file.size)} · `, h("code", { title: `blake3 ${hash}` }, short(hash)));
      showTransfer("Checking whether the gateway already has it…", 100);
      let uploaded = await api.ownBlend(hash);
      controller.signal.throwIfAborted();
      if (uploaded) {
        showTransfer("Already uploaded: the gateway has this file from you, so nothing was sent.", 100);
      } else {
        showTransfer(`Uploading… 0 B of ${formatBytes(file.size)} (0%)`, 0);
        uploaded = await api.uploadBlend(
          file,
          (sent, total) => {
            const share = percent(sent, total);
            showTransfer(
              share < 100
                ? `Uploading… ${formatBytes(sent)} of ${formatBytes(total)} (${share}%)`
                : "Uploaded: the gateway is reading the scene with Blender…",
              share,
            );
          },
          controller.signal,
        );
        if (uploaded.hash.toLowerCase() !== hash.toLowerCase()) {
          throw new Error(`the gateway stored the file as ${uploaded.hash}, not as its hash ${hash}`);
        }
        showTransfer(`Uploaded ${formatBytes(uploaded.size)}; the gateway read the scene.`, 100);
      }
      blend = uploaded;
      blendOwner = state.session?.address ?? null;
      showScene(uploaded);
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") {
        if (transfer === controller) showTransfer("Cancelled: nothing more was sent.", 0);
        return;
      }
      transferBox.hidden = true;
      showUploadError(uploadWords(file.name, err, progress.value > 0 && progress.value < 100));
    } finally {
      if (transfer === controller) {
        transfer = null;
        cancelTransfer.hidden = true;
      }
    }
  }

  /** Why an upload failed; `midway`: the connection dropped while the file was being sent. */
  function uploadWords(name: string, err: unknown, midway: boolean): string {
    const refused =
      err instanceof ApiError &&
      err.status >= 400 &&
      err.status < 500 &&
      !["unauthorized", "rate_limited"].includes(err.code);
    let why = refused ? `“${name}” was not accepted: ${err.message}.` : describeError(err);
    if (err instanceof TypeError && midway) {
      // A gateway that refuses a file while it arrives (too large) may close the connection before answering.
      why =
        "The upload was cut off before the gateway answered: the connection dropped, or the gateway refused the file " +
        "while it arrived (a file larger than it accepts).";
    }
    return `${why} Nothing was locked.`;
  }

  /** After signing in as another account: its jobs need their own upload. */
  function forgetScene(): void {
    transfer?.abort();
    resetJob();
    transferBox.hidden = true;
    showUploadError("You are now signed in with another account: choose the file again, to upload it for this account.");
  }

  function showUploadError(text: string): void {
    uploadError.textContent = text;
    uploadError.hidden = false;
  }

  function onDrop(event: DragEvent): void {
    event.preventDefault();
    dropzone.classList.remove("dragging");
    if (fileInput.disabled) return;
    const files = [...(event.dataTransfer?.files ?? [])];
    const [file] = files;
    if (!file) return;
    if (files.length > 1) {
      showUploadError("Drop one .blend at a time.");
      return;
    }
    void takeFile(file);
  }

  // ------------------------------------------------------------ the scene

  function showScene(uploaded: UploadedBlend): void {
    const s = uploaded.scene;
    const step = Math.max(1, s.frame_step);
    const count = frameCount(s.frame_start, s.frame_end, step);
    const fact = (label: string, value: Child, testid?: string): HTMLElement =>
      h("div", { class: "fact" }, h("dt", null, label), h("dd", testid ? { "data-testid": testid } : null, value));
    replace(
      sceneFacts,
      fact(
        "Frames",
        `${s.frame_start}–${s.frame_end}${step > 1 ? ` every ${step}` : ""} (${count} frame${count === 1 ? "" : "s"})`,
        "scene-frames",
      ),
      fact("Resolution", `${s.width} × ${s.height} px`, "scene-resolution"),
      fact("Engine", engineName(s.engine), "scene-engine"),
      fact("Samples", typeof s.samples === "number" ? String(s.samples) : "none (this engine has no samples)", "scene-samples"),
      fact("Frame rate", `${Number(s.fps.toFixed(2))} fps`),
      fact("Saved with", s.saved_with ? `Blender ${s.saved_with}` : "unknown"),
    );
    sceneSection.hidden = false;
    buildTerms(uploaded);
    termsBox.hidden = false;
  }

  // ------------------------------------------------------------ the terms

  function tokenLabel(token: Hex): string {
    if (token === NATIVE) return `${NATIVE_INFO.symbol} (native coin)`;
    const info = tokenInfo(token);
    return info ? `${info.symbol} (${short(token)})` : short(token);
  }

  function renderTokenOptions(): void {
    if (!market) return;
    const selected = tokenSelect.value;
    const options = market.tokens.map((t) => {
      const token = (t.token === NATIVE ? NATIVE : checksummed(t.token)) as Hex;
      return h("option", { value: token, selected: sameAddress(token, selected as Hex) }, tokenLabel(token));
    });
    const labels = options.map((o) => o.textContent).join("|");
    if (tokenSelect.dataset.labels === labels) return;
    tokenSelect.dataset.labels = labels;
    replace(tokenSelect, options);
  }

  /** The minimum price of the selected token in its units, as the price field shows it; `null` when unknown. */
  function minPriceText(token: Hex): string | null {
    const terms = market ? tokenTerms(market, token) : undefined;
    const info = tokenInfo(token);
    if (!terms || !info) return null;
    return formatAmount(BigInt(terms.min_price_per_frame), info.decimals, "").trim();
  }

  /** The price text the page filled in itself (the minimum), to tell it from what the artist typed. */
  let prefilledPrice: string | null = null;

  function prefillPrice(): void {
    const token = tokenSelect.value as Hex;
    const text = minPriceText(token);
    if (text === null) return;
    if (priceInput.value === "" || priceInput.value === prefilledPrice) {
      priceInput.value = text;
      prefilledPrice = text;
    }
  }

  function buildTerms(uploaded: UploadedBlend): void {
    const s = uploaded.scene;
    framesInput.value = sceneRange(s);
    setHint(
      framesInput,
      `First-last, within the scene's ${sceneRange(s)}${s.frame_step > 1 ? ` (every ${s.frame_step} frames)` : ""}.`,
    );
    renderTokenOptions();
    priceInput.value = "";
    prefilledPrice = null;
    prefillPrice();
    verificationsInput.value = String(frameCount(s.frame_start, s.frame_end, Math.max(1, s.frame_step)));
    setHint(
      verificationsInput,
      "Independent re-renders that check sampled frames, at most one per frame, each paid at the frame price " +
        "from a budget locked with the job; what is not used comes back to you.",
    );
    deadlineInput.value = String(Math.max(24, market ? minDeadlineHours(market) : 24));
    checkTerms();
    renderSteps();
    scheduleQuote(0);
  }

  /** Reads and checks every field, marking the wrong ones; the terms when all are right. */
  function checkTerms(): Terms | null {
    if (!blend || !market) return null;
    const scene = blend.scene;
    const step = Math.max(1, scene.frame_step);
    const parsedRange = parseFrameRange(framesInput.value, scene);
    let frames = 0;
    let rangeError = parsedRange.ok ? null : parsedRange.error;
    if (parsedRange.ok) {
      frames = frameCount(parsedRange.value.start, parsedRange.value.end, step);
      rangeError = frameLimit(frames, market);
      if (!verificationsEdited) verificationsInput.value = String(frames);
    }
    setError(framesInput, rangeError);

    const token = tokenSelect.value as Hex;
    const terms = tokenTerms(market, token);
    const info = tokenInfo(token);
    let price: bigint | null = null;
    priceUnit.textContent = info?.symbol ?? "";
    if (!terms) {
      setError(priceInput, "This gateway does not take payment in that token.");
    } else if (!info) {
      setError(priceInput, "Connect your wallet on the settlement network: the token's decimals are read from its contract.");
    } else {
      const least = formatAmount(BigInt(terms.min_price_per_frame), info.decimals, info.symbol);
      setHint(priceInput, `In ${info.symbol}. This gateway takes at least ${least} a frame.`);
      const parsed = parseAmount(priceInput.value, info.decimals, info.symbol);
      const problem = parsed.ok ? priceLimit(parsed.value, terms, info.decimals, info.symbol) : parsed.error;
      setError(priceInput, problem);
      if (parsed.ok && problem === null) price = parsed.value;
    }

    let verifications: number | null = null;
    if (parsedRange.ok) {
      const parsed = parseVerifications(verificationsInput.value, frames);
      setError(verificationsInput, parsed.ok ? null : parsed.error);
      if (parsed.ok) verifications = parsed.value;
    } else {
      setError(verificationsInput, null);
    }

    const deadline = parseDeadlineHours(deadlineInput.value, market);
    setError(deadlineInput, deadline.ok ? null : deadline.error);
    setHint(
      deadlineInput,
      `After the deadline you can take back whatever was not paid. At least ${minDeadlineHours(market)} hours on this gateway.`,
    );

    if (!parsedRange.ok || rangeError || !info || price === null || verifications === null || !deadline.ok) return null;
    return { range: parsedRange.value, frames, token, info, price, verifications, hours: deadline.value };
  }

  function onTermsInput(event: Event): void {
    if (event.target === verificationsInput) verificationsEdited = true;
    if (event.target === tokenSelect) prefillPrice();
    lastTerms = checkTerms();
    if (!lastTerms) payButton.textContent = PAY_LABEL;
    renderPayButton();
    renderSteps();
    scheduleQuote(250);
  }

  // ------------------------------------------------------------ the estimate

  function scheduleQuote(delay: number): void {
    window.clearTimeout(quoteTimer);
    quoteTimer = window.setTimeout(() => void quote(), delay);
  }

  async function quote(): Promise<void> {
    if (paying || !blend) return;
    lastTerms = checkTerms();
    renderPayButton();
    const terms = lastTerms;
    const seq = ++quoteSeq;
    const show = (key: string, ...content: Child[]): void => {
      if (seq !== quoteSeq || estimate.dataset.key === key) return;
      estimate.dataset.key = key;
      replace(estimate, ...content);
    };
    if (!terms) {
      payButton.textContent = PAY_LABEL;
      show("invalid", h("p", { class: "hint" }, "Correct the fields marked above to see the cost."));
      return;
    }
    const { wallet, account } = state;
    if (!wallet || !account || !onRightChain()) {
      show("no-wallet", h("p", { class: "hint" }, "Connect your wallet on the settlement network to read the cost from the escrow."));
      return;
    }
    try {
      const [cost, balance] = await Promise.all([
        read<bigint>(wallet, {
          address: escrow(),
          abi: escrowAbi,
          functionName: "quote",
          args: [terms.frames, terms.verifications, terms.price],
        }),
        balanceOf(wallet, account, terms.token),
      ]);
      const fmt = (n: bigint): string => formatAmount(n, terms.info.decimals, terms.info.symbol);
      const framesCost = terms.price * BigInt(terms.frames);
      const budget = cost - framesCost;
      const shortfall = balance < cost;
      const row = (label: string, value: Child, attrs: Record<string, string> = {}): HTMLElement =>
        h("div", { class: "fact" }, h("dt", null, label), h("dd", attrs, value));
      show(
        `${cost}|${balance}|${terms.frames}|${terms.verifications}|${terms.price}|${terms.token}`,
        h(
          "dl",
          { class: "facts cost" },
          row("Frames", `${terms.frames} × ${fmt(terms.price)} = ${fmt(framesCost)}`),
          row("Verification budget", `up to ${terms.verifications} × ${fmt(terms.price)} = ${fmt(budget)}`),
          row("Locked now", h("strong", null, fmt(cost)), { "data-testid": "estimate-total", "data-amount": cost.toString() }),
          row(
            "Your balance",
            h("span", { class: shortfall ? "state-failed" : "" }, fmt(balance), shortfall ? " — not enough for this job" : ""),
            { "data-testid": "estimate-balance" },
          ),
        ),
        h(
          "p",
          { class: "hint" },
          "You pay only for verified frames and the verification renders that run; the rest is refunded to you when the job ends.",
          terms.token === NATIVE ? " Each transaction also costs a little gas." : "",
        ),
      );
      if (seq === quoteSeq) payButton.textContent = `Sign and lock ${fmt(cost)}`;
    } catch (err) {
      const why = describeError(err);
      show(`error|${why}`, h("p", { class: "state-failed" }, `Cannot read the cost from the escrow. ${why}`));
    }
  }

  // ------------------------------------------------------------ paying

  let plan: { check: Step; sign: Step; approve: Step | null; open: Step; register: Step } | null = null;

  /** Lists what submitting will do, before it is done. */
  function renderSteps(): void {
    if (paying || funded) return;
    const terms = lastTerms;
    const token = (terms?.token ?? tokenSelect.value) as Hex;
    const info = tokenInfo(token);
    const symbol = info?.symbol ?? "the token";
    plan = {
      check: new Step("Check your balance and the job with the escrow (nothing to confirm)."),
      sign: new Step("Sign the job spec in your wallet (a signature, free: no transaction)."),
      approve: token === NATIVE ? null : new Step(`Allow the escrow to take exactly the amount to lock in ${symbol} (a transaction).`),
      open: new Step(`Lock the payment in the escrow (a transaction${token === NATIVE ? " sending it" : ""}).`),
      register: new Step("Register the job with the gateway, then follow it on its page."),
    };
    replace(steps, plan.check.li, plan.sign.li, plan.approve?.li, plan.open.li, plan.register.li);
  }

  function escrow(): Hex {
    if (!state.info) throw new Error("the gateway's deployment is not loaded yet");
    return state.info.escrow;
  }

  function txLink(hash: Hex): HTMLElement {
    const url = links ? links.tx_url.replace("{tx}", hash) : href(`/explorer/tx/${hash}`);
    return h("a", { href: url, title: hash }, h("code", null, short(hash)));
  }

  /** A transaction's progress, shown on its step. */
  function txProgress(step: Step, what: string): Progress {
    return (phase, hash) => {
      if (phase === "simulating") step.set("active", "Checking with the contract…");
      else if (phase === "signing") step.set("active", `Confirm ${what} in your wallet…`);
      else if (hash) step.set("active", "Waiting for confirmation of ", txLink(hash), "…");
    };
  }

  function lockForm(locked: boolean): void {
    for (const control of controls) control.disabled = locked;
    renderGate();
  }

  async function pay(): Promise<void> {
    const terms = checkTerms();
    lastTerms = terms;
    const { wallet, account, info } = state;
    if (paying || funded || !terms || !blend || !typed || !wallet || !account || !info || payBlocked(state)) {
      renderPayButton();
      return;
    }
    if (!sameAddress(blendOwner, account)) {
      forgetScene();
      return;
    }
    payError.hidden = true;
    renderSteps();
    const current = plan;
    if (!current) return;
    paying = true;
    lockForm(true);
    const fmt = (n: bigint): string => formatAmount(n, terms.info.decimals, terms.info.symbol);
    const native = terms.token === NATIVE;
    let active: Step = current.check;
    let approved = false;
    /** The openJob transaction, once sent: from then on, the payment may be locked. */
    let openTx: Hex | null = null;
    let cost = 0n;
    try {
      // Checks first: nothing is asked of the wallet before they pass.
      active.set("active");
      cost = await read<bigint>(wallet, {
        address: info.escrow,
        abi: escrowAbi,
        functionName: "quote",
        args: [terms.frames, terms.verifications, terms.price],
      });
      const balance = await balanceOf(wallet, account, terms.token);
      if (balance < cost) {
        throw new Refusal(
          `Not enough ${terms.info.symbol}: your account ${short(account)} holds ${fmt(balance)}, and this job locks ${fmt(cost)}.`,
        );
      }
      const allowance = native
        ? 0n
        : await read<bigint>(wallet, {
            address: terms.token,
            abi: tokenAbi,
            functionName: "allowance",
            args: [account, info.escrow],
          });
      const needsApproval = !native && allowance !== cost;
      const now = await chainTime(wallet);
      const deadline = now + BigInt(terms.hours) * 3_600n;
      const spec = jobSpec(blend.hash, blend.scene, terms.range, terms.token, terms.price, randomSalt());
      const data = {
        domain: typed.domain,
        types: typed.types,
        primaryType: typed.primaryType,
        message: { ...spec },
      } as unknown as TypedDataDefinition;
      const specHash = hashTypedData(data);
      const open = {
        address: info.escrow,
        abi: openJobAbi,
        functionName: "openJob" as const,
        args: [specHash, terms.token, terms.price, terms.frames, terms.verifications, deadline] as const,
        value: native ? cost : 0n,
      };
      try {
        await simulate(wallet, account, open);
      } catch (err) {
        // Before its approval, a token job fails only at the token transfer,
        // after every check of the escrow's own.
        if (!(needsApproval && NOT_YET_APPROVED.has(revertName(err) ?? ""))) throw err;
      }
      active.set("done", `You hold ${fmt(balance)}; the escrow accepts the job.`);

      active = current.sign;
      active.set("active", "Confirm the signature in your wallet…");
      const signature = await wallet.signTypedData(account, data);
      active.set("done", "Signed.");

      if (current.approve) {
        active = current.approve;
        if (needsApproval) {
          const receipt = await send(
            wallet,
            account,
            { address: terms.token, abi: tokenAbi, functionName: "approve", args: [info.escrow, cost] },
            txProgress(active, "the approval"),
          );
          approved = true;
          active.set("done", `The escrow may take ${fmt(cost)}: `, txLink(receipt.transactionHash), ".");
        } else {
          active.set("skipped", `The escrow may already take exactly ${fmt(cost)}.`);
        }
      }

      active = current.open;
      const progress = txProgress(active, `locking ${fmt(cost)}`);
      const receipt = await send(wallet, account, open, (phase, hash) => {
        if (hash) openTx = hash;
        progress(phase, hash);
      });
      const [opened] = parseEventLogs({ abi: escrowAbi, eventName: "JobOpened", logs: receipt.logs }).filter((log) =>
        sameAddress(log.address, info.escrow),
      );
      if (!opened) throw new Error(`openJob succeeded in ${receipt.transactionHash} but emitted no JobOpened event`);
      funded = { jobId: opened.args.jobId, tx: receipt.transactionHash, spec, signature };
      active.set("done", `Locked ${fmt(cost)} for job ${funded.jobId}: `, txLink(receipt.transactionHash), ".");
    } catch (err) {
      paying = false;
      active.set("failed");
      const why = err instanceof Refusal ? err.message : describeError(err);
      if (openTx && !(err instanceof RevertedOnChain)) {
        // Sent, and then something else failed: the payment may well be locked.
        replace(
          payError,
          `The job's payment was sent in `,
          txLink(openTx),
          `, but then: ${why} Look at that transaction before trying again: if it succeeded, the payment is ` +
            "locked for a job the gateway does not know yet, and “lumen job cancel” with the job's number takes it back.",
        );
      } else {
        const kept = approved
          ? ` Nothing was locked. The escrow may still take ${fmt(cost)} from your account (the approval you gave); ` +
            `your next job in ${terms.info.symbol} sets its own amount.`
          : " Nothing was locked: your funds stay in your wallet.";
        replace(payError, `Job not opened. ${why}${kept}`);
      }
      payError.hidden = false;
      lockForm(false);
      return;
    }
    paying = false;
    await register();
  }

  async function register(): Promise<void> {
    const job = funded;
    const current = plan;
    if (!job || !current) return;
    retryButton.hidden = true;
    payError.hidden = true;
    retryButton.disabled = true;
    current.register.set("active", "Sending the signed spec to the gateway…");
    try {
      await api.registerJob(registerJobBody(job.jobId, job.spec, job.signature));
    } catch (err) {
      current.register.set("failed");
      replace(
        payError,
        `Job ${job.jobId} is funded on-chain (`,
        txLink(job.tx),
        `) but the gateway did not register it. ${describeError(err)} Try again; if it keeps failing, ` +
          `cancel the job to get your money back: “lumen job cancel ${job.jobId}” ` +
          "(what is not paid becomes refundable after the escrow's cancel grace period).",
      );
      payError.hidden = false;
      retryButton.hidden = false;
      retryButton.disabled = false;
      renderGate();
      return;
    }
    current.register.set("done", "Registered.");
    update({ notice: { kind: "info", text: `Job ${job.jobId} is paid for and registered: the nodes are rendering it.` } });
    location.hash = href(`/jobs/${job.jobId}`);
  }

  // ------------------------------------------------------------ tokens

  /** Reads the symbol and decimals of the market's tokens through the wallet, once. */
  async function loadTokens(): Promise<void> {
    const { wallet } = state;
    if (!market || !wallet || !onRightChain()) return;
    const missing = market.tokens.filter((t) => t.token !== NATIVE && !tokenInfos.has(t.token.toLowerCase()));
    if (missing.length === 0) return;
    await Promise.all(
      missing.map(async ({ token }) => {
        try {
          const [symbol, decimals] = await Promise.all([
            read<string>(wallet, { address: token, abi: tokenAbi, functionName: "symbol" }),
            read<number>(wallet, { address: token, abi: tokenAbi, functionName: "decimals" }),
          ]);
          // A hostile token names itself: printable ASCII only, 16 at most (as the gateway and CLI show it).
          const plain = symbol.replace(/[^\x21-\x7e]/g, "").slice(0, 16);
          tokenInfos.set(token.toLowerCase(), { symbol: plain, decimals: Number(decimals) });
        } catch {
          // Not readable now (another network, a node hiccup): shown by address, tried again on the next reload.
        }
      }),
    );
    renderTokenOptions();
    if (blend && !paying && !funded) {
      prefillPrice();
      lastTerms = checkTerms();
      renderSteps();
      scheduleQuote(0);
    }
  }

  // ------------------------------------------------------------ the page

  return {
    title: "New job",
    // A new block may change the wallet's balance.
    reloadOn: ["chain"],
    mount(main) {
      dropzone.addEventListener("dragover", (event) => {
        event.preventDefault();
        if (event.dataTransfer) event.dataTransfer.dropEffect = fileInput.disabled ? "none" : "copy";
        dropzone.classList.add("dragging");
      });
      dropzone.addEventListener("dragleave", () => dropzone.classList.remove("dragging"));
      dropzone.addEventListener("drop", onDrop);
      fileInput.addEventListener("change", () => {
        const file = fileInput.files?.[0];
        fileInput.value = "";
        if (file) void takeFile(file);
      });
      // A select fires `input` too when its choice changes.
      for (const control of controls) control.addEventListener("input", onTermsInput);
      replace(
        main,
        h("h1", { tabindex: -1 }, "New job"),
        h(
          "p",
          { class: "lede" },
          "Upload a Blender scene, choose the frames and the price, and lock the payment in the escrow. " +
            "Nodes render the frames and a verifier checks them: you pay only for verified frames, and the rest comes back to you.",
        ),
        gate,
        h(
          "section",
          { "aria-labelledby": "file-title" },
          h("h2", { id: "file-title" }, "1. Scene file"),
          dropzone,
          transferBox,
          uploadError,
        ),
        sceneSection,
        termsBox,
      );
      renderGate();
      unsubscribe = subscribe((s, previous) => {
        if (
          s.session !== previous.session ||
          s.wallet !== previous.wallet ||
          s.account !== previous.account ||
          s.chainId !== previous.chainId ||
          s.info !== previous.info
        ) {
          if (blend && !paying && !funded && s.session && !sameAddress(s.session.address, blendOwner)) forgetScene();
          renderGate();
          void loadTokens();
          if (blend) scheduleQuote(0);
        }
      });
    },
    unmount() {
      unsubscribe?.();
      transfer?.abort();
      window.clearTimeout(quoteTimer);
    },
    async refresh() {
      if (!market || !typed || !links) {
        [market, typed, links] = await Promise.all([api.market(), api.jobSpecTypes(), api.explorerLinks()]);
      }
      renderGate();
      await loadTokens();
      // The balance may have changed.
      if (blend && !paying && !funded) scheduleQuote(0);
    },
  };
};
