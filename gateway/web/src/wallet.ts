// One connected wallet, through viem's EIP-1193 client: accounts, chain,
// switching network, signing. viem turns provider errors into typed errors
// that keep the EIP-1193 code (see `errors.ts`). The actions are imported
// one by one (not `createWalletClient`, which brings every wallet action)
// so the bundle holds only what the page uses.

import {
  createClient,
  custom,
  defineChain,
  type Chain,
  type Client,
  type EIP1193Provider,
  type TypedDataDefinition,
} from "viem";
import {
  addChain,
  getAddresses,
  getChainId,
  requestAddresses,
  signMessage,
  signTypedData,
  switchChain,
} from "viem/actions";
import { WalletCode, walletCode } from "./errors";
import type { Hex, Info } from "./types";
import type { WalletOption } from "./wallets";

/** What a wallet tells us without being asked. */
export interface WalletEvents {
  accountsChanged(accounts: Hex[]): void;
  chainChanged(chainId: number): void;
  disconnect(): void;
}

/** The chain the gateway settles on, as a wallet needs it to add it. */
export function settlementChain(info: Info): Chain {
  return defineChain({
    id: info.chain_id,
    name: info.chain_id === 31337 ? "Lumen devnet" : `Lumen settlement chain ${info.chain_id}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: info.rpc_url ? [info.rpc_url] : [] } },
  });
}

export class Wallet {
  readonly client: Client;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(readonly option: WalletOption) {
    // No retries: a retried wallet request is a second prompt.
    this.client = createClient({
      transport: custom(option.provider as EIP1193Provider, { retryCount: 0 }),
    });
  }

  get name(): string {
    return this.option.info.name;
  }

  /** Asks for the accounts (`eth_requestAccounts`); the first one is used. */
  async connect(): Promise<Hex> {
    const [account] = await requestAddresses(this.client);
    if (!account) throw new Error("The wallet did not share an account.");
    return account;
  }

  /** The account the wallet already lets this page see (`eth_accounts`, no prompt), if any. */
  async account(): Promise<Hex | null> {
    const [account] = await getAddresses(this.client);
    return account ?? null;
  }

  chainId(): Promise<number> {
    return getChainId(this.client);
  }

  /**
   * Moves the wallet to `chain` (`wallet_switchEthereumChain`); a wallet
   * that does not know it (4902) is asked to add it first
   * (`wallet_addEthereumChain`).
   */
  async switchTo(chain: Chain): Promise<void> {
    try {
      await switchChain(this.client, { id: chain.id });
    } catch (err) {
      if (walletCode(err) !== WalletCode.unrecognizedChain || chain.rpcUrls.default.http.length === 0) throw err;
      await addChain(this.client, { chain });
      // Most wallets switch to a chain they just added; some do not.
      if ((await this.chainId()) !== chain.id) await switchChain(this.client, { id: chain.id });
    }
  }

  /** An EIP-191 signature of `message` (`personal_sign`). */
  signMessage(account: Hex, message: string): Promise<Hex> {
    return signMessage(this.client, { account, message });
  }

  /**
   * An EIP-712 signature of `data` (`eth_signTypedData_v4`): the wallet
   * shows the struct's fields by name, not an opaque hash.
   */
  signTypedData(account: Hex, data: TypedDataDefinition): Promise<Hex> {
    return signTypedData(this.client, { account, ...data } as never);
  }

  /** Follows the wallet's events until `close`. */
  listen(events: WalletEvents): void {
    const provider = this.option.provider;
    if (!provider.on) return;
    const on = (name: string, listener: (...args: never[]) => void): void => {
      provider.on?.(name, listener);
      this.unsubscribe.push(() => provider.removeListener?.(name, listener));
    };
    on("accountsChanged", (accounts: Hex[]) => events.accountsChanged(Array.isArray(accounts) ? accounts : []));
    on("chainChanged", (chainId: string) => events.chainChanged(Number(chainId)));
    on("disconnect", () => events.disconnect());
  }

  close(): void {
    for (const stop of this.unsubscribe.splice(0)) stop();
  }
}
