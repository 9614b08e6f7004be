// Amounts in their token: symbols and decimals of the native coin and the
// accepted tokens (`GET /api/v1/tokens`, loaded once, read by the gateway
// from the token contracts); an unknown token's amounts stay in raw units.

import { api } from "./api";
import { short, units } from "./format";
import type { Hex, TokenInfo, Wei } from "./types";

export const NATIVE: Hex = "0x0000000000000000000000000000000000000000";

const known = new Map<string, TokenInfo>([[NATIVE, { token: NATIVE, symbol: "ETH", decimals: 18 }]]);
let loaded = false;

/** Loads the accepted tokens' names, once. */
export async function loadTokens(): Promise<void> {
  if (loaded) return;
  learn(await api.tokens());
  loaded = true;
}

/** Remembers tokens' names learnt elsewhere (the operator view carries its own). */
export function learn(tokens: TokenInfo[]): void {
  for (const t of tokens) if (t.symbol !== null || t.decimals !== null) known.set(t.token.toLowerCase(), t);
}

/** The token's symbol, or its shortened address. */
export function symbolOf(token: Hex): string {
  return known.get(token.toLowerCase())?.symbol ?? short(token);
}

/** `amount` of `token` in whole tokens (`0.0019 ETH`); `token` unknown (`null`): raw units. */
export function tokenAmount(amount: Wei, token: Hex | null | undefined): string {
  if (!token) return `${amount} units of the job's token`;
  const info = known.get(token.toLowerCase());
  return units(amount, info?.decimals ?? null, info?.symbol ?? short(token));
}
