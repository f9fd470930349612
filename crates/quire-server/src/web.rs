//! The web app at `/`: its files as `quire-web` embedded them, and `index.html` for every
//! other path that is not the API's, so that the app's own routes (`/w/…`) load it.
//!
//! Hashed files (`/assets/…`) are cached for good; `index.html` is never cached, so a new
//! build reaches browsers on their next load. Files go out gzip-compressed to browsers that
//! accept it. The API, `/collab`, and the operations routes keep their JSON 404.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Paths that are never the web app's: an unknown one there is the API's JSON 404.
const NOT_THE_APP: [&str; 5] = ["/api", "/collab", "/metrics", "/healthz", "/readyz"];

/// What the app's page may load: only its own files, its own API and sockets; images also
/// over HTTPS from anywhere (documents show images by address); fonts inlined in its own
/// style sheets (the GraphQL explorer's).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob: https:; connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

/// The router's fallback: a file of the web app, the app's page, or a JSON 404.
pub async fn serve(req: Request) -> Response {
    let path = req.uri().path();
    let api = NOT_THE_APP.iter().any(|p| path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')));
    if api || !matches!(*req.method(), Method::GET | Method::HEAD) {
        return crate::no_route(req).await.into_response();
    }
    if let Some(asset) = quire_web::asset(path).filter(|a| a.path != "/index.html") {
        let cache = if asset.immutable { "public, max-age=31536000, immutable" } else { "public, max-age=3600" };
        return file(asset, req.headers(), cache);
    }
    if path.starts_with("/assets/") {
        // A file of another build (the page that asked is stale): not the app's page.
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("the web app has no file {path}"))
            .into_response();
    }
    let mut res = file(quire_web::index(), req.headers(), "no-cache");
    res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    res
}

fn file(asset: &'static quire_web::Asset, request: &HeaderMap, cache: &'static str) -> Response {
    let gzip = asset.gzip.filter(|_| accepts_gzip(request));
    let mut res = Response::new(Body::from(gzip.unwrap_or(asset.bytes)));
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if asset.gzip.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzip.is_some() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    res
}

/// Whether `Accept-Encoding` takes gzip (not refused with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")).and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        },
    )
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn gzip_is_sent_only_to_who_takes_it() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br, zstd"));
        assert!(with("br;q=1.0, gzip;q=0.8"));
        assert!(with("*"));
        assert!(!with("br"));
        assert!(!with("gzip;q=0"));
        assert!(!with("gzip; q=0.000"));
        assert!(with("gzip;q=0.05"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
