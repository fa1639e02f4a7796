//! Prefixed, time-sortable identifiers.

/// A new id such as `usr_0193…`: the prefix, then a UUIDv7 in lower-case
/// hex, so ids sort by creation time.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// A new id like [`new_id`]'s that sorts after `after` (an id of the same
/// prefix) even when `after` was made by a process whose clock runs ahead
/// of this one's, or in the same millisecond: its time is then the
/// millisecond after `after`'s.
pub fn new_id_after(prefix: &str, after: Option<&str>) -> String {
    let id = new_id(prefix);
    let millis = after
        .filter(|after| id.as_str() <= *after)
        .and_then(|after| after.strip_prefix(prefix)?.strip_prefix('_'))
        .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
        .map(|u| (u.as_u128() >> 80) as u64);
    match millis {
        Some(millis) => {
            let random: [u8; 10] = rand::random();
            let later = uuid::Builder::from_unix_timestamp_millis(millis + 1, &random).into_uuid();
            format!("{prefix}_{}", later.simple())
        }
        None => id,
    }
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

    #[test]
    fn an_id_after_another_sorts_after_it() {
        // Made by a clock an hour ahead, and one made just now.
        let ahead = format!(
            "cev_{}",
            uuid::Builder::from_unix_timestamp_millis(
                (uuid::Uuid::now_v7().as_u128() >> 80) as u64 + 3_600_000,
                &[0xff; 10]
            )
            .into_uuid()
            .simple()
        );
        for after in [ahead.clone(), new_id("cev")] {
            let id = new_id_after("cev", Some(&after));
            assert!(id > after, "{id} not after {after}");
            assert!(id.starts_with("cev_") && id.len() == 36, "{id}");
            let version = uuid::Uuid::try_parse(&id[4..]).unwrap().get_version_num();
            assert_eq!(version, 7, "{id}");
        }
        let next = new_id_after("cev", Some(&ahead));
        assert_eq!(&next[..16], &new_id_after("cev", Some(&ahead))[..16]);
        assert!(new_id_after("cev", None).starts_with("cev_"));
    }
}
