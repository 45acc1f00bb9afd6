//! The headers that tell a browser what our responses may do. Every response (API, static
//! file, error, 404) carries a Content-Security-Policy, `X-Content-Type-Options: nosniff` and
//! a Referrer-Policy; the dashboard's page gets the same policy plus the hashes of its inline
//! scripts.

use actix_web::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use actix_web::middleware::DefaultHeaders;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Everything comes from our own origin; the dashboard's WebAssembly may be compiled
/// (`'wasm-unsafe-eval'`), JavaScript `eval` may not. `connect-src 'self'` covers the
/// same-origin WebSocket in browsers of CSP level 3 (Chromium 71+, Firefox, Safari 16+).
/// No plugins, no `<base>`, forms post only to us, and no other site may frame our pages.
const POLICY: &str = "default-src 'self'; \
    script-src 'self' 'wasm-unsafe-eval'{inline}; \
    connect-src 'self'; \
    object-src 'none'; \
    base-uri 'none'; \
    form-action 'self'; \
    frame-ancestors 'none'";

/// Headers added to every response that does not set them itself.
///
/// `Referrer-Policy: same-origin`: nothing goes to other sites (page URLs name upload ids).
/// Not `no-referrer`, under which the Fetch standard sends `Origin: null` with a same-origin
/// POST that is not CORS-mode (a form), and the cross-site check would refuse our own page.
pub fn on_every_response() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((CONTENT_SECURITY_POLICY, policy(&[])))
        .add((X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((REFERRER_POLICY, "same-origin"))
}

/// The policy for the dashboard's `index.html`: Trunk puts an inline module script there that
/// loads the WebAssembly, so the page allows exactly the inline scripts it holds, by hash
/// (computed from the very bytes served, so a rebuilt dashboard needs no restart).
pub fn page_policy(html: &str) -> String {
    let hashes: Vec<String> = inline_scripts(html)
        .map(|script| {
            let digest = Sha256::digest(script.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    policy(&hashes)
}

fn policy(script_sources: &[String]) -> String {
    let inline: String = script_sources.iter().map(|s| format!(" {s}")).collect();
    POLICY.replace("{inline}", &inline)
}

/// The text of each `<script>` without a `src` attribute, exactly as written (a CSP hash
/// covers the bytes between the tags).
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || loop {
        let start = rest.find("<script")?;
        let after_tag = start + rest[start..].find('>')? + 1;
        let length = rest[after_tag..].find("</script>")?;
        let tag = &rest[start..after_tag];
        let text = &rest[after_tag..after_tag + length];
        rest = &rest[after_tag + length..];
        if !tag.contains(" src=") {
            return Some(text);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_policy_names_each_inline_script_by_hash() {
        let html = "<head><script type=\"module\" src=\"/a.js\"></script>\
            <script type=\"module\">\nimport init from '/a.js';\n</script></head>\
            <body><script>alert(1)</script></body>";
        let scripts: Vec<&str> = inline_scripts(html).collect();
        assert_eq!(scripts, ["\nimport init from '/a.js';\n", "alert(1)"]);
        let policy = page_policy(html);
        // echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert!(
            policy.contains("'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"),
            "{policy}"
        );
        assert!(
            policy.starts_with("default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'sha256-")
        );
    }

    #[test]
    fn other_responses_allow_no_inline_script() {
        assert!(policy(&[]).contains("script-src 'self' 'wasm-unsafe-eval'; connect-src"));
        assert_eq!(page_policy("<p>no scripts</p>"), policy(&[]));
    }
}
