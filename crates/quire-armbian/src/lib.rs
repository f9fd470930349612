//! An Armbian build framework checkout as Quire reads it: the boards (`config/boards`), the
//! families they belong to (`config/sources/families`, for their architecture) and the
//! releases (`config/distributions`). The board-configuration schema is derived from this
//! (issue 20); nothing here runs Armbian's code, and nothing of it is copied: board files
//! are read the way Armbian's own `armbian_utils.py` reads them, as top-level
//! `KEY="value"` lines.

pub mod schema;
pub mod tree;

pub use schema::schema;
pub use tree::{Board, BoardSupport, Release, ReleaseSupport, Tree, TreeError};
