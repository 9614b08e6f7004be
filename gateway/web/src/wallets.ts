// Finding the browser's wallets: EIP-6963 (each wallet announces itself
// with a name and icon, so several can live side by side), falling back to
// the single `window.ethereum` of older wallets.

/** The EIP-1193 provider interface, as far as this page uses it. */
export interface Eip1193Provider {
  request(args: { method: string; params?: readonly unknown[] | object }): Promise<unknown>;
  on?(event: string, listener: (...args: never[]) => void): unknown;
  removeListener?(event: string, listener: (...args: never[]) => void): unknown;
}

/** EIP-6963 `EIP6963ProviderInfo`. */
export interface WalletInfo {
  uuid: string;
  name: string;
  /** A data URI (RFC 2397) of the wallet's icon. */
  icon: string;
  /** Reverse-DNS id, e.g. `io.metamask`. */
  rdns: string;
}

/** A wallet the person can choose. */
export interface WalletOption {
  info: WalletInfo;
  provider: Eip1193Provider;
}

interface AnnounceEvent extends Event {
  detail?: { info?: Partial<WalletInfo>; provider?: Eip1193Provider };
}

declare global {
  interface Window {
    ethereum?: Eip1193Provider;
  }
}

const LEGACY: WalletInfo = { uuid: "window.ethereum", name: "Browser wallet", icon: "", rdns: "" };

/** Only images as data URIs: an icon must not make the page load anything. */
function safeIcon(icon: unknown): string {
  return typeof icon === "string" && /^data:image\/(svg\+xml|png|webp|jpeg|gif)[;,]/i.test(icon) ? icon : "";
}

/**
 * Listens for wallets and asks them to announce themselves. `onChange` gets
 * the current list (in announcement order) on every change. Returns a
 * function that stops listening.
 */
export function discoverWallets(onChange: (wallets: WalletOption[]) => void): () => void {
  const announced = new Map<string, WalletOption>();
  const list = (): WalletOption[] => {
    const wallets = [...announced.values()];
    // An EIP-6963 wallet usually also sits at window.ethereum: offer the
    // legacy entry only when nobody announced.
    if (wallets.length === 0 && window.ethereum) wallets.push({ info: LEGACY, provider: window.ethereum });
    return wallets;
  };
  const onAnnounce = (event: Event): void => {
    const detail = (event as AnnounceEvent).detail;
    const info = detail?.info;
    const provider = detail?.provider;
    if (!info || !provider || typeof provider.request !== "function" || typeof info.uuid !== "string") return;
    if (announced.has(info.uuid)) return;
    announced.set(info.uuid, {
      info: {
        uuid: info.uuid,
        name: typeof info.name === "string" && info.name.trim() ? info.name.trim() : "Unnamed wallet",
        icon: safeIcon(info.icon),
        rdns: typeof info.rdns === "string" ? info.rdns : "",
      },
      provider,
    });
    onChange(list());
  };
  window.addEventListener("eip6963:announceProvider", onAnnounce);
  window.dispatchEvent(new Event("eip6963:requestProvider"));
  onChange(list());
  return () => window.removeEventListener("eip6963:announceProvider", onAnnounce);
}
