//! Credentials kept out of logs: request URIs are logged with the values of credential-like
//! query parameters replaced (a `/collab/{doc}?token=…` carries an access token or an API
//! key; an SSO callback carries its `code` and `state`). Headers (`Authorization`, cookies)
//! are never logged, and the audit trail records paths and the names of body fields only.

use axum::http::Uri;

/// Query parameters whose values are credentials.
const SECRET_PARAMS: &[&str] =
    &["token", "access_token", "refresh_token", "id_token", "api_key", "key", "code", "state", "password", "secret"];

/// What a log line shows of a value taken out.
pub const REDACTED: &str = "[redacted]";

/// `uri`'s path and query with every credential-like parameter's value replaced.
pub fn uri(uri: &Uri) -> String {
    let Some(query) = uri.query() else { return uri.path().to_owned() };
    let mut out = String::with_capacity(uri.path().len() + 1 + query.len());
    out.push_str(uri.path());
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if is_secret(name) && !value.is_empty() {
            out.push_str(name);
            out.push('=');
            out.push_str(REDACTED);
        } else {
            out.push_str(pair);
        }
    }
    out
}

/// Whether a parameter name (percent-encoded as sent) names a credential.
fn is_secret(name: &str) -> bool {
    let name = name.replace("%5F", "_").replace("%5f", "_");
    SECRET_PARAMS.iter().any(|s| name.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_uri_and_everything_else_stays() {
        let cases = [
            ("/collab/doc_1?token=eyJhbGci.x.y", "/collab/doc_1?token=[redacted]"),
            ("/collab/doc_1?TOKEN=qk_abc&x=1", "/collab/doc_1?TOKEN=[redacted]&x=1"),
            (
                "/api/v1/auth/sso/oidc/callback?code=abc&state=def",
                "/api/v1/auth/sso/oidc/callback?code=[redacted]&state=[redacted]",
            ),
            ("/a?access%5Ftoken=s3cret&limit=5", "/a?access%5Ftoken=[redacted]&limit=5"),
            ("/api/v1/documents?limit=5&sort=title", "/api/v1/documents?limit=5&sort=title"),
            ("/x?token=", "/x?token="),
            ("/x?token", "/x?token"),
            ("/plain", "/plain"),
        ];
        for (given, logged) in cases {
            assert_eq!(uri(&given.parse().unwrap()), logged, "{given}");
        }
    }
}
