// The Sign-In with Ethereum (EIP-4361) message, character for character as
// `SiweChallenge::message` builds it in `crates/protocol/src/api.rs`: the
// gateway parses what the wallet signed, so any difference fails sign-in.

import { getAddress } from "viem";
import type { Hex, SiweChallenge } from "./types";

/** The message `address` signs to answer `challenge`. */
export function siweMessage(challenge: SiweChallenge, address: Hex): string {
  return [
    `${challenge.domain} wants you to sign in with your Ethereum account:`,
    getAddress(address),
    "",
    challenge.statement,
    "",
    `URI: ${challenge.uri}`,
    "Version: 1",
    `Chain ID: ${challenge.chain_id}`,
    `Nonce: ${challenge.nonce}`,
    `Issued At: ${challenge.issued_at}`,
    `Expiration Time: ${challenge.expiration_time}`,
  ].join("\n");
}
