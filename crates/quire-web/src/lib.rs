//! Quire's web app, embedded: the files Vite built from `web/` when this crate was compiled
//! (see `build.rs`). Knows nothing of HTTP; `quire-server` serves them.

/// One file of the built web app.
#[derive(Debug)]
pub struct Asset {
    /// Its path under `/`, e.g. `/assets/index-3f2a9c1b.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    /// The same bytes gzip-compressed, when that is smaller.
    pub gzip: Option<&'static [u8]>,
    /// Its name carries a hash of its content (Vite's `assets/`): it never changes, so it
    /// may be cached for good.
    pub immutable: bool,
}

static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The file at `path` (starting with `/`), if the web app has one.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.binary_search_by(|a| a.path.cmp(path)).ok().map(|i| &ASSETS[i])
}

/// The app's page, `index.html`: the answer to every client-side route.
pub fn index() -> &'static Asset {
    asset("/index.html").expect("the web app's build has an index.html (checked when built)")
}

/// Every file, sorted by path.
pub fn assets() -> &'static [Asset] {
    ASSETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_app_is_embedded_and_found_by_path() {
        let index = index();
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(!index.immutable, "index.html must never be cached for good");
        let page = std::str::from_utf8(index.bytes).unwrap();
        // Every script and style the page loads is embedded, under a hashed name.
        let mut referenced = 0;
        for part in page.split("\"/assets/").skip(1) {
            let path = format!("/assets/{}", &part[..part.find('"').unwrap()]);
            let file = asset(&path).unwrap_or_else(|| panic!("{path} is referenced by index.html but not embedded"));
            assert!(file.immutable);
            referenced += 1;
        }
        assert!(referenced >= 2, "index.html loads a script and a style sheet: {page}");
        assert!(asset("/nope.js").is_none());
        // Sorted, so that lookups by binary search find every file.
        assert!(assets().windows(2).all(|w| w[0].path < w[1].path));
        for a in assets() {
            assert_eq!(asset(a.path).map(|f| f.path), Some(a.path));
        }
    }

    #[test]
    fn gzip_copies_hold_the_same_bytes() {
        use std::io::Read as _;
        let mut compressed = 0;
        for a in assets() {
            if let Some(z) = a.gzip {
                let mut plain = Vec::new();
                flate2::read::GzDecoder::new(z).read_to_end(&mut plain).unwrap();
                assert_eq!(plain, a.bytes, "{}", a.path);
                assert!(z.len() < a.bytes.len());
                compressed += 1;
            }
        }
        assert!(compressed >= 2, "scripts and styles are sent compressed");
    }
}
