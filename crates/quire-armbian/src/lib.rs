//! An Armbian build framework checkout as Quire reads it: the boards (`config/boards`), the
//! families they belong to (`config/sources/families`, for their architecture) and the
//! releases (`config/distributions`). The board-configuration schema is derived from this
//! (issue 20); nothing here runs Armbian's code, and nothing of it is copied: board files
//! are read the way Armbian's own `armbian_utils.py` reads them, as top-level
//! `KEY="value"` lines.

pub mod check;
pub mod log;
pub mod schema;
pub mod tree;

pub use check::{BadSchema, Checker, Problem, Severity};
pub use schema::schema;
pub use tree::{Board, BoardSupport, Release, ReleaseSupport, Tree, TreeError};

/// The Armbian commit of the configuration snapshot Quire ships a schema for.
pub const SNAPSHOT: &str = "82a0c923f9";

/// The schema of [`SNAPSHOT`], as shipped (`schemas/armbian-<commit>.json`, generated from the
/// snapshot and checked against it by the tests).
pub fn shipped() -> &'static str {
    include_str!("../schemas/armbian-82a0c923f9.json")
}
