//! The patient's page: one HTML file with inline style and script, served from the binary
//! with no external assets. The script renders the survey from JSON embedded in the page
//! and saves and completes through `POST /r/{token}`.

use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// Markup, style and script. Placeholders: `{{NONCE}}` and `{{STATE}}`.
const PAGE: &str = include_str!("page.html");

/// The link is a credential: no cache may keep what it shows.
pub(super) fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Renders the patient's page with `state` embedded as JSON. Survey text reaches the DOM
/// only through the script's `textContent`, and `<`, `>` and `&` are escaped in the JSON,
/// so no survey text can close the script element or inject markup.
pub(super) fn page(status: StatusCode, state: &Value) -> Response {
    let nonce = STANDARD.encode(rand::random::<[u8; 16]>());
    let html = render(&nonce, state);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    no_store(response)
}

fn render(nonce: &str, state: &Value) -> String {
    let state = serde_json::to_string(state)
        .expect("plain data serialises")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    // The nonce first: text inserted by a replacement is not searched again, so survey
    // text that happens to contain a placeholder stays text.
    PAGE.replace("{{NONCE}}", nonce)
        .replace("{{STATE}}", &state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn survey_text_cannot_close_the_state_script() {
        let html = render(
            "n0nce",
            &json!({"title": "</script><script>alert(1)</script> & {{NONCE}}"}),
        );
        assert!(!html.contains("alert(1)</script>"));
        assert!(html.contains("\\u003c/script\\u003e"));
        assert!(
            html.contains("{{NONCE}}"),
            "survey text is not a placeholder"
        );
        assert!(html.contains("nonce=\"n0nce\""));
    }

    #[test]
    fn the_page_forbids_every_source_but_its_own_nonce() {
        let response = page(StatusCode::OK, &json!({"view": "gone"}));
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.starts_with("default-src 'none'"));
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }
}
