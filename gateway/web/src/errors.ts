// Errors in plain words. Wallet errors carry the EIP-1193 / EIP-1474 codes
// (viem wraps them and keeps the code, with the provider's error as its
// `cause`); gateway errors carry the API's stable `code`.

/** An error answer of the gateway's API. */
export class ApiError extends Error {
  constructor(
    readonly path: string,
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** EIP-1193 provider error codes, and the JSON-RPC ones wallets use. */
export const WalletCode = {
  userRejected: 4001,
  unauthorized: 4100,
  unsupportedMethod: 4200,
  disconnected: 4900,
  chainDisconnected: 4901,
  unrecognizedChain: 4902,
  requestPending: -32002,
} as const;

/** The first EIP-1193 error code found along the error's `cause` chain. */
export function walletCode(err: unknown): number | undefined {
  const seen = new Set<unknown>();
  let current: unknown = err;
  while (current !== null && typeof current === "object" && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === "number") return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function messageOf(err: unknown): string {
  if (err !== null && typeof err === "object") {
    const { shortMessage, message } = err as { shortMessage?: unknown; message?: unknown };
    if (typeof shortMessage === "string" && shortMessage) return shortMessage;
    if (typeof message === "string" && message) return message;
  }
  return String(err);
}

function sentence(text: string): string {
  const trimmed = text.trim().replace(/\s+/g, " ");
  if (!trimmed) return "Something went wrong.";
  const first = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : first + ".";
}

/** Why `err` happened, as a sentence a person can act on. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    switch (err.code) {
      case "rate_limited":
        return "The gateway is busy with this browser's requests: wait a moment and try again.";
      case "unauthorized":
        return "You are not signed in (or your session ended): sign in with your wallet.";
      case "nonce_expired":
      case "nonce_used":
      case "bad_time":
        return "The sign-in request was too old by the time it was signed: try again.";
      default:
        return sentence(`The gateway refused: ${err.message}`);
    }
  }
  switch (walletCode(err)) {
    case WalletCode.userRejected:
      return "You rejected the request in your wallet.";
    case WalletCode.unauthorized:
      return "Your wallet has not allowed this page to use that account: connect again.";
    case WalletCode.unsupportedMethod:
      return "Your wallet does not support this request.";
    case WalletCode.disconnected:
      return "Your wallet is not connected to any network.";
    case WalletCode.chainDisconnected:
      return "Your wallet is not connected to the network this needs.";
    case WalletCode.unrecognizedChain:
      return "Your wallet does not know this network.";
    case WalletCode.requestPending:
      return "Your wallet already has a request waiting: open your wallet to answer it.";
    default:
      break;
  }
  const message = messageOf(err);
  if (/insufficient funds/i.test(message)) {
    return "The account does not have enough funds to pay for this, gas included.";
  }
  if (err instanceof TypeError && /fetch|network/i.test(message)) {
    return "The gateway cannot be reached: check that it is running, then try again.";
  }
  return sentence(message);
}
