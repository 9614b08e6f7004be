//! The dashboard's files, embedded at compile time: the page shell
//! (`assets/index.html`) and the bundle that `gateway/web` builds into
//! `assets/dist` (`npm run build`; `scripts/test.sh` fails when the
//! committed bundle is stale). Nothing is read from disk at run time and the
//! page loads nothing from elsewhere.
//!
//! Every answer carries a strict Content Security Policy: scripts, styles
//! and requests only from this origin, no inline script or style, no
//! plugins, no framing. Images may also be `data:` URIs (the icons wallets
//! announce under EIP-6963 are). The files revalidate on every load
//! (`no-cache` with an `ETag`), so a new gateway build is picked up at once
//! and an unchanged one costs a 304.

use std::sync::OnceLock;

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// The policy of every dashboard answer.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    /// A strong validator: a hash of the body, computed on first use.
    etag: OnceLock<HeaderValue>,
}

impl Asset {
    const fn new(body: &'static [u8], content_type: &'static str) -> Self {
        Self { body, content_type, etag: OnceLock::new() }
    }

    fn etag(&self) -> &HeaderValue {
        self.etag.get_or_init(|| {
            let hash = blake3::hash(self.body);
            let tag = format!("\"{}\"", &hash.to_hex()[..32]);
            HeaderValue::from_str(&tag).expect("a quoted hex string is a valid header value")
        })
    }

    /// The file, or 304 when the client's copy (`If-None-Match`) is current.
    fn serve(&self, request: &HeaderMap) -> Response {
        let etag = self.etag();
        let fresh = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|candidate| {
                let candidate = candidate.trim();
                candidate == "*" || candidate.trim_start_matches("W/").as_bytes() == etag.as_bytes()
            });
        let mut response =
            if fresh { StatusCode::NOT_MODIFIED.into_response() } else { self.body.into_response() };
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::ETAG, etag.clone());
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        response
    }
}

static INDEX: Asset = Asset::new(include_bytes!("../assets/index.html"), "text/html; charset=utf-8");
static APP_JS: Asset = Asset::new(include_bytes!("../assets/dist/app.js"), "text/javascript; charset=utf-8");
static APP_CSS: Asset = Asset::new(include_bytes!("../assets/dist/app.css"), "text/css; charset=utf-8");

/// `GET /`: the page shell; every page of the dashboard is a `#/…` route in it.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    INDEX.serve(&headers)
}

/// `GET /assets/app.js`: the dashboard's script.
pub(crate) async fn app_js(headers: HeaderMap) -> Response {
    APP_JS.serve(&headers)
}

/// `GET /assets/app.css`: the dashboard's styles.
pub(crate) async fn app_css(headers: HeaderMap) -> Response {
    APP_CSS.serve(&headers)
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn body(response: Response) -> Vec<u8> {
        to_bytes(response.into_body(), usize::MAX).await.expect("an embedded body").to_vec()
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    #[tokio::test]
    async fn files_are_served_with_their_type_policy_and_validator() {
        for (response, content_type, embedded) in [
            (index(HeaderMap::new()).await, "text/html; charset=utf-8", INDEX.body),
            (app_js(HeaderMap::new()).await, "text/javascript; charset=utf-8", APP_JS.body),
            (app_css(HeaderMap::new()).await, "text/css; charset=utf-8", APP_CSS.body),
        ] {
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(header_of(&response, header::CONTENT_TYPE), content_type);
            assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
            assert_eq!(header_of(&response, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            let csp = header_of(&response, header::CONTENT_SECURITY_POLICY);
            assert!(csp.starts_with("default-src 'self';"), "{csp}");
            assert!(csp.contains("connect-src 'self';") && csp.contains("script-src 'self';"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
            assert!(header_of(&response, header::ETAG).starts_with('"'));
            let served = body(response).await;
            assert!(!served.is_empty());
            assert_eq!(served, embedded);
        }
    }

    #[tokio::test]
    async fn a_current_copy_gets_304_and_a_stale_one_the_file() {
        let etag = APP_JS.etag().clone();
        let mut current = HeaderMap::new();
        current.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        current.append(header::IF_NONE_MATCH, etag.clone());
        let response = app_js(current).await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers().get(header::ETAG), Some(&etag));
        assert!(body(response).await.is_empty());

        let mut stale = HeaderMap::new();
        stale.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"0123\""));
        let response = app_js(stale).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body(response).await, APP_JS.body);
        // Each file has its own validator.
        assert_ne!(APP_JS.etag(), APP_CSS.etag());
    }

    /// The policy forbids inline script: the shell may only load the bundle.
    #[test]
    fn the_shell_has_no_inline_script_or_style_and_keeps_a_noscript_line() {
        let html = std::str::from_utf8(INDEX.body).expect("the shell is UTF-8");
        let scripts: Vec<&str> = html.match_indices("<script").map(|(i, _)| &html[i..]).collect();
        assert_eq!(scripts.len(), 1, "one script tag, the bundle");
        assert!(scripts[0].starts_with("<script defer src=\"/assets/app.js\"></script>"));
        assert!(html.contains("<link rel=\"stylesheet\" href=\"/assets/app.css\">"));
        assert!(!html.contains("<style") && !html.contains(" style="), "inline style");
        let handler = html.match_indices(" on").any(|(i, _)| {
            let name: String = html[i + 1..].chars().take_while(char::is_ascii_alphabetic).collect();
            html[i + 1 + name.len()..].starts_with('=')
        });
        assert!(!handler, "inline event handler");
        assert!(html.contains("<noscript>"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "the page loads nothing from elsewhere"
        );
    }
}
