//! Keyset pages: a `limit` checked once, rows fetched one past it, and the
//! cursor of the next page given only when there is one.

use super::{Error, Result};

/// The page size when a caller names none.
pub const DEFAULT_PAGE: i32 = 50;
/// The largest page.
const MAX_PAGE: i32 = 200;

/// The rows to fetch for a page of `limit`: one more than the page, to
/// know whether another follows.
pub(crate) fn fetch_for(limit: Option<i32>) -> Result<u64> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        )));
    }
    Ok(limit as u64 + 1)
}

/// The page out of rows fetched with [`fetch_for`], and the next page's
/// cursor (the page's last id) when more rows follow.
pub(crate) fn page<T>(
    mut rows: Vec<T>,
    fetched: u64,
    id: impl Fn(&T) -> &str,
) -> (Vec<T>, Option<String>) {
    let limit = (fetched - 1) as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(|r| id(r).to_owned())
    } else {
        None
    };
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_say_when_more_follow() {
        assert!(fetch_for(Some(0)).is_err());
        assert!(fetch_for(Some(201)).is_err());
        assert_eq!(fetch_for(None).unwrap(), 51);
        let ids = |n: usize| (0..n).map(|i| format!("id{i}")).collect::<Vec<_>>();
        let fetched = fetch_for(Some(2)).unwrap();
        assert_eq!(
            page(ids(3), fetched, |s| s),
            (ids(2), Some("id1".to_owned()))
        );
        assert_eq!(page(ids(2), fetched, |s| s), (ids(2), None));
        assert_eq!(page(ids(0), fetched, |s| s), (vec![], None));
    }
}
