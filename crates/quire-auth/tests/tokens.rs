//! Access tokens expire; another instance's tokens, or altered ones, are refused.

use std::time::Duration;

use quire_auth::{Auth, AuthConfig};
use quire_core::Error;
use quire_store::testing::Backend;

#[tokio::test]
async fn expired_and_foreign_tokens_are_refused_with_a_reason() {
    let t = Backend::Sqlite.open(Default::default()).await;
    // Tokens that expire at once (the check allows five seconds of clock skew).
    let config = AuthConfig { access_ttl: Duration::ZERO, ..AuthConfig::default() };
    let auth = Auth::new(t.store.clone(), config).await.unwrap();
    let signed =
        auth.signup("ada@example.com", "correct horse battery", "Ada", None, &Default::default()).await.unwrap();
    assert!(auth.authenticate(&signed.access_token).await.is_ok(), "within the skew allowance");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let expired = auth.authenticate(&signed.access_token).await;
    assert!(matches!(expired, Err(Error::Unauthenticated(m)) if m.contains("expired")));
    // Refreshing still works: that is what refresh tokens are for.
    let fresh = auth.refresh(&signed.refresh_token).await.unwrap();
    assert_eq!(fresh.user.id, signed.user.id);

    // Another instance signs with another key.
    let other = Backend::Sqlite.open(Default::default()).await;
    let foreign = Auth::new(other.store.clone(), AuthConfig::default()).await.unwrap();
    let theirs =
        foreign.signup("eve@example.com", "correct horse battery", "Eve", None, &Default::default()).await.unwrap();
    assert!(
        matches!(auth.authenticate(&theirs.access_token).await, Err(Error::Unauthenticated(m)) if m.contains("not valid"))
    );
    let mut altered = fresh.access_token.clone();
    altered.insert(altered.len() / 2, 'x');
    assert!(matches!(auth.authenticate(&altered).await, Err(Error::Unauthenticated(_))));
}
