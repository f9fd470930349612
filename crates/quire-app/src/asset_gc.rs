//! The collector of unreferenced assets: a nightly system context (`assets_gc`, scheduled as
//! `assets.gc`) that visits every workspace holding assets. An asset kept longer ago than the
//! grace period and named by nothing of its workspace — no document's content (live or in the
//! trash), no version in a document's history, no context's data (but for the asset store's
//! own thumbnail contexts) — is marked unreferenced; one
//! that has stayed so for the grace period is removed: its record (freeing the quota), then its
//! objects, the original and thumbnails, unless another workspace still holds them (objects
//! are shared by hash). Anything naming a marked asset again clears its mark.
//!
//! A workspace in the trash keeps all its assets until it is restored or purged.
//!
//! Names are found by hash: any run of exactly 64 hex digits in a text that is a candidate's
//! SHA-256. Every document kind, version and context is read the same way, so a kind that
//! starts naming images (a PRD embedding one) needs nothing here.
//!
//! An upload of the very same bytes into another workspace at the instant its object is
//! deleted leaves that upload without its object; uploading it again puts it back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use quire_collab::Collab;
use quire_core::{Principal, Result};
use quire_jobs::{Component, ComponentError, ComponentInfo, Run};
use quire_store::Store;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::assets::Assets;

/// The component's name.
pub const COMPONENT: &str = "assets_gc";
/// The schedule that runs it.
pub const SCHEDULE: &str = "assets.gc";
/// How long an asset stays after nothing names it, by default (and how old it must be).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(7 * 86_400);
/// The longest grace period the component takes, in hours (ten years).
const MAX_GRACE_HOURS: u64 = 87_600;
/// Rows read per page while looking for names.
const PAGE: u32 = 200;

/// What one collection did, in all workspaces.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Collected {
    pub workspaces: u32,
    /// Assets nothing names, newly marked.
    pub marked: u32,
    /// Marked assets named again, their mark cleared.
    pub cleared: u32,
    /// Records removed.
    pub removed: u32,
    /// Objects deleted from the asset store (originals and thumbnails no one holds).
    pub objects_deleted: u32,
    pub bytes_freed: i64,
}

/// Collects every workspace's unreferenced assets as of `now_ms`.
pub async fn collect(
    store: &Arc<dyn Store>,
    collab: &Arc<Collab>,
    assets: &Assets,
    now_ms: i64,
    grace: Duration,
) -> Result<Collected> {
    let cut = now_ms - grace.as_millis() as i64;
    let mut out = Collected::default();
    for ws in store.asset_workspaces().await? {
        out.workspaces += 1;
        let candidates = store.assets_kept_before(&ws, cut).await?;
        if candidates.is_empty() {
            continue;
        }
        let wanted: HashSet<&str> = candidates.iter().map(|(sha, _)| sha.as_str()).collect();
        let named = match store.get_workspace(&Principal::System, &ws, true).await {
            // In the trash: kept whole, to be restored or purged with it.
            Ok(w) if w.deleted_at.is_some() => continue,
            Ok(_) => names(store, collab, &ws, &wanted).await?,
            // Purged: nothing of it can name anything.
            Err(quire_core::Error::NotFound { .. }) => HashSet::new(),
            Err(e) => return Err(e),
        };
        let (mut clear, mut mark, mut drop) = (Vec::new(), Vec::new(), Vec::new());
        for (sha, since) in candidates {
            match (named.contains(&sha), since) {
                (true, Some(_)) => clear.push(sha),
                (true, None) => {}
                (false, since) => {
                    if since.is_none() {
                        mark.push(sha.clone());
                    }
                    if since.unwrap_or(now_ms) <= cut {
                        drop.push(sha);
                    }
                }
            }
        }
        store.set_assets_unreferenced(&ws, &clear, None).await?;
        store.set_assets_unreferenced(&ws, &mark, Some(now_ms)).await?;
        out.cleared += clear.len() as u32;
        out.marked += mark.len() as u32;
        for sha in drop {
            let Some(asset) = store.drop_asset(&ws, &sha, cut).await? else { continue };
            out.removed += 1;
            let (objects, bytes) = assets.delete_unheld(&asset).await?;
            out.objects_deleted += objects;
            out.bytes_freed += bytes;
            tracing::info!(workspace = %ws, asset = %sha, objects, "removed an asset nothing named");
        }
    }
    Ok(out)
}

