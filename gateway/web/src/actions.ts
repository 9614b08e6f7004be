// What the person can do from the header: connect a wallet, move it to the
// right network, sign in with it (EIP-4361), sign out. Every step reports
// progress and failure in plain words through `state.notice`.

import { api } from "./api";
import { ApiError, describeError } from "./errors";
import { chainName, sameAddress, short } from "./format";
import { siweMessage } from "./siwe";
import { state, update } from "./state";
import { Wallet, settlementChain } from "./wallet";
import type { WalletOption } from "./wallets";

function fail(what: string, err: unknown): void {
  update({ busy: null, notice: { kind: "error", text: `${what}. ${describeError(err)}` } });
}

/** Where the page remembers which wallet was connected, to reconnect on the next visit. */
const REMEMBERED = "lumen.wallet";

/** A wallet's stable name: its reverse-DNS id (EIP-6963 uuids change on every page load). */
function walletKey(option: WalletOption): string {
  return option.info.rdns || option.info.name;
}

/** Whether `option` is the wallet connected on an earlier visit. */
export function wasConnected(option: WalletOption): boolean {
  try {
    return localStorage.getItem(REMEMBERED) === walletKey(option);
  } catch {
    return false; // storage disabled
  }
}

function remember(option: WalletOption | null): void {
  try {
    if (option) localStorage.setItem(REMEMBERED, walletKey(option));
    else localStorage.removeItem(REMEMBERED);
  } catch {
    // Storage disabled: the person connects again next time.
  }
}

/**
 * Connects `option` and reads its chain. `silent`: only if the wallet
 * still lets this page see an account (`eth_accounts`, no prompt), as on a
 * return visit; otherwise it asks (`eth_requestAccounts`).
 */
export async function connect(option: WalletOption, silent = false): Promise<void> {
  state.wallet?.close();
  const wallet = new Wallet(option);
  if (!silent) update({ busy: `Waiting for ${wallet.name} to share an account…`, notice: null });
  try {
    const account = silent ? await wallet.account() : await wallet.connect();
    if (!account) return;
    const chainId = await wallet.chainId();
    wallet.listen({
      accountsChanged: (accounts) => {
        if (state.wallet !== wallet) return;
        const [next] = accounts;
        if (next) update({ account: next });
        else forget("Your wallet disconnected this page.");
      },
      chainChanged: (id) => {
        if (state.wallet === wallet) update({ chainId: id });
      },
      disconnect: () => {
        if (state.wallet === wallet) forget("Your wallet disconnected.");
      },
    });
    remember(option);
    update({
      wallet,
      account,
      chainId,
      busy: null,
      notice: silent ? state.notice : { kind: "info", text: `Connected ${short(account)} with ${wallet.name}.` },
    });
  } catch (err) {
    wallet.close();
    if (!silent) fail("Not connected", err);
  }
}

function forget(text: string): void {
  remember(null);
  state.wallet?.close();
  update({ wallet: null, account: null, chainId: null, notice: { kind: "info", text } });
}

/** Asks the wallet to move to the gateway's chain. */
export async function switchNetwork(): Promise<void> {
  const { wallet, info } = state;
  if (!wallet || !info) return;
  update({ busy: `Asking ${wallet.name} to switch to ${chainName(info.chain_id)}…`, notice: null });
  try {
    await wallet.switchTo(settlementChain(info));
    const chainId = await wallet.chainId();
    update({
      chainId,
      busy: null,
      notice:
        chainId === info.chain_id
          ? { kind: "info", text: `Your wallet is now on ${chainName(chainId)}.` }
          : { kind: "error", text: `Your wallet is still on ${chainName(chainId)}.` },
    });
  } catch (err) {
    fail("Network not switched", err);
  }
}

/**
 * Sign-In with Ethereum: a nonce from the gateway, the EIP-4361 message
 * signed by the wallet (`personal_sign`), the gateway checks it and sets
 * the session cookie.
 */
export async function signIn(): Promise<void> {
  const { wallet, account, info } = state;
  if (!wallet || !account || !info) return;
  update({ busy: `Waiting for your signature in ${wallet.name}…`, notice: null });
  try {
    const challenge = await api.nonce();
    if (challenge.chain_id !== info.chain_id) {
      throw new Error(`the gateway asked to sign in on chain ${challenge.chain_id}, but settles on ${info.chain_id}`);
    }
    const message = siweMessage(challenge, account);
    const signature = await wallet.signMessage(account, message);
    update({ busy: "Checking your signature…" });
    const session = await api.signIn({ message, signature });
    update({
      session: { address: session.address, expires_at_ms: session.expires_at_ms },
      busy: null,
      notice: { kind: "info", text: `Signed in as ${short(session.address)}.` },
    });
  } catch (err) {
    fail("Not signed in", err);
  }
}

/** Ends the session (the gateway forgets it and clears the cookie). */
export async function signOut(): Promise<void> {
  update({ busy: "Signing out…", notice: null });
  try {
    await api.logout();
  } catch (err) {
    // A session that already ended is as good as signed out.
    if (!(err instanceof ApiError && err.status === 401)) {
      fail("Not signed out", err);
      return;
    }
  }
  update({ session: null, busy: null, notice: { kind: "info", text: "Signed out." } });
}

/** Reads the session the cookie carries, if any. */
export async function loadSession(): Promise<void> {
  try {
    const session = await api.session();
    if (!sameAddress(session?.address, state.session?.address)) update({ session });
  } catch (err) {
    fail("Cannot check your session", err);
  }
}
