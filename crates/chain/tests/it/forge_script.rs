//! `contracts/script/Deploy.s.sol` deploys to a running Anvil and writes a
//! deployment file that the Rust side reads.

use std::{path::Path, process::Command};

use alloy::{
    primitives::Address,
    providers::{Provider, ProviderBuilder},
};
use lumen_chain::{Deployment, contracts::RenderEscrow};

#[tokio::test]
async fn forge_deploy_script_writes_a_usable_deployment_file() -> eyre::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    // A chain id of our own, so the file cannot collide with a developer's devnet file.
    let chain_id = 4_242_001u64;
    let anvil = lumen_chain::anvil::spawn_with(|a| a.chain_id(chain_id))?;
    let key = alloy::hex::encode_prefixed(anvil.keys()[0].to_bytes());
    let file = root.join(format!("deployments/{chain_id}.json"));
    let _ = std::fs::remove_file(&file);

    let out = Command::new(root.join("tools/bin/forge"))
        .current_dir(&root)
        .args(["script", "contracts/script/Deploy.s.sol", "--rpc-url", &anvil.endpoint(), "--broadcast"])
        .env("DEPLOYER_PRIVATE_KEY", &key)
        .env("FEE_BPS", "100")
        .output()?;
    assert!(out.status.success(), "forge script failed:\n{}", String::from_utf8_lossy(&out.stderr));

    let deployment = Deployment::load(&file)?;
    std::fs::remove_file(&file)?;
    assert_eq!(deployment.chain_id, chain_id);
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint_url());
    lumen_chain::verify_code(&deployment, &provider).await?;
    let escrow = RenderEscrow::new(deployment.escrow, &provider);
    assert_eq!(escrow.registry().call().await?, deployment.registry);
    assert_eq!(escrow.feeBps().call().await?, 100);
    assert_eq!(escrow.settler().call().await?, anvil.addresses()[0]);
    assert_ne!(deployment.treasury, Address::ZERO);
    let sent = provider.get_transaction_count(anvil.addresses()[0]).await?;
    assert_eq!(sent, 3, "the script deploys the two contracts and links the escrow to the registry");
    let registry = lumen_chain::contracts::NodeRegistry::new(deployment.registry, &provider);
    assert_eq!(registry.escrow().call().await?, deployment.escrow);
    assert!(deployment.deploy_block >= 1);
    Ok(())
}
