// `#/operator`: the connected wallet's nodes and credit; `#/operator/<owner>`:
// any owner's, read-only unless the connected wallet is that owner. The
// gateway's `GET /api/v1/operators/{owner}` gives the nodes (health, last
// heartbeat and reputation as it sees them; stake from the registry), and
// per token what was earned and withdrawn (its chain mirror) and what
// `withdraw(token)` pays now (`escrow.credits`, read at one block). The
// Withdraw button sends `withdraw(token)` from the wallet: simulated first,
// so a call the escrow would refuse is stopped with its reason, then
// signed, mined, and the page shows the new credit at once (from the
// chain) and the withdrawal in "withdrawn" once the mirror has it.

import { parseEventLogs } from "viem";
import { escrowAbi } from "../abi";
import { api } from "../api";
import { RevertedOnChain, send } from "../chain";
import { h, replace, table, type Child } from "../dom";
import { describeError } from "../errors";
import { chainName, checksummed, ether, sameAddress, short, units } from "../format";
import { addressLink, addressUrl, loadLinks, txLink } from "../links";
import { href } from "../router";
import { onRightChain, state, subscribe, type AppState } from "../state";
import { learn, tokenAmount } from "../tokens";
import type { Hex, OperatorNode, OperatorToken, OperatorView } from "../types";
import { keepingFocus, renderIfChanged, type Page } from "./view";

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const NATIVE = "0x0000000000000000000000000000000000000000";

/** `tokens`' amounts, or "0". */
function sums(list: { token: Hex; amount: string }[]): string {
  const nonZero = list.filter((t) => t.amount !== "0");
  return nonZero.length === 0 ? "0" : nonZero.map((t) => tokenAmount(t.amount, t.token)).join(" + ");
}

function tokenName(t: OperatorToken): string {
  return t.symbol ?? short(t.token);
}

function heartbeat(secs: number | null): string {
  if (secs === null) return "never";
  return secs < 90 ? `${Math.round(secs)} s ago` : `${Math.round(secs / 60)} min ago`;
}

function reputation(n: OperatorNode): string {
  return n.trust.banned ? "banned" : `${Math.round(n.trust.reputation * 100)} %`;
}

function stake(n: OperatorNode): string {
  const unbonding = BigInt(n.unbonding) > 0n ? ` (+ ${ether(n.unbonding)} unbonding)` : "";
  return ether(n.stake) + unbonding;
}

function nodeRow(n: OperatorNode): HTMLTableRowElement {
  return h(
    "tr",
    { "data-node": n.node.toLowerCase() },
    h("td", null, addressLink(n.node)),
    h(
      "td",
      { title: n.connected ? "connected to this gateway" : "not connected to this gateway" },
      h("span", { class: `state node-${n.state.toLowerCase()}` }, n.state),
    ),
    h("td", { "data-col": "heartbeat" }, heartbeat(n.last_heartbeat_secs)),
    h("td", { class: "num", "data-col": "reputation" }, reputation(n)),
    h("td", { class: "num", "data-col": "frames" }, n.jobs_completed),
    h("td", { class: "num", "data-col": "credits" }, n.credits),
    h("td", { class: "num", "data-col": "earned" }, sums(n.earned)),
    h("td", { class: "num", "data-col": "stake" }, stake(n)),
    h("td", null, n.registered ? "yes" : "no"),
  );
}

/** The month's statement, as the gateway serves it (CSV). */
function statementLink(owner: Hex): HTMLElement {
  const month = new Date().toISOString().slice(0, 7);
  return h(
    "a",
    { href: `/api/v1/earnings/${owner.toLowerCase()}/statements/${month}?format=csv`, download: "" },
    `Statement for ${month} (CSV)`,
  );
}

/** Looking up another owner's page by address. */
function lookupForm(): HTMLElement {
  const input = h("input", {
    id: "owner-lookup",
    name: "owner",
    type: "text",
    inputmode: "text",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "0x…",
    pattern: "0x[0-9a-fA-F]{40}",
    required: true,
  });
  input.addEventListener("input", () => input.setCustomValidity(""));
  return h(
    "form",
    {
      class: "lookup",
      onsubmit: (event: Event) => {
        event.preventDefault();
        const value = input.value.trim();
        if (!ADDRESS.test(value)) {
          input.setCustomValidity("An owner address is 0x and 40 hexadecimal digits.");
          input.reportValidity();
          return;
        }
        location.hash = href(`/operator/${value.toLowerCase()}`);
      },
    },
    h("label", { for: "owner-lookup" }, "Owner address"),
    input,
    h("button", { type: "submit" }, "Show nodes"),
  );
}

