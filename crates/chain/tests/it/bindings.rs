//! The committed artifacts must match what forge builds from contracts/src.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The same reduction as scripts/artifact.cjs.
fn reduce(artifact: &Value) -> Value {
    json!({
        "abi": artifact["abi"],
        "bytecode": { "object": artifact["bytecode"]["object"] },
        "deployedBytecode": { "object": artifact["deployedBytecode"]["object"] },
    })
}

#[test]
fn bindings_are_fresh() {
    let root = repo_root();
    for contract in ["RenderEscrow", "NodeRegistry", "MockERC20"] {
        let built = root.join(format!("out/{contract}.sol/{contract}.json"));
        let built: Value = serde_json::from_str(&std::fs::read_to_string(&built).unwrap_or_else(|e| {
            panic!("{}: {e}; run `tools/bin/forge build` first (scripts/test.sh does)", built.display())
        }))
        .unwrap();
        let committed = root.join(format!("crates/chain/artifacts/{contract}.json"));
        let committed: Value = serde_json::from_str(&std::fs::read_to_string(&committed).unwrap()).unwrap();
        assert!(
            reduce(&built) == committed,
            "crates/chain/artifacts/{contract}.json is stale: run scripts/gen-bindings.sh"
        );
    }
}
