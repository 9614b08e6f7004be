// The header: network status, the wallet and session controls, the
// wrong-network banner, and the notices (progress and errors).

import { connect, signIn, signOut, switchNetwork } from "../actions";
import { byId, h, replace } from "../dom";
import { chainName, checksummed, sameAddress, short } from "../format";
import { onRightChain, state, subscribe, update, type AppState } from "../state";
import type { WalletOption } from "../wallets";

const NO_WALLET =
  "No browser wallet found: install a wallet that supports EIP-1193 (for example a browser extension) " +
  "and reload this page. From a terminal, “lumen login” signs in without one.";

function button(label: string, onClick: () => void, attrs: Record<string, string> = {}): HTMLButtonElement {
  return h("button", { type: "button", disabled: state.busy !== null, onclick: onClick, ...attrs }, label);
}

function onConnect(): void {
  const wallets = state.wallets;
  if (wallets.length === 0) update({ notice: { kind: "error", text: NO_WALLET } });
  else if (wallets.length === 1) void connect(wallets[0] as WalletOption);
  else openPicker();
}

/** The wallet chooser: every wallet that announced itself (EIP-6963). */
function openPicker(): void {
  const dialog = byId<HTMLDialogElement>("wallet-picker");
  const choose = (option: WalletOption) => (): void => {
    dialog.close();
    void connect(option);
  };
  replace(
    dialog,
    h("h2", { id: "wallet-picker-title" }, "Choose a wallet"),
    h(
      "ul",
      { class: "wallet-list" },
      state.wallets.map((option) =>
        h(
          "li",
          null,
          h(
            "button",
            { type: "button", class: "wallet-choice", onclick: choose(option) },
            option.info.icon ? h("img", { src: option.info.icon, alt: "", width: 24, height: 24 }) : null,
            h("span", null, option.info.name),
          ),
        ),
      ),
    ),
    h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Cancel"),
  );
  dialog.showModal();
}

function renderNetwork(s: AppState): void {
  const el = byId("network");
  if (!s.gatewayUp) {
    replace(el, h("span", { class: "dot dot-down", "aria-hidden": "true" }), "Gateway unreachable");
    return;
  }
  if (!s.info) {
    replace(el, "Connecting to the gateway…");
    return;
  }
  const nodes =
    s.healthyNodes === null ? "" : ` · ${s.healthyNodes} healthy node${s.healthyNodes === 1 ? "" : "s"}`;
  replace(el, h("span", { class: "dot dot-up", "aria-hidden": "true" }), `Settles on ${chainName(s.info.chain_id)}${nodes}`);
}

function renderWallet(s: AppState): void {
  const el = byId("wallet");
  const signedInHere = s.session !== null && sameAddress(s.session.address, s.account);
  const parts: (HTMLElement | null)[] = [];
  if (s.session && !signedInHere) {
    parts.push(
      h("span", { class: "session", title: checksummed(s.session.address) }, "Signed in as ", h("code", null, short(s.session.address))),
    );
  }
  if (!s.wallet || !s.account) {
    parts.push(button("Connect wallet", onConnect, { class: "primary" }));
  } else {
    parts.push(
      h(
        "span",
        { class: "account", "data-testid": "account", title: s.account },
        h("span", { class: "visually-hidden" }, "Wallet account "),
        h("code", null, short(s.account)),
        h("span", { class: "wallet-name" }, ` · ${s.wallet.name}`),
      ),
    );
    if (signedInHere) parts.push(h("span", { class: "badge", "data-testid": "signed-in" }, "Signed in"));
    else if (onRightChain(s)) parts.push(button("Sign in", () => void signIn(), { class: "primary" }));
  }
  if (s.session) parts.push(button("Sign out", () => void signOut()));
  replace(el, parts);
}

function renderChain(s: AppState): void {
  const el = byId("chain");
  if (!s.wallet || !s.info || s.chainId === null || onRightChain(s)) {
    el.hidden = true;
    replace(el);
    return;
  }
  el.hidden = false;
  replace(
    el,
    h(
      "p",
      null,
      `Wrong network: your wallet is on ${chainName(s.chainId)}, but Lumen settles on ${chainName(s.info.chain_id)}. ` +
        "Switch your wallet to that network to sign in and pay for jobs.",
    ),
    button("Switch network", () => void switchNetwork(), { class: "primary" }),
  );
}

function renderNotice(s: AppState): void {
  const status = byId("status");
  const alert = byId("alert");
  const info = s.busy ?? (s.notice?.kind === "info" ? s.notice.text : "");
  if (status.textContent !== info) status.textContent = info;
  const error = s.notice?.kind === "error" ? s.notice.text : "";
  if (alert.textContent !== error) alert.textContent = error;
  alert.hidden = error === "";
}

/** The label of the header control that last had the keyboard focus. */
let focusedLabel: string | null = null;

function render(s: AppState, previous?: AppState): void {
  const changed = <K extends keyof AppState>(...keys: K[]): boolean =>
    previous === undefined || keys.some((key) => s[key] !== previous[key]);
  if (changed("gatewayUp", "info", "healthyNodes")) renderNetwork(s);
  if (changed("wallet", "account", "chainId", "session", "busy", "info")) {
    const active = document.activeElement;
    if (active instanceof HTMLButtonElement && active.closest("header, #chain")) focusedLabel = active.textContent;
    else if (active !== document.body) focusedLabel = null;
    renderWallet(s);
    renderChain(s);
    restoreFocus();
  }
  if (changed("busy", "notice")) renderNotice(s);
}

/**
 * Re-rendering the header replaces its buttons, which drops the keyboard
 * focus: give it back to the button with the same label, or else to the
 * first header button, so a keyboard user does not land at the page top.
 */
function restoreFocus(): void {
  if (focusedLabel === null || document.activeElement !== document.body) return;
  const buttons = [...document.querySelectorAll<HTMLButtonElement>("#chain button, header button")].filter(
    (b) => !b.disabled,
  );
  if (buttons.length === 0) return; // busy: every button is disabled; try again on the next render
  const target = buttons.find((b) => b.textContent === focusedLabel) ?? buttons[0];
  focusedLabel = null;
  target?.focus();
}

export function mountHeader(): void {
  render(state);
  subscribe(render);
}
