//! The signing key is stored sealed, and a legacy plaintext one is sealed on first use.

use std::sync::Arc;

use quire_auth::{Auth, AuthConfig, Keyring};
use quire_store::testing::Backend;

const SLOT: &str = "auth.jwt_hs256_secret";

quire_store::for_each_backend!(the_signing_key_is_sealed_at_rest, plaintext_from_before_is_sealed_on_start);

async fn the_signing_key_is_sealed_at_rest(b: Backend) {
    let t = b.open(Default::default()).await;
    let keyring = Arc::new(Keyring::ephemeral());
    let auth =
        Auth::new(t.store.clone(), AuthConfig { keyring: keyring.clone(), ..AuthConfig::default() }).await.unwrap();
    let stored = t.store.setting(SLOT).await.unwrap().unwrap();
    assert!(Keyring::is_sealed(&stored), "{stored}");
    let token = auth
        .signup("ada@example.com", "correct horse battery", "Ada", None, &Default::default())
        .await
        .unwrap()
        .access_token;
    // A second process with the same key verifies the first one's tokens.
    let again = Auth::new(t.store.clone(), AuthConfig { keyring, ..AuthConfig::default() }).await.unwrap();
    assert!(again.authenticate(&token).await.is_ok());
    // With another key it does not start.
    let wrong = Auth::new(t.store.clone(), AuthConfig::default()).await;
    assert!(matches!(wrong, Err(quire_core::Error::Unavailable(m)) if m.contains("not configured")));
}

async fn plaintext_from_before_is_sealed_on_start(b: Backend) {
    let t = b.open(Default::default()).await;
    t.store.put_setting(SLOT, "c2VjcmV0LWtleS1tYXRlcmlhbC1mb3ItdGVzdGluZy1vbmx5").await.unwrap();
    let keyring = Arc::new(Keyring::ephemeral());
    Auth::new(t.store.clone(), AuthConfig { keyring: keyring.clone(), ..AuthConfig::default() }).await.unwrap();
    let stored = t.store.setting(SLOT).await.unwrap().unwrap();
    assert!(Keyring::is_sealed(&stored));
    assert_eq!(keyring.open(SLOT, &stored).unwrap(), "c2VjcmV0LWtleS1tYXRlcmlhbC1mb3ItdGVzdGluZy1vbmx5");
}
