//! The artist's session with a gateway: Sign-In with Ethereum (EIP-4361)
//! with the wallet's key, the same session the dashboard gets.
//!
//! A session is kept between commands in a file per gateway and wallet
//! (`$LUMEN_SESSION_DIR`, default `~/.local/state/lumen/sessions`, mode
//! 0600), so `lumen job wait` does not sign in on every poll. A session the
//! gateway no longer knows (expired, or a devnet restarted on the same
//! address) is replaced by signing in again once.

use std::path::PathBuf;

use alloy::{
    primitives::Address,
    signers::{Signer, local::PrivateKeySigner},
};
use clap::Args;
use eyre::{WrapErr, bail};
use lumen_protocol::api::{SessionView, SignIn, SiweChallenge};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::{
    connect::{ConnectArgs, Connection, WalletArgs, decode},
    output,
};

/// A session as kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    gateway: String,
    address: Address,
    token: String,
    expires_at_ms: i64,
}

fn session_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LUMEN_SESSION_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/state/lumen/sessions")
}

fn session_file(gateway: &str, address: Address) -> PathBuf {
    let key = blake3::hash(format!("{gateway}\n{address:#x}").as_bytes());
    session_dir().join(format!("{}.json", &key.to_hex()[..32]))
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn load(gateway: &str, address: Address) -> Option<Saved> {
    let text = std::fs::read_to_string(session_file(gateway, address)).ok()?;
    let saved: Saved = serde_json::from_str(&text).ok()?;
    (saved.gateway == gateway && saved.address == address && saved.expires_at_ms > now_ms() + 60_000)
        .then_some(saved)
}

fn save(saved: &Saved) -> eyre::Result<()> {
    let path = session_file(&saved.gateway, saved.address);
    let dir = path.parent().unwrap_or(&path);
    std::fs::create_dir_all(dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(saved)?)
        .wrap_err_with(|| format!("cannot write {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, &path).wrap_err_with(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Signs in to the gateway with `key`: asks for a nonce, signs the
/// EIP-4361 message, and returns the session.
pub async fn sign_in(conn: &Connection, key: &PrivateKeySigner) -> eyre::Result<SessionView> {
    let challenge: SiweChallenge =
        crate::connect::get_json(&conn.http, &format!("{}/api/v1/auth/nonce", conn.gateway)).await?;
    if challenge.chain_id != conn.deployment.chain_id {
        bail!(
            "the gateway asks to sign in on chain {}, but settles on {}",
            challenge.chain_id,
            conn.deployment.chain_id
        );
    }
    let message = challenge.message(key.address());
    let signature = key.sign_message(message.as_bytes()).await?;
    let response = conn
        .http
        .post(format!("{}/api/v1/auth/siwe", conn.gateway))
        .json(&SignIn { message, signature: signature.as_bytes().to_vec().into() })
        .send()
        .await
        .wrap_err("cannot reach the gateway")?;
    let session: SessionView = decode(response, "sign-in").await?;
    if session.address != key.address() {
        bail!("the gateway signed in {} instead of {}", session.address, key.address());
    }
    Ok(session)
}

/// An artist talking to the gateway under their session.
#[derive(Debug)]
pub struct ArtistClient {
    conn: Connection,
    key: PrivateKeySigner,
    token: Mutex<Option<String>>,
}

impl ArtistClient {
    /// The artist `wallet` names, on `conn`; signs in on first use unless a
    /// saved session is still valid.
    pub fn new(conn: Connection, wallet: &WalletArgs) -> eyre::Result<Self> {
        let key = wallet.signer(&conn)?;
        let token = load(&conn.gateway, key.address()).map(|s| s.token);
        Ok(Self { conn, key, token: Mutex::new(token) })
    }

    /// The connection.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The artist's key.
    pub fn key(&self) -> &PrivateKeySigner {
        &self.key
    }

    /// Signs in afresh and keeps the session.
    pub async fn login(&self) -> eyre::Result<SessionView> {
        let session = sign_in(&self.conn, &self.key).await?;
        let token = session.token.clone().unwrap_or_default();
        save(&Saved {
            gateway: self.conn.gateway.clone(),
            address: session.address,
            token: token.clone(),
            expires_at_ms: session.expires_at_ms,
        })?;
        *self.token.lock().await = Some(token);
        Ok(session)
    }

    async fn token(&self) -> eyre::Result<String> {
        if let Some(token) = self.token.lock().await.clone() {
            return Ok(token);
        }
        Ok(self.login().await?.token.unwrap_or_default())
    }

    /// Sends a request under the session; a 401 (the gateway no longer
    /// knows it) signs in again once and resends.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> eyre::Result<Response> {
        let url = format!("{}{path}", self.conn.gateway);
        let request =
            |token: &str| body(self.conn.http.request(method.clone(), &url).bearer_auth(token)).send();
        let response = request(&self.token().await?).await.wrap_err_with(|| format!("cannot reach {url}"))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let token = self.login().await?.token.unwrap_or_default();
        request(&token).await.wrap_err_with(|| format!("cannot reach {url}"))
    }

    /// GETs JSON under the session.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> eyre::Result<T> {
        decode(self.send(Method::GET, path, |r| r).await?, path).await
    }
}

/// `lumen login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The artist's wallet.
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// Network.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Signs in and keeps the session for the next commands.
pub async fn login(args: LoginArgs) -> eyre::Result<()> {
    let client = ArtistClient::new(args.connect.connect().await?, &args.wallet)?;
    let session = client.login().await?;
    output::line(format!(
        "signed in to {} as {} (session ends in {} min)",
        client.conn.gateway,
        session.address,
        (session.expires_at_ms - now_ms()).max(0) / 60_000
    ));
    Ok(())
}

/// `lumen logout`: ends the saved session on the gateway and forgets it.
pub async fn logout(args: LoginArgs) -> eyre::Result<()> {
    let conn = args.connect.connect().await?;
    let key = args.wallet.signer(&conn)?;
    let path = session_file(&conn.gateway, key.address());
    if let Some(saved) = load(&conn.gateway, key.address()) {
        conn.http
            .post(format!("{}/api/v1/auth/logout", conn.gateway))
            .bearer_auth(&saved.token)
            .send()
            .await
            .wrap_err("cannot reach the gateway")?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => output::line(format!("signed out of {} as {}", conn.gateway, key.address())),
        Err(_) => output::line(format!("no session with {} as {}", conn.gateway, key.address())),
    }
    Ok(())
}
