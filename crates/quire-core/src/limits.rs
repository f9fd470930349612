/// Bounds on sizes and counts. Every one is a setting; these are the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest document title, in characters.
    pub max_title_chars: usize,
    /// Longest workspace name, in characters.
    pub max_name_chars: usize,
    /// Longest workspace description, in characters.
    pub max_description_chars: usize,
    /// Largest metadata object, in bytes of compact JSON.
    pub max_metadata_bytes: usize,
    /// Most workspaces an instance holds (deleted ones count until purged).
    pub max_workspaces: i64,
    /// Most documents a workspace holds (deleted ones count until purged).
    pub max_documents_per_workspace: i64,
    /// Largest page a list returns.
    pub max_page_size: u32,
    /// Page size when the client names none.
    pub default_page_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_title_chars: 500,
            max_name_chars: 200,
            max_description_chars: 10_000,
            max_metadata_bytes: 64 * 1024,
            max_workspaces: 10_000,
            max_documents_per_workspace: 100_000,
            max_page_size: 200,
            default_page_size: 50,
        }
    }
}
