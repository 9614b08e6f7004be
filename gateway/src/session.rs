//! Who is calling: artists signed in with their wallet (Sign-In with
//! Ethereum, EIP-4361), and nodes by the session token of their WebSocket.
//!
//! - `GET /api/v1/auth/nonce` hands out a nonce and the fields the message
//!   must carry. The nonce is stateless until used: its expiry and a MAC
//!   under a key kept in the database, so asking for nonces costs the
//!   gateway nothing to store.
//! - `POST /api/v1/auth/siwe` takes the signed message. It must name this
//!   gateway's domain and URI, its chain, an unexpired nonce of ours not
//!   used before, and be signed by the address it names (EIP-191, or
//!   ERC-1271 for a contract wallet). The answer is a session: a random
//!   bearer token, also set as an `HttpOnly`, `SameSite=Strict` cookie for
//!   the dashboard. The database keeps only the token's hash.
//! - A request authenticated by the cookie that changes something must
//!   come from this origin (`Origin` equal to `Host`) — a second line
//!   against cross-site requests behind `SameSite`.

use std::{sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, B256, Signature, eip191_hash_message},
    providers::Provider as _,
};
use axum::{
    Json,
    extract::{FromRequestParts, State},
    http::{HeaderMap, Method, StatusCode, header, request::Parts},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use lumen_protocol::api::{SessionView, SignIn, SiweChallenge};
use lumen_store::{Store, now_ms};
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tracing::info;

use crate::{AppState, error::ApiError};

/// The session cookie.
pub(crate) const COOKIE: &str = "lumen_session";

/// How long a nonce may wait for its signature.
const NONCE_TTL: Duration = Duration::from_secs(300);

/// How far a message's `Issued At` may be ahead of our clock.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Longest message accepted (a real one is under 1 KiB).
const MAX_MESSAGE: usize = 4096;

alloy::sol! {
    /// ERC-1271: how a contract wallet says a signature is its own.
    #[sol(rpc)]
    interface IERC1271 {
        function isValidSignature(bytes32 hash, bytes signature) external view returns (bytes4 magicValue);
    }
}

/// What sign-in checks messages against.
#[derive(Debug)]
pub(crate) struct Auth {
    /// `host[:port]` of the public URL.
    domain: String,
    /// The public URL.
    uri: String,
    chain_id: u64,
    session_ttl: Duration,
    /// Cookies only over HTTPS when the public URL is HTTPS.
    secure: bool,
    /// The nonce MAC key, read from the database on first use.
    key: OnceCell<[u8; 32]>,
}

impl Auth {
    pub(crate) fn new(public_url: &str, chain_id: u64, session_ttl: Duration) -> Self {
        let uri = public_url.trim_end_matches('/').to_owned();
        let domain = uri.split_once("://").map_or(uri.as_str(), |(_, rest)| rest);
        let domain = domain.split('/').next().unwrap_or(domain).to_owned();
        Self { secure: uri.starts_with("https://"), domain, uri, chain_id, session_ttl, key: OnceCell::new() }
    }

    async fn key(&self, store: &Store) -> Result<&[u8; 32], ApiError> {
        self.key
            .get_or_try_init(|| async { store.secret("siwe_nonce_key").await.map(|k| k.0) })
            .await
            .map_err(ApiError::internal)
    }

    fn mac(key: &[u8; 32], payload: &[u8; 16]) -> [u8; 16] {
        let full = blake3::keyed_hash(key, payload);
        let mut mac = [0; 16];
        mac.copy_from_slice(&full.as_bytes()[..16]);
        mac
    }

    /// A fresh nonce: hex of its expiry (ms), 8 random bytes and a MAC.
    async fn nonce(&self, store: &Store) -> Result<(String, i64), ApiError> {
        let expires = now_ms() + ms(NONCE_TTL);
        let mut payload = [0u8; 16];
        payload[..8].copy_from_slice(&expires.to_be_bytes());
        payload[8..].copy_from_slice(&rand::random::<[u8; 8]>());
        let mac = Self::mac(self.key(store).await?, &payload);
        Ok((format!("{}{}", hex::encode(payload), hex::encode(mac)), expires))
    }

    /// The expiry (ms) of a nonce we issued and that has not expired.
    async fn check_nonce(&self, store: &Store, nonce: &str) -> Result<i64, ApiError> {
        let bad = || {
            ApiError::client(
                StatusCode::UNAUTHORIZED,
                "bad_nonce",
                "the nonce was not issued by this gateway",
            )
        };
        let bytes = hex::decode(nonce).map_err(|_| bad())?;
        if bytes.len() != 32 {
            return Err(bad());
        }
        let payload: [u8; 16] = bytes[..16].try_into().map_err(|_| bad())?;
        let mac: [u8; 16] = bytes[16..].try_into().map_err(|_| bad())?;
        let expected = Self::mac(self.key(store).await?, &payload);
        if !constant_time_eq(&expected, &mac) {
            return Err(bad());
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&payload[..8]);
        let expires = i64::from_be_bytes(expiry);
        if expires <= now_ms() {
            return Err(ApiError::client(
                StatusCode::UNAUTHORIZED,
                "nonce_expired",
                "the nonce expired: ask for a new one",
            ));
        }
        Ok(expires)
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn constant_time_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn rfc3339(ms_since_epoch: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms_since_epoch) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn token_hash(token: &str) -> B256 {
    B256::from(*blake3::hash(token.as_bytes()).as_bytes())
}

/// `GET /api/v1/auth/nonce`.
pub(crate) async fn nonce(State(state): State<AppState>) -> Result<Json<SiweChallenge>, ApiError> {
    let auth = &state.auth;
    let (nonce, expires) = auth.nonce(&state.store).await?;
    Ok(Json(SiweChallenge {
        domain: auth.domain.clone(),
        uri: auth.uri.clone(),
        chain_id: auth.chain_id,
        nonce,
        statement: "Sign in to the Lumen render network.".into(),
        issued_at: rfc3339(now_ms()),
        expiration_time: rfc3339(expires),
    }))
}

fn refused(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::client(StatusCode::UNAUTHORIZED, code, message)
}

/// `POST /api/v1/auth/siwe`: checks a signed EIP-4361 message and opens a session.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    jar: CookieJar,
    Json(req): Json<SignIn>,
) -> Result<(CookieJar, Json<SessionView>), ApiError> {
    let auth = &state.auth;
    if req.message.len() > MAX_MESSAGE {
        return Err(ApiError::bad_request("bad_message", "the message is too long"));
    }
    let message: siwe::Message = req
        .message
        .parse()
        .map_err(|e| ApiError::bad_request("bad_message", format!("not an EIP-4361 message: {e}")))?;
    if message.domain.as_str() != auth.domain {
        return Err(refused(
            "wrong_domain",
            format!("the message signs in to {}, not to {}", message.domain, auth.domain),
        ));
    }
    let uri_authority = message.uri.authority_str().unwrap_or_default();
    if uri_authority != auth.domain {
        return Err(refused("wrong_uri", format!("the message's URI {} is not this gateway's", message.uri)));
    }
    if message.chain_id != auth.chain_id {
        return Err(refused(
            "wrong_chain",
            format!(
                "the message is for chain {}, this gateway settles on {}",
                message.chain_id, auth.chain_id
            ),
        ));
    }
    let nonce_expires = auth.check_nonce(&state.store, &message.nonce).await?;
    let now = OffsetDateTime::now_utc();
    let issued: &OffsetDateTime = message.issued_at.as_ref();
    if *issued > now + CLOCK_SKEW || *issued < now - NONCE_TTL - CLOCK_SKEW {
        return Err(refused("bad_time", "the message's Issued At is not now"));
    }
    if !message.valid_at(&now) {
        return Err(refused("bad_time", "the message is expired or not valid yet"));
    }
    let address = Address::from(message.address);
    verify_signature(&state, address, &req.message, &req.signature).await?;
    if !state.store.use_nonce(&message.nonce, nonce_expires).await? {
        return Err(refused("nonce_used", "the nonce was used already: ask for a new one"));
    }

    // The message's Expiration Time bounds when it may be used to sign in
    // (checked above), not the session it opens.
    let expires = now_ms() + ms(auth.session_ttl);
    let token = hex::encode(rand::random::<[u8; 32]>());
    state.store.create_session(token_hash(&token), address, expires).await?;
    info!(target: "gateway::auth", %address, "signed in");
    let max_age = time::Duration::milliseconds((expires - now_ms()).max(0));
    let cookie = Cookie::build((COOKIE, token.clone()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(auth.secure)
        .path("/")
        .max_age(max_age)
        .build();
    Ok((jar.add(cookie), Json(SessionView { address, expires_at_ms: expires, token: Some(token) })))
}

/// An EIP-191 signature by `address`'s key, or, for a contract wallet,
/// one its `isValidSignature` accepts.
async fn verify_signature(
    state: &AppState,
    address: Address,
    message: &str,
    signature: &[u8],
) -> Result<(), ApiError> {
    if let Ok(sig) = Signature::try_from(signature)
        && sig.recover_address_from_msg(message).is_ok_and(|signer| signer == address)
    {
        return Ok(());
    }
    // A contract wallet: asked on the chain, under the public chain reads' bounds.
    let accepted = state
        .limits
        .chain_view(async {
            let provider = state.escrow.provider();
            let code = provider
                .get_code_at(address)
                .await
                .map_err(|e| ApiError::internal(format!("eth_getCode: {e}")))?;
            if code.is_empty() {
                return Ok(false);
            }
            let wallet = IERC1271::new(address, provider);
            let hash = eip191_hash_message(message);
            let magic = wallet.isValidSignature(hash, signature.to_vec().into()).call().await;
            Ok(magic.is_ok_and(|magic| magic.0 == [0x16, 0x26, 0xba, 0x7e]))
        })
        .await?;
    if accepted {
        return Ok(());
    }
    Err(refused("bad_signature", format!("the message is not signed by {address}")))
}

/// `GET /api/v1/auth/session`: who the session belongs to.
pub(crate) async fn current(artist: Artist) -> Json<SessionView> {
    Json(SessionView { address: artist.address, expires_at_ms: artist.expires_at_ms, token: None })
}

/// `POST /api/v1/auth/logout`: ends the session and clears the cookie.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    _artist: Artist,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<(CookieJar, StatusCode), ApiError> {
    if let Some(token) = presented_token(&headers, &jar) {
        state.store.end_session(token_hash(&token)).await?;
    }
    Ok((jar.remove(Cookie::build(COOKIE).path("/")), StatusCode::NO_CONTENT))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

fn presented_token(headers: &HeaderMap, jar: &CookieJar) -> Option<String> {
    bearer(headers).or_else(|| jar.get(COOKIE).map(|c| c.value().to_owned()))
}

/// An artist signed in with their wallet: the request carries a session
/// token (`Authorization: Bearer`, or the `lumen_session` cookie). Missing
/// or expired: 401.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Artist {
    pub(crate) address: Address,
    pub(crate) expires_at_ms: i64,
}

/// Who is calling, if anyone: a signed-in artist or a connected node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    Anonymous,
    Artist(Address),
    Node(Address),
}

impl Caller {
    /// 401 for nobody; the caller otherwise.
    pub(crate) fn required(self) -> Result<Self, ApiError> {
        match self {
            Self::Anonymous => Err(unauthorized()),
            who => Ok(who),
        }
    }
}

pub(crate) fn unauthorized() -> ApiError {
    ApiError::client(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "sign in first (Sign-In with Ethereum: GET /api/v1/auth/nonce, POST /api/v1/auth/siwe; `lumen login`)",
    )
}

pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::client(StatusCode::FORBIDDEN, "forbidden", message)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(&parts.headers) {
            if let Some(node) = state.nodes.node_for_session(&token) {
                return Ok(Self::Node(node));
            }
            return match state.store.session(token_hash(&token)).await? {
                Some((address, _)) => Ok(Self::Artist(address)),
                None => Err(ApiError::client(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "unknown or expired session",
                )),
            };
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(cookie) = jar.get(COOKIE) else { return Ok(Self::Anonymous) };
        check_origin(parts)?;
        match state.store.session(token_hash(cookie.value())).await? {
            Some((address, _)) => Ok(Self::Artist(address)),
            None => {
                Err(ApiError::client(StatusCode::UNAUTHORIZED, "unauthorized", "unknown or expired session"))
            }
        }
    }
}

impl FromRequestParts<AppState> for Artist {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let (token, cookie) = match bearer(&parts.headers) {
            Some(token) => (token, false),
            None => match jar.get(COOKIE) {
                Some(c) => (c.value().to_owned(), true),
                None => return Err(unauthorized()),
            },
        };
        if cookie {
            check_origin(parts)?;
        }
        match state.store.session(token_hash(&token)).await? {
            Some((address, expires_at_ms)) => Ok(Self { address, expires_at_ms }),
            None => {
                Err(ApiError::client(StatusCode::UNAUTHORIZED, "unauthorized", "unknown or expired session"))
            }
        }
    }
}

/// A cookie-authenticated request that changes something must come from a
/// page of this gateway.
fn check_origin(parts: &Parts) -> Result<(), ApiError> {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let Some(origin) = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(()); // not a browser: the cookie was set by hand
    };
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(ApiError::client(
            StatusCode::FORBIDDEN,
            "cross_origin",
            format!("requests from {origin} are not accepted"),
        ))
    }
}

/// Shared sign-in settings.
pub(crate) type SharedAuth = Arc<Auth>;
