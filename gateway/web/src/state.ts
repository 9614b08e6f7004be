// The page's state in one place; the header and the views re-render from
// it when it changes.

import type { Info, SessionView, Hex } from "./types";
import type { Wallet } from "./wallet";
import type { WalletOption } from "./wallets";

export interface Notice {
  kind: "error" | "info";
  text: string;
}

export interface AppState {
  /** The deployment the gateway settles on; `null` until loaded. */
  info: Info | null;
  /** Whether the last call to the gateway got an answer. */
  gatewayUp: boolean;
  healthyNodes: number | null;
  /** Every wallet the browser offers. */
  wallets: WalletOption[];
  /** The wallet the person connected, if any. */
  wallet: Wallet | null;
  account: Hex | null;
  /** The chain the wallet is on. */
  chainId: number | null;
  /** The gateway session (the cookie), if signed in. */
  session: SessionView | null;
  /** What the page waits for ("Waiting for your signature…"), if anything. */
  busy: string | null;
  notice: Notice | null;
}

type Listener = (state: AppState, previous: AppState) => void;

const listeners = new Set<Listener>();

export let state: AppState = {
  info: null,
  gatewayUp: true,
  healthyNodes: null,
  wallets: [],
  wallet: null,
  account: null,
  chainId: null,
  session: null,
  busy: null,
  notice: null,
};

export function update(patch: Partial<AppState>): void {
  const previous = state;
  state = { ...state, ...patch };
  for (const listener of listeners) listener(state, previous);
}

export function subscribe(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Whether the wallet is on the chain the gateway settles on. */
export function onRightChain(s: AppState = state): boolean {
  return s.info !== null && s.chainId !== null && s.chainId === s.info.chain_id;
}
