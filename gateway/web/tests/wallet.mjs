// The test wallet: an EIP-1193 provider injected into the page before any
// of its scripts run (`installTestWallet` is serialized into the page by
// Playwright's `addInitScript`). It announces itself through EIP-6963 and
// forwards every request it does not answer itself to the devnet's Anvil,
// through a function the test exposes to the page (`rpcBridge`): Anvil
// signs with its unlocked dev accounts, so signatures and transactions are
// real. Switches on `window.__lumenTestWallet` make the next signature or
// transaction request be rejected by "the user" (4001), or report another
// chain than Anvil's.

/**
 * Runs in the page. `config`: `account` (the connected address), `chainId`
 * (Anvil's), `reportChainId` (the chain the wallet claims to be on at
 * first; default Anvil's), `knowsChain` (whether switching to Anvil's chain
 * works without adding it first; default true), `wallets` (the
 * `{ uuid, name, rdns }` to announce, each its own provider over one
 * shared state), `legacy` (also set `window.ethereum`).
 */
export function installTestWallet(config) {
  const hex = (n) => "0x" + n.toString(16);
  // Like a real wallet, it remembers that this site may see the account
  // (here in the site's storage, so a reload keeps it).
  const PERMISSION = "lumen-test-wallet:connected";
  const permitted = () => {
    try {
      return localStorage.getItem(PERMISSION) === "1";
    } catch {
      return false;
    }
  };
  const state = {
    chainId: config.reportChainId ?? config.chainId,
    known: new Set([config.reportChainId ?? config.chainId]),
    connected: permitted(),
    rejectNext: false,
    /** Every request: `{ wallet, method, params }`. */
    requests: [],
  };
  if (config.knowsChain !== false) state.known.add(config.chainId);
  const listeners = new Map();
  const emit = (event, value) => {
    for (const listener of [...(listeners.get(event) ?? [])]) listener(value);
  };
  const fail = (code, message) => Object.assign(new Error(message), { code });
  // What a person approves or rejects in a real wallet.
  const PROMPTS = new Set(["personal_sign", "eth_sign", "eth_signTypedData_v4", "eth_sendTransaction"]);

  const makeProvider = (wallet) => {
    const provider = {
      async request({ method, params = [] }) {
        state.requests.push({ wallet, method, params });
        switch (method) {
          case "eth_requestAccounts":
            state.connected = true;
            try {
              localStorage.setItem(PERMISSION, "1");
            } catch {
              // No storage: the permission lasts until the page unloads.
            }
            emit("connect", { chainId: hex(state.chainId) });
            return [config.account];
          case "eth_accounts":
            return state.connected ? [config.account] : [];
          case "eth_chainId":
            return hex(state.chainId);
          case "net_version":
            return String(state.chainId);
          case "wallet_switchEthereumChain": {
            const id = Number.parseInt(params[0]?.chainId, 16);
            if (!state.known.has(id)) throw fail(4902, `Unrecognized chain ID ${hex(id)}. Try adding the chain first.`);
            if (id !== state.chainId) {
              state.chainId = id;
              emit("chainChanged", hex(id));
            }
            return null;
          }
          case "wallet_addEthereumChain": {
            const id = Number.parseInt(params[0]?.chainId, 16);
            if (!params[0]?.rpcUrls?.length) throw fail(-32602, "rpcUrls is required");
            state.known.add(id);
            // Wallets offer to switch to a chain they just added.
            if (id !== state.chainId) {
              state.chainId = id;
              emit("chainChanged", hex(id));
            }
            return null;
          }
          default:
            break;
        }
        if (PROMPTS.has(method)) {
          if (!state.connected) throw fail(4100, "The requested account has not been authorized by the user.");
          if (state.rejectNext) {
            state.rejectNext = false;
            throw fail(4001, "User rejected the request.");
          }
        }
        const answer = await window.__lumenWalletRpc(method, params);
        if (answer.error) throw Object.assign(fail(answer.error.code, answer.error.message), { data: answer.error.data });
        return answer.result;
      },
      on(event, listener) {
        if (!listeners.has(event)) listeners.set(event, new Set());
        listeners.get(event).add(listener);
        return provider;
      },
      removeListener(event, listener) {
        listeners.get(event)?.delete(listener);
        return provider;
      },
    };
    return provider;
  };

  const icon =
    "data:image/svg+xml," +
    encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><circle cx="12" cy="12" r="10" fill="#1d4ed8"/></svg>');
  const announced = config.wallets.map((w) =>
    Object.freeze({ info: Object.freeze({ icon, ...w }), provider: makeProvider(w.name) }),
  );
  const announce = () => {
    for (const detail of announced) window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail }));
  };
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
  if (config.legacy && announced[0]) window.ethereum = announced[0].provider;

  window.__lumenTestWallet = {
    /** The next signature or transaction request is rejected (4001). */
    rejectNext() {
      state.rejectNext = true;
    },
    /** The requests so far, as `wallet method` strings. */
    requests() {
      return state.requests.map((r) => `${r.wallet} ${r.method}`);
    },
    params(method) {
      return state.requests.filter((r) => r.method === method).map((r) => r.params);
    },
    chainId() {
      return state.chainId;
    },
  };
}

/**
 * The Node side: forwards a JSON-RPC call to `rpcUrl` and hands back
 * `{ result }` or `{ error }` (an exception would lose its code on the way
 * into the page).
 */
export function rpcBridge(rpcUrl) {
  let id = 0;
  return async (method, params) => {
    const response = await fetch(rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }),
    });
    const body = await response.json();
    if (body.error) return { error: { code: body.error.code, message: body.error.message, data: body.error.data } };
    return { result: body.result };
  };
}