export const operatorPage: Page = (params) => {
  /** The owner the route names; `null`: the connected wallet's account. */
  const named = params.owner ?? null;
  let head: HTMLElement;
  let balances: HTMLElement;
  let status: HTMLElement;
  let alert: HTMLElement;
  let nodes: HTMLElement;
  let view: OperatorView | null = null;
  /** The token being withdrawn, while a withdrawal runs. */
  let withdrawing: Hex | null = null;
  let unsubscribe: (() => void) | null = null;

  const owner = (): string | null => named ?? state.account;
  /** Whether the connected wallet is the owner shown (only it can withdraw its credit). */
  const mine = (s: AppState = state): boolean =>
    view !== null && s.wallet !== null && sameAddress(s.account, view.owner);

  const say = (...text: Child[]): void => replace(status, ...text);
  const warn = (text: string): void => {
    alert.textContent = text;
    alert.hidden = text === "";
  };

  /** The owner line, or the lookup form; rebuilt only when the owner or access changes (not while someone types). */
  function renderHead(): void {
    const who = owner();
    const yours = mine();
    renderIfChanged(head, { who, yours }, () => {
      if (who === null) {
        replace(
          head,
          h("p", null, "Connect your wallet (top right) to see the nodes it owns and withdraw their earnings, or look up an owner:"),
          lookupForm(),
        );
      } else if (!ADDRESS.test(who)) {
        replace(head, h("p", { class: "state-failed" }, "That is not an address."), lookupForm());
      } else {
        replace(
          head,
          h(
            "p",
            { class: "full-hex" },
            "Owner ",
            h("a", { href: addressUrl(who), title: "Its on-chain history" }, h("code", null, checksummed(who))),
          ),
          h(
            "p",
            { class: "hint", "data-testid": "access" },
            yours
              ? "This is your connected wallet: you can withdraw its credit."
              : "Read-only: only this owner's wallet can withdraw its credit.",
          ),
          h("p", null, statementLink(who as Hex)),
        );
      }
    });
  }

  function renderBalances(): void {
    if (!view) return;
    const yours = mine();
    const right = onRightChain();
    const key = { tokens: view.tokens, yours, right, withdrawing };
    renderIfChanged(balances, key, () =>
      keepingFocus(balances, () => {
        const tokens = view?.tokens ?? [];
        const rows = tokens.map((t) =>
          h(
            "tr",
            { "data-token": t.token.toLowerCase() },
            h("td", null, t.token === NATIVE ? tokenName(t) : [tokenName(t), " ", addressLink(t.token)]),
            h("td", { class: "num", "data-col": "withdrawable" }, units(t.withdrawable, t.decimals, tokenName(t))),
            h("td", { class: "num", "data-col": "earned" }, units(t.earned, t.decimals, tokenName(t))),
            h("td", { class: "num", "data-col": "withdrawn" }, units(t.withdrawn, t.decimals, tokenName(t))),
          ),
        );
        // The buttons sit under the table, not in it: on a phone they stay in view.
        const buttons = yours
          ? tokens
              .filter((t) => BigInt(t.withdrawable) > 0n)
              .map((t) =>
                h(
                  "button",
                  {
                    type: "button",
                    class: "primary",
                    "data-focus": `withdraw:${t.token}`,
                    disabled: withdrawing !== null || !right,
                    onclick: () => void withdraw(t),
                  },
                  `Withdraw ${units(t.withdrawable, t.decimals, tokenName(t))}`,
                ),
              )
          : [];
        const wrap = table("Earnings and credit", ["Token", "Withdrawable now", "Earned", "Withdrawn"], rows, "No token.");
        wrap.dataset.focus = "table:balances";
        replace(
          balances,
          yours && !right && state.info
            ? h("p", { class: "hint" }, `Switch your wallet to ${chainName(state.info.chain_id)} to withdraw.`)
            : null,
          wrap,
          buttons.length > 0 ? h("div", { class: "actions" }, buttons) : null,
        );
      }),
    );
  }

  function renderNodes(): void {
    if (!view) return;
    const v = view;
    renderIfChanged(nodes, v.nodes, () =>
      keepingFocus(nodes, () => {
        const wrap = table(
          "Nodes",
          ["Node", "State", "Last heartbeat", "Reputation", "Frames rendered", "Credits", "Earned", "Stake", "Registered"],
          v.nodes.map(nodeRow),
          "No node is bound to this owner.",
        );
        wrap.dataset.focus = "table:nodes";
        replace(
          nodes,
          h(
            "dl",
            { class: "stats" },
            h("div", { class: "stat" }, h("dt", null, "nodes"), h("dd", null, v.nodes.length)),
            h("div", { class: "stat" }, h("dt", null, "frames rendered"), h("dd", null, v.jobs_completed)),
            h("div", { class: "stat" }, h("dt", null, "credits"), h("dd", null, v.credits)),
          ),
          wrap,
          h(
            "p",
            { class: "hint" },
            "Frames rendered and credits count renders paid on-chain (frames and verification renders, 10 credits each); " +
              "state, heartbeat and reputation are this gateway's view; stake is the registry's.",
          ),
          v.more_nodes ? h("p", { class: "hint" }, `Only the first ${v.nodes.length} nodes by address are listed.`) : null,
        );
      }),
    );
  }

  async function load(): Promise<void> {
    const who = owner();
    if (who === null || !ADDRESS.test(who)) {
      view = null;
      renderHead();
      renderIfChanged(balances, null, () => replace(balances));
      renderIfChanged(nodes, null, () => replace(nodes));
      return;
    }
    await loadLinks();
    const next = await api.operator(who);
    if (owner() !== who) return; // the wallet changed account meanwhile
    learn(next.tokens);
    view = next;
    renderHead();
    renderBalances();
    renderNodes();
  }

  async function withdraw(t: OperatorToken): Promise<void> {
    const { wallet, account, info } = state;
    if (!wallet || !account || !info || !view || !sameAddress(account, view.owner) || withdrawing) return;
    const name = tokenName(t);
    withdrawing = t.token;
    warn("");
    renderBalances();
    let sent: Hex | null = null;
    try {
      const receipt = await send(
        wallet,
        account,
        { address: info.escrow, abi: escrowAbi, functionName: "withdraw", args: [t.token] },
        (step, hash) => {
          if (step === "simulating") say("Checking the withdrawal with the escrow…");
          else if (step === "signing") say(`Waiting for your signature in ${wallet.name}…`);
          else if (hash) {
            sent = hash;
            say("Withdrawal sent, waiting for it to be mined: ", txLink(hash));
          }
        },
      );
      const [event] = parseEventLogs({ abi: escrowAbi, logs: receipt.logs, eventName: "CreditsWithdrawn" });
      const amount = event ? event.args.amount.toString() : t.withdrawable;
      say(
        h("span", { "data-testid": "withdrawn" }, `Withdrew ${units(amount, t.decimals, name)} in block ${receipt.blockNumber}: `),
        txLink(receipt.transactionHash),
      );
      // The buttons stay disabled until the new credit is shown.
      await load().catch((err: unknown) => warn(describeError(err)));
    } catch (err) {
      if (sent !== null && !(err instanceof RevertedOnChain)) {
        // Sent, but its receipt never came: it may still be mined.
        say("Withdrawal sent: ", txLink(sent));
        warn(`Not confirmed yet. ${describeError(err)} Follow its transaction to see whether it was mined.`);
      } else {
        say("");
        warn(`Not withdrawn. ${describeError(err)}`);
      }
    } finally {
      withdrawing = null;
      renderBalances();
    }
    // The button is gone or enabled again: keep the keyboard near it.
    if (document.activeElement === document.body || !document.activeElement) status.focus();
  }

  return {
    title: named ? `Operator ${short(named)}` : "My nodes",
    reloadOn: ["nodes", "heartbeats", "chain"],
    mount(main) {
      head = h("div");
      balances = h("div", null, h("p", { class: "hint" }, "Loading…"));
      status = h("p", { class: "withdraw-status", role: "status", "aria-live": "polite", tabindex: -1, "data-testid": "withdraw-status" });
      alert = h("p", { class: "notice-alert", role: "alert", hidden: true, "data-testid": "withdraw-error" });
      nodes = h("div", null, h("p", { class: "hint" }, "Loading…"));
      replace(
        main,
        h("h1", { tabindex: -1 }, named ? "Operator" : "My nodes"),
        head,
        h("section", { "aria-labelledby": "credit-title" }, h("h2", { id: "credit-title" }, "Earnings and credit"), balances, status, alert),
        h("section", { "aria-labelledby": "nodes-title" }, h("h2", { id: "nodes-title" }, "Nodes"), nodes),
      );
      renderHead();
      unsubscribe = subscribe((s, previous) => {
        const walletChanged = s.wallet !== previous.wallet || s.account !== previous.account;
        if (!walletChanged && s.chainId === previous.chainId && s.info === previous.info) return;
        if (named === null && s.account !== previous.account) {
          // Another account: another owner's page.
          view = null;
          delete balances.dataset.rendered;
          delete nodes.dataset.rendered;
          renderHead();
          replace(balances, h("p", { class: "hint" }, "Loading…"));
          replace(nodes, h("p", { class: "hint" }, "Loading…"));
          load().catch((err: unknown) => warn(describeError(err)));
          return;
        }
        if (walletChanged) renderHead();
        renderBalances();
      });
    },
    unmount() {
      unsubscribe?.();
    },
    refresh: load,
  };
};
