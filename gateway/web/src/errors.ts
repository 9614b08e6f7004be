import { BaseError, ContractFunctionRevertedError } from "viem";
import { RevertedOnChain } from "./chain";

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
  const revert = contractRevert(err);
  if (revert) return revert;
  if (err instanceof RevertedOnChain) {
    return `The transaction ${err.receipt.transactionHash} reverted on-chain in block ${err.receipt.blockNumber}: nothing changed.`;
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

/** What a contract's custom errors mean to the person who sent the call. */
const REVERTS: Record<string, string> = {
  Escrow_Paused: "The escrow is paused by its owner: no job can be opened now",
  Escrow_ZeroPrice: "The price per frame must be above zero",
  Escrow_InvalidFrameCount: "The job has no frames, or too many",
  Escrow_InvalidVerifications: "More verification renders than frames were asked for",
  Escrow_DeadlineInPast: "The deadline has already passed",
  Escrow_DeadlineTooFar: "The deadline is too far in the future",
  Escrow_WrongValue: "The amount sent is not what the job locks",
  Escrow_ZeroSpecHash: "The job has no spec hash",
  Escrow_AmountOverflow: "The amount to lock is too large for the escrow",
  Escrow_TransferAmountMismatch: "The token took a fee on the transfer, which the escrow does not accept",
  Escrow_NotArtist: "Only the job's artist can do this",
  Escrow_JobNotOpen: "The job is no longer open",
  Escrow_NotRefundable: "The job cannot be refunded yet (its deadline has not passed) or was already",
  Escrow_NothingToWithdraw: "There is nothing to withdraw in this token: the credit was already withdrawn, or none was earned",
  Escrow_TermsMismatch: "The job's terms do not match what the escrow holds",
  ERC20InsufficientBalance: "The account does not hold enough of the token",
  ERC20InsufficientAllowance: "The escrow is not allowed to take that much of the token",
  Registry_NotNodeOwner: "Only the node's owner can do this",
  Registry_NothingToWithdraw: "There is no unbonded stake to withdraw",
  Registry_UnbondingLocked: "The stake is still unbonding",
};

/** `Name(arg, …)` of a decoded custom error, arguments as the ABI types print them. */
function signature(name: string, args: readonly unknown[] | undefined): string {
  return `${name}(${(args ?? []).map((a) => String(a)).join(", ")})`;
}

/**
 * The decoded revert of a failed simulation or call, in words, naming the
 * contract's custom error; `null` when `err` is not a revert.
 */
export function contractRevert(err: unknown): string | null {
  if (!(err instanceof BaseError)) return null;
  const revert = err.walk((e) => e instanceof ContractFunctionRevertedError);
  if (!(revert instanceof ContractFunctionRevertedError)) return null;
  const name = revert.data?.errorName;
  if (name && name !== "Error" && name !== "Panic") {
    const meaning = REVERTS[name];
    const decoded = signature(name, revert.data?.args);
    return meaning ? `${meaning} (the contract reverted with ${decoded}).` : `The contract reverted with ${decoded}.`;
  }
  if (revert.reason) return sentence(`The contract reverted: ${revert.reason}`);
  if (revert.signature) return `The contract reverted with an error this page does not know (${revert.signature}).`;
  return "The contract reverted without saying why.";
}
