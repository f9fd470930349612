//! Cursor pagination: keyset cursors over `(sort key, id)`, so pages stay stable while rows
//! are inserted and deleted, and every page costs one index range scan.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{DocumentKind, Error, Limits, Result};

/// One page of a listing. `next_cursor` is absent on the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The column a listing is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    UpdatedAt,
    /// The title of a document or the name of a workspace.
    Name,
}

/// An ordering: a field and a direction, written `field` or `-field` (descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Sort {
    /// Parses `created_at`, `-updated_at`, … ; `name_word` is what the listing calls its
    /// name column (`title` for documents, `name` for workspaces).
    pub fn parse(s: &str, name_word: &str) -> Result<Sort> {
        let (descending, field) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let field = match field {
            "created_at" => SortField::CreatedAt,
            "updated_at" => SortField::UpdatedAt,
            f if f == name_word => SortField::Name,
            _ => {
                return Err(Error::invalid(
                    "sort",
                    format!(
                        "unknown sort '{s}'; use created_at, updated_at or {name_word}, with a leading '-' for descending"
                    ),
                ));
            }
        };
        Ok(Sort { field, descending })
    }

    fn label(&self) -> String {
        let f = match self.field {
            SortField::CreatedAt => "created_at",
            SortField::UpdatedAt => "updated_at",
            SortField::Name => "name",
        };
        if self.descending { format!("-{f}") } else { f.to_string() }
    }
}

/// The position after the last row of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// The sort key of the last row: an integer (times) or a string (names).
    pub key: Value,
    /// The id of the last row, the tie-breaker.
    pub id: String,
}

#[derive(Serialize, Deserialize)]
struct CursorWire {
    s: String,
    k: Value,
    i: String,
}

impl Cursor {
    /// An opaque token for this position under `sort`.
    pub fn encode(&self, sort: &Sort) -> String {
        let wire = CursorWire { s: sort.label(), k: self.key.clone(), i: self.id.clone() };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).expect("cursor serialises"))
    }

    /// Reads a token made by [`Cursor::encode`] for the same `sort`.
    pub fn decode(token: &str, sort: &Sort) -> Result<Cursor> {
        let bytes =
            URL_SAFE_NO_PAD.decode(token).map_err(|_| Error::BadCursor("not a cursor returned by this API".into()))?;
        let wire: CursorWire =
            serde_json::from_slice(&bytes).map_err(|_| Error::BadCursor("not a cursor returned by this API".into()))?;
        if wire.s != sort.label() {
            return Err(Error::BadCursor(format!("the cursor belongs to sort '{}', not '{}'", wire.s, sort.label())));
        }
        let key_ok = match sort.field {
            SortField::Name => wire.k.is_string(),
            _ => wire.k.is_i64(),
        };
        if !key_ok {
            return Err(Error::BadCursor("the cursor's key does not match its sort".into()));
        }
        Ok(Cursor { key: wire.k, id: wire.i })
    }
}

fn page_size(limit: Option<u32>, limits: &Limits) -> Result<u32> {
    match limit {
        None => Ok(limits.default_page_size),
        Some(0) => Err(Error::invalid("limit", "must be at least 1")),
        Some(n) if n > limits.max_page_size => {
            Err(Error::invalid("limit", format!("is {n}; the largest page is {}", limits.max_page_size)))
        }
        Some(n) => Ok(n),
    }
}

/// Which page of a listing: its order, its size and where it starts. Every listing has one.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub sort: Sort,
    pub limit: u32,
    /// Start after this position; `None` is the first page.
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// Validates the raw parameters; `name_word` is what the listing calls its name column.
    pub fn parse(
        sort: Option<&str>,
        default_sort: &str,
        name_word: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
        limits: &Limits,
    ) -> Result<Self> {
        let sort = Sort::parse(sort.unwrap_or(default_sort), name_word)?;
        let after = cursor.map(|c| Cursor::decode(c, &sort)).transpose()?;
        Ok(PageRequest { sort, limit: page_size(limit, limits)?, after })
    }
}

/// A validated request for a page of workspaces.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceQuery {
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    pub page: PageRequest,
    /// List deleted workspaces (the trash) instead of live ones.
    pub deleted: bool,
}

impl WorkspaceQuery {
    pub fn new(
        q: Option<String>,
        sort: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
        deleted: bool,
        limits: &Limits,
    ) -> Result<Self> {
        let page = PageRequest::parse(sort, "name", "name", limit, cursor, limits)?;
        Ok(WorkspaceQuery { q: non_empty(q), page, deleted })
    }
}

/// A validated request for a page of a workspace's documents.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentQuery {
    pub kind: Option<DocumentKind>,
    /// Case-insensitive substring of the title.
    pub q: Option<String>,
    pub page: PageRequest,
    /// List deleted documents (the trash) instead of live ones.
    pub deleted: bool,
}

impl DocumentQuery {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: Option<&str>,
        q: Option<String>,
        sort: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
        deleted: bool,
        limits: &Limits,
    ) -> Result<Self> {
        let kind = kind.map(str::parse).transpose()?;
        let page = PageRequest::parse(sort, "-updated_at", "title", limit, cursor, limits)?;
        Ok(DocumentQuery { kind, q: non_empty(q), page, deleted })
    }
}

fn non_empty(q: Option<String>) -> Option<String> {
    q.filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_sort() {
        let sort = Sort::parse("-updated_at", "title").unwrap();
        let c = Cursor { key: json!(1700000000000i64), id: "doc_x".into() };
        let token = c.encode(&sort);
        assert_eq!(Cursor::decode(&token, &sort).unwrap(), c);
        let other = Sort::parse("updated_at", "title").unwrap();
        assert!(matches!(Cursor::decode(&token, &other), Err(Error::BadCursor(_))));
        assert!(matches!(Cursor::decode("!!", &sort), Err(Error::BadCursor(_))));
        assert!(matches!(Cursor::decode("e30", &sort), Err(Error::BadCursor(_))));
    }

    #[test]
    fn sort_and_limit_are_validated() {
        let limits = Limits::default();
        assert!(Sort::parse("-title", "title").is_ok());
        assert!(Sort::parse("title", "name").is_err());
        assert!(Sort::parse("owner", "title").is_err());
        assert!(DocumentQuery::new(None, None, None, Some(0), None, false, &limits).is_err());
        assert!(DocumentQuery::new(None, None, None, Some(201), None, false, &limits).is_err());
        let q = DocumentQuery::new(Some("prd"), Some("  ".into()), None, None, None, false, &limits).unwrap();
        assert_eq!((q.kind, q.q, q.page.limit), (Some(DocumentKind::Prd), None, 50));
        assert!(DocumentQuery::new(Some("wiki"), None, None, None, None, false, &limits).is_err());
    }
}
