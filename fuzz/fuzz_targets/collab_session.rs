//! The y-protocol message reader and a collaboration session's handling of what it reads:
//! any bytes a socket may send, as an editor or as a viewer. Errors are answers; a panic, a
//! hang or unbounded memory is a finding.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use quire_collab::{Collab, CollabConfig};
use quire_core::PresenceUser;
use quire_store::testing::{Backend, TestStore};

struct World {
    rt: tokio::runtime::Runtime,
    collab: Arc<Collab>,
    _store: TestStore,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // libfuzzer-sys aborts on every panic, even one Quire catches (a panic inside yrs's
        // decoder is a refused message); a panic that escapes still aborts the run.
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let store = rt.block_on(Backend::Sqlite.open(Default::default()));
        let config = CollabConfig { idle_timeout: std::time::Duration::ZERO, ..CollabConfig::default() };
        let collab = Collab::new(store.store.clone(), config);
        World { rt, collab, _store: store }
    })
}

static RUNS: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let Some((&mode, message)) = data.split_first() else { return };
    let w = world();
    // A fresh document every 500 inputs, so that one does not grow without end.
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let doc = format!("doc_fuzz_{}", n / 500);
    w.rt.block_on(async {
        let user = PresenceUser { id: format!("usr_{}", mode % 3), name: "Fuzz".into() };
        let (mut session, _first, _feed) = w.collab.join(&doc, mode & 1 == 1, user).await.expect("a room opens");
        let _ = session.handle(message).await;
        session.leave().await;
        if n % 500 == 499 {
            w.collab.evict_idle().await;
        }
    });
});
