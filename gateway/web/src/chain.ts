// Contract calls from the connected wallet: every write is simulated first
// (`eth_call` through the wallet), so a call the contract would refuse is
// stopped before the wallet asks anything, with the contract's own custom
// error decoded (`errors.ts` says it in words); then sent
// (`eth_sendTransaction`: the wallet prompts) and followed to its receipt.
// Reads go through the wallet as well: the page's policy allows requests
// to the gateway only, and the wallet has its own node.

import type { Abi, ContractFunctionArgs, ContractFunctionName, TransactionReceipt } from "viem";
import {
  getBalance,
  getBlock,
  readContract,
  simulateContract,
  waitForTransactionReceipt,
  writeContract,
} from "viem/actions";
import { tokenAbi } from "./abi";
import type { Hex } from "./types";
import type { Wallet } from "./wallet";

/** One contract call: where, which ABI, which function, its arguments and value. */
export interface Call<
  A extends Abi,
  F extends ContractFunctionName<A, "nonpayable" | "payable">,
> {
  address: Hex;
  abi: A;
  functionName: F;
  args: ContractFunctionArgs<A, "nonpayable" | "payable", F>;
  value?: bigint;
}

/** A transaction that was mined but reverted (the simulation passed, the chain moved on). */
export class RevertedOnChain extends Error {
  constructor(readonly receipt: TransactionReceipt) {
    super(`the transaction ${receipt.transactionHash} was mined in block ${receipt.blockNumber} but reverted`);
    this.name = "RevertedOnChain";
  }
}

/** What a transaction's progress looks like to the page. */
export type Progress = (step: "simulating" | "signing" | "pending", hash?: Hex) => void;

/**
 * Simulates `call` as `account`, sends it from the wallet and waits for its
 * receipt. Throws viem's `ContractFunctionExecutionError` (with the decoded
 * revert) when the simulation fails, the wallet's error when the person
 * rejects, and `RevertedOnChain` when the mined transaction reverted.
 */
export async function send<A extends Abi, F extends ContractFunctionName<A, "nonpayable" | "payable">>(
  wallet: Wallet,
  account: Hex,
  call: Call<A, F>,
  progress: Progress = () => {},
): Promise<TransactionReceipt> {
  progress("simulating");
  // The typed generics of viem's actions do not survive being passed through
  // another generic function: the call is checked at our signature instead.
  const { request } = await simulateContract(wallet.client, {
    ...(call as object),
    account,
    chain: null,
  } as never);
  progress("signing");
  const hash = await writeContract(wallet.client, { ...(request as object), chain: null } as never);
  progress("pending", hash);
  const receipt = await waitForTransactionReceipt(wallet.client, { hash, pollingInterval: 500 });
  if (receipt.status !== "success") throw new RevertedOnChain(receipt);
  return receipt;
}

/** A view call through the wallet's node. */
export function read<T>(
  wallet: Wallet,
  call: { address: Hex; abi: Abi; functionName: string; args?: readonly unknown[] },
): Promise<T> {
  return readContract(wallet.client, call as never) as Promise<T>;
}

/**
 * Simulates `call` as `account` without sending it: throws as `send` would
 * before any prompt (the contract's decoded revert), so a page can check a
 * call it will send later, after other prompts.
 */
export async function simulate<A extends Abi, F extends ContractFunctionName<A, "nonpayable" | "payable">>(
  wallet: Wallet,
  account: Hex,
  call: Call<A, F>,
): Promise<void> {
  await simulateContract(wallet.client, { ...(call as object), account, chain: null } as never);
}

/** What `account` holds of `token` (`address(0)`: the native coin), in its smallest unit. */
export function balanceOf(wallet: Wallet, account: Hex, token: Hex): Promise<bigint> {
  if (/^0x0{40}$/.test(token)) return getBalance(wallet.client, { address: account });
  return read<bigint>(wallet, { address: token, abi: tokenAbi, functionName: "balanceOf", args: [account] });
}

/** The chain's clock: the latest block's timestamp (what the escrow compares deadlines with). */
export async function chainTime(wallet: Wallet): Promise<bigint> {
  const block = await getBlock(wallet.client, { blockTag: "latest" });
  return block.timestamp;
}
