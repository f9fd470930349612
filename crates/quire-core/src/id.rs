/// A new identifier: a type prefix, an underscore and a lowercase ULID, e.g.
/// `doc_01jd3x0v7k8m2q4r5s6t7u8v9w`. ULIDs sort by creation time, so ids make stable
/// tie-breakers in cursor pagination.
pub fn new_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 27);
    id.push_str(prefix);
    id.push('_');
    id.push_str(&ulid::Ulid::generate().to_string().to_ascii_lowercase());
    id
}

/// The smallest id of `prefix` made at `ms` (milliseconds since the epoch): every id made
/// before sorts below it.
pub fn first_id_at(prefix: &str, ms: i64) -> String {
    let ulid = ulid::Ulid::from_parts(ms.max(0) as u64, 0);
    format!("{prefix}_{}", ulid.to_string().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_unique_and_time_ordered() {
        let a = super::new_id("doc");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::new_id("doc");
        assert!(a.starts_with("doc_") && a.len() == 30, "{a}");
        assert_ne!(a, b);
        assert!(a < b, "{a} should sort before {b}");
        let now = crate::now_ms();
        assert!(super::first_id_at("doc", now - 1000) < a && a < super::first_id_at("doc", now + 1000));
    }
}
