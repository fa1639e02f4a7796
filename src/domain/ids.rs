//! Prefixed, time-sortable identifiers.

/// A new id such as `usr_0193…`: the prefix, then a UUIDv7 in lower-case
/// hex, so ids sort by creation time.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_sort_by_creation() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("usr")).collect();
        assert!(
            ids.iter()
                .all(|id| id.starts_with("usr_") && id.len() == 36)
        );
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
