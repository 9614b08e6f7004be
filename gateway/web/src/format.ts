// Small formatting helpers shared by the views.

import { formatUnits, getAddress } from "viem";
import type { Hex } from "./types";

/** An address in its EIP-55 checksummed form (the gateway's JSON is lower case); other hex unchanged. */
export function checksummed(hex: string): string {
  return /^0x[0-9a-fA-F]{40}$/.test(hex) ? getAddress(hex) : hex;
}

/** `0x1234…abcd`: enough to tell addresses and hashes apart at a glance (addresses checksummed). */
export function short(hex: string | null | undefined): string {
  if (!hex) return "";
  const text = checksummed(hex);
  return text.length > 12 ? `${text.slice(0, 6)}…${text.slice(-4)}` : text;
}

/** A chain's name for the chains people are likely to meet, else its id. */
export function chainName(id: number): string {
  const known: Record<number, string> = {
    1: "Ethereum",
    10: "OP Mainnet",
    137: "Polygon",
    2020: "Ronin",
    8453: "Base",
    42161: "Arbitrum One",
    11155111: "Sepolia",
    31337: "the local devnet",
  };
  const name = known[id];
  return name ? `${name} (chain ${id})` : `chain ${id}`;
}

/** A wei amount of the native coin, in ETH, without trailing zeros. */
export function ether(wei: string | null | undefined): string {
  if (wei === null || wei === undefined || wei === "") return "";
  try {
    return `${formatUnits(BigInt(wei), 18)} ETH`;
  } catch {
    return `${wei} wei`;
  }
}

export function sameAddress(a: Hex | null | undefined, b: Hex | null | undefined): boolean {
  return !!a && !!b && a.toLowerCase() === b.toLowerCase();
}

/** A unix time in seconds as `2026-01-31 14:05:09 UTC`. */
export function utc(secs: number | null | undefined): string {
  if (secs === null || secs === undefined) return "";
  return new Date(secs * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

/** An amount in a token's smallest unit, in whole tokens (`1.5 LTD`); raw units when its decimals are unknown. */
export function units(amount: string, decimals: number | null, symbol: string): string {
  try {
    return decimals === null ? `${BigInt(amount)} units of ${symbol}` : `${formatUnits(BigInt(amount), decimals)} ${symbol}`;
  } catch {
    return `${amount} units of ${symbol}`;
  }
}
