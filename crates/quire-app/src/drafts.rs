//! AI drafts approved into their documents. A draft is a context whose pipeline generated
//! content for a PRD (`template` → `ai_generator` → `transformer`, submitted with
//! `data.document_id`); approving it writes the draft into the live collaborative document
//! as one change in the approver's name (everyone with the document open sees it appear),
//! records a version and raises `prd.approved`.

use std::sync::Arc;

use quire_core::{ContextStatus, DocumentKind, DocumentVersion, Error, PresenceUser, Principal, Result, Role};
use quire_store::Store;
use serde::Serialize;
use serde_json::{Value, json};

use crate::history::History;

/// What an approval did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Approval {
    /// The draft, with `approved_at` and `approved_by` set.
    pub context: quire_core::Context,
    pub document_id: String,
    /// The version the approval made; `null` when the document already held this draft.
    pub version: Option<DocumentVersion>,
    /// The id of the `prd.approved` event.
    pub event_id: i64,
}

pub struct Drafts {
    store: Arc<dyn Store>,
    collab: Arc<quire_collab::Collab>,
    history: Arc<History>,
}

impl Drafts {
    pub fn new(store: Arc<dyn Store>, collab: Arc<quire_collab::Collab>, history: Arc<History>) -> Drafts {
        Drafts { store, collab, history }
    }

    /// Writes the completed draft `context_id` into its document in `writer`'s name. Needs
    /// the editor role on the document; `Conflict` while the draft is not complete.
    pub async fn approve(&self, who: &Principal, writer: PresenceUser, context_id: &str) -> Result<Approval> {
        let ctx = self.store.get_context(who, context_id).await?;
        let Some(document_id) = ctx.data.get("document_id").and_then(Value::as_str).map(String::from) else {
            return Err(Error::invalid("document_id", "this context drafts no document (its data has no document_id)"));
        };
        let (doc, role) = self.store.role_on_document(who, &document_id).await?;
        if role < Role::Editor {
            return Err(Error::Forbidden("approving a draft into a document needs the editor role".into()));
        }
        if doc.kind != DocumentKind::Prd {
            return Err(Error::invalid("document_id", "only PRDs take drafts; this document is not one"));
        }
        match ctx.status {
            ContextStatus::Completed => {}
            ContextStatus::Failed | ContextStatus::Cancelled => {
                return Err(Error::Conflict(format!(
                    "this draft {} and has nothing to approve: regenerate it",
                    if ctx.status == ContextStatus::Failed { "failed" } else { "was cancelled" }
                )));
            }
            _ => {
                return Err(Error::Conflict(
                    "this draft is still being written: approve it once it is complete".into(),
                ));
            }
        }
        let markdown = draft_markdown(&ctx.data)
            .ok_or_else(|| Error::invalid("generated_content", "this context generated no content to approve"))?;
        let content = quire_collab::markdown::from_markdown(&markdown);
        let author = writer.id.clone();
        self.collab
            .edit(&doc.id, writer, move |d| quire_collab::content::write_json(d, DocumentKind::Prd, &content))
            .await?;
        let model = ctx.data.get("model_used").and_then(Value::as_str).unwrap_or("an AI model");
        let message = format!("Approved the AI draft by {model}");
        let version = self.history.version(&doc.id, &[author], Some(message)).await?;
        let data = json!({
            "context_id": ctx.id,
            "document_id": doc.id,
            "title": doc.title,
            "model_used": ctx.data.get("model_used"),
            "version": version.as_ref().map(|v| v.version.clone()),
        });
        let (ctx, event_id) = self.store.approve_context(who, &ctx.id, &doc.id, "prd.approved", data).await?;
        Ok(Approval { context: ctx, document_id: doc.id, version, event_id })
    }
}

/// The draft's Markdown: the transformer's rendering when the pipeline had one, else the
/// generated content rendered in the template's order.
pub fn draft_markdown(data: &serde_json::Map<String, Value>) -> Option<String> {
    if let Some(md) = data.get("formatted_content").and_then(|f| f.get("content")).and_then(Value::as_str) {
        return Some(md.to_string());
    }
    let content = data.get("generated_content")?;
    let outline = quire_jobs::components::outline_of(data.get("template"));
    Some(quire_jobs::components::render_markdown(data.get("title").and_then(Value::as_str), content, &outline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_is_the_transformers_markdown_or_else_its_content_rendered() {
        let formatted =
            json!({"formatted_content": {"content": "# T\n\n## Goals\n\nx"}, "generated_content": {"goals": "y"}});
        assert_eq!(draft_markdown(formatted.as_object().unwrap()).as_deref(), Some("# T\n\n## Goals\n\nx"));
        let raw = json!({"title": "T", "generated_content": {"goals": "goals text", "problem": "problem text"},
            "template": {"sections": [{"type": "problem"}, {"type": "goals"}]}});
        let md = draft_markdown(raw.as_object().unwrap()).unwrap();
        assert!(md.starts_with("# T"), "{md}");
        assert!(md.find("problem text").unwrap() < md.find("goals text").unwrap(), "in the template's order: {md}");
        assert_eq!(draft_markdown(json!({}).as_object().unwrap()), None);
    }
}
