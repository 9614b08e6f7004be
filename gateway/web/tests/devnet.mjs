// Starting a real devnet for the browser tests, the way the Rust end-to-end
// harness does (`crates/cli/tests/it/harness.rs`): the built `lumen devnet`
// on a temporary data folder and a free gateway port (Anvil picks its own),
// ready once it wrote `devnet.json` and its nodes report HEALTHY.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const root = fileURLToPath(new URL("../../..", import.meta.url));

/** The `lumen` binary: `$LUMEN_BIN`, else the debug build in the target folder. */
export function lumenBin() {
  if (process.env.LUMEN_BIN) return process.env.LUMEN_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(root, "target");
  return join(target, "debug", "lumen");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function tail(path, lines = 40) {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Starts `lumen devnet --nodes N` and waits until it is ready. The answer
 * has `file` (what `devnet.json` holds: `gateway_url`, `rpc_url`,
 * `chain_id`, `artist`, `artist_private_key`, `nodes`, …), `dir`, `lumen(args)`
 * to run a CLI command against it, `restartGateway()`, and `stop()`.
 */
export async function startDevnet({ nodes = 1, timeoutMs = 120_000 } = {}) {
  const bin = lumenBin();
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build it first (cargo build --bin lumen)`);
  const dir = mkdtempSync(join(tmpdir(), "lumen-web-"));
  const log = join(dir, "devnet.log");
  const child = spawn(
    bin,
    ["devnet", "--nodes", String(nodes), "--gateway-port", "0", "--data-dir", dir],
    {
      cwd: root,
      // Its own process group: stopping it can take Anvil and the nodes along.
      detached: true,
      stdio: ["ignore", openSync(join(dir, "devnet.out"), "w"), openSync(log, "w")],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info" },
    },
  );
  let exited = null;
  child.on("exit", (code, signal) => (exited = { code, signal }));
  const killGroup = () => {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // Nothing left in the group.
    }
  };
  const stop = async () => {
    if (!exited) {
      // The devnet stops its nodes and Anvil itself on SIGTERM…
      try {
        process.kill(child.pid, "SIGTERM");
      } catch {
        // Already gone.
      }
      for (let i = 0; i < 150 && !exited; i++) await sleep(100);
    }
    // …and whatever is left of its process group goes now.
    killGroup();
    if (!process.env.LUMEN_KEEP_DEVNET) rmSync(dir, { recursive: true, force: true });
  };
  // A test runner that dies must not leave a devnet behind.
  const onExit = killGroup;
  process.once("exit", onExit);

  const started = Date.now();
  const fail = async (why) => {
    const text = `${why}\n--- devnet log (${log}) ---\n${tail(log)}`;
    await stop();
    throw new Error(text);
  };
  let file;
  while (!file) {
    try {
      file = JSON.parse(readFileSync(join(dir, "devnet.json"), "utf8"));
    } catch {
      if (exited) await fail(`lumen devnet exited early (${JSON.stringify(exited)})`);
      if (Date.now() - started > timeoutMs) await fail("lumen devnet did not write devnet.json in time");
      await sleep(200);
    }
  }
  for (;;) {
    const healthy = await fetch(`${file.gateway_url}/api/v1/nodes`)
      .then((r) => r.json())
      .then((list) => list.filter((n) => n.state === "HEALTHY").length)
      .catch(() => 0);
    if (healthy >= nodes) break;
    if (exited) await fail(`lumen devnet exited (${JSON.stringify(exited)})`);
    if (Date.now() - started > timeoutMs) await fail(`${healthy} of ${nodes} nodes healthy in time`);
    await sleep(200);
  }
  const lumen = (args) => {
    const out = spawnSync(bin, [...args, "--devnet-dir", dir], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, RUST_LOG: "warn", LUMEN_SESSION_DIR: join(dir, "sessions") },
      timeout: 120_000,
    });
    if (out.status !== 0) {
      throw new Error(`lumen ${args.join(" ")} failed (${out.status}):\n${out.stdout}\n${out.stderr}\n${tail(log)}`);
    }
    return out.stdout;
  };
  /**
   * Restarts the devnet's services (gateway, matchmaker, verifier, indexer)
   * on the same chain, database and port (`lumen devnet` does on SIGHUP),
   * and waits until the gateway answers again and `nodes` nodes are back.
   */
  const restartGateway = async () => {
    const log = readFileSync(join(dir, "devnet.log"), "utf8");
    const before = (log.match(/services restarted/g) ?? []).length;
    process.kill(child.pid, "SIGHUP");
    const since = Date.now();
    for (;;) {
      const text = readFileSync(join(dir, "devnet.log"), "utf8");
      if ((text.match(/services restarted/g) ?? []).length > before) break;
      if (exited) throw new Error(`lumen devnet exited during the restart (${JSON.stringify(exited)})`);
      if (Date.now() - since > 60_000) throw new Error(`the services did not restart in time\n${tail(join(dir, "devnet.log"))}`);
      await sleep(100);
    }
  };
  return {
    file,
    dir,
    lumen,
    restartGateway,
    stop: async () => {
      process.removeListener("exit", onExit);
      await stop();
    },
  };
}