/// Which of `wanted` the workspace's documents, their versions and its contexts name.
async fn names(
    store: &Arc<dyn Store>,
    collab: &Arc<Collab>,
    ws: &str,
    wanted: &HashSet<&str>,
) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    let limits = quire_core::Limits::default();
    for deleted in [false, true] {
        let mut cursor: Option<String> = None;
        loop {
            let query = quire_core::DocumentQuery::new(
                None,
                None,
                Some("created_at"),
                Some(PAGE),
                cursor.as_deref(),
                deleted,
                &limits,
            )?;
            let page = store.list_documents(&Principal::System, ws, &query).await?;
            for doc in &page.items {
                let content = collab.read(&doc.id, |d| quire_collab::content::read_json(d, doc.kind)).await?;
                scan(&content.to_string(), wanted, &mut found);
            }
            if found.len() == wanted.len() {
                return Ok(found);
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    let mut after = None;
    loop {
        let versions = store.versions_in_order(ws, after, PAGE).await?;
        for (_, content) in &versions {
            scan(content, wanted, &mut found);
        }
        match versions.last() {
            Some((v, _)) if versions.len() == PAGE as usize => {
                after = Some((quire_core::ms_of(&v.created_at), v.document_id.clone(), v.seq))
            }
            _ => break,
        }
    }
    let mut cursor: Option<String> = None;
    loop {
        let page = quire_core::PageRequest::parse(
            Some("created_at"),
            "created_at",
            "type",
            Some(PAGE),
            cursor.as_deref(),
            &limits,
        )?;
        let query = quire_core::ContextQuery {
            workspace: Some(ws.to_string()),
            status: None,
            kind: None,
            document: None,
            page,
        };
        let page = store.list_contexts(&Principal::System, &query).await?;
        // The asset store's own contexts (thumbnails) name every image they work on: no use.
        for ctx in page.items.iter().filter(|c| c.queue != crate::assets::QUEUE) {
            scan(&Value::Object(ctx.data.clone()).to_string(), wanted, &mut found);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(found)
}

/// Adds to `found` each of `wanted` that `text` names: a run of exactly 64 lower-case hex
/// digits.
fn scan(text: &str, wanted: &HashSet<&str>, found: &mut HashSet<String>) {
    let bytes = text.as_bytes();
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let mut i = 0;
    while i < bytes.len() {
        if !hex(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && hex(bytes[i]) {
            i += 1;
        }
        if i - start == 64 {
            let sha = &text[start..i];
            if wanted.contains(sha) {
                found.insert(sha.to_string());
            }
        }
    }
}

/// `assets_gc`, for the registry: `data.grace_hours` (168, a week, by default).
pub struct AssetsGc {
    pub collab: Arc<Collab>,
    pub assets: Arc<Assets>,
}

#[async_trait]
impl Component for AssetsGc {
    fn info(&self) -> ComponentInfo {
        ComponentInfo::new(
            COMPONENT,
            "Removes images nothing has named (no document, version or context) for data.grace_hours hours, \
             and their files once no workspace holds them",
            &["grace_hours"],
            &["assets_gc"],
        )
        .system_only()
    }

    async fn run(&self, run: Run) -> std::result::Result<Map<String, Value>, ComponentError> {
        let hours = match run.data().get("grace_hours") {
            None | Some(Value::Null) => DEFAULT_GRACE.as_secs() / 3600,
            Some(v) => v.as_u64().filter(|h| *h <= MAX_GRACE_HOURS).ok_or_else(|| {
                ComponentError::permanent(
                    "invalid_input",
                    format!("data.grace_hours must be a whole number from 0 to {MAX_GRACE_HOURS}"),
                )
            })?,
        };
        let grace = Duration::from_secs(hours * 3600);
        let done = collect(run.store(), &self.collab, &self.assets, run.now_ms(), grace).await?;
        run.progress(100.0, format!("{} image(s) removed, {} newly unreferenced", done.removed, done.marked)).await;
        let mut out = Map::new();
        out.insert("assets_gc".into(), json!(done));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_whole_runs_of_64_hex_digits_that_are_wanted() {
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let wanted: HashSet<&str> = [a.as_str(), b.as_str(), c.as_str()].into();
        let text = format!(
            r#"{{"asset":"{a}","url":"/api/v1/workspaces/ws/assets/{b}/small","longer":"{c}0","upper":"{}"}}"#,
            c.to_uppercase()
        );
        let mut found = HashSet::new();
        scan(&text, &wanted, &mut found);
        assert_eq!(found, [a.clone(), b.clone()].into(), "not inside a longer run, not upper-case");
        let mut none = HashSet::new();
        scan("no hashes here, only words and 1234", &wanted, &mut none);
        assert!(none.is_empty());
    }
}
