//! Checks on free text and ids from callers: characters that would corrupt
//! a query (NUL is refused by PostgreSQL), hide what a string says
//! (bidirectional overrides, zero-width characters) or fold into another
//! string (Unicode case folding of email local parts).

use super::{Error, Result};

/// The longest id accepted anywhere.
const MAX_ID_LEN: usize = 128;

/// Whether `c` may not appear in caller-given text: control characters,
/// bidirectional embeddings, overrides and isolates, and zero-width
/// characters.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}' // embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{FEFF}' // zero-width no-break space
        )
}

/// Whether `value` has no control, bidirectional-override or zero-width
/// character. Text that is all printable ASCII (tokens, ids: the common
/// case, hundreds of bytes on every verify) passes a branch-free scan that
/// the compiler vectorises; anything else is checked character by
/// character.
pub fn is_visible(value: &str) -> bool {
    is_printable_ascii(value.as_bytes()) || !value.chars().any(is_hidden)
}

/// Whether every byte is printable ASCII (0x20..=0x7E).
fn is_printable_ascii(bytes: &[u8]) -> bool {
    // No early exit inside a chunk, so each chunk is one vector loop.
    bytes.chunks(64).all(|chunk| {
        chunk
            .iter()
            .fold(true, |ok, &b| ok & (b.wrapping_sub(0x20) < 0x5F))
    })
}

/// Refuses text with control, bidirectional-override or zero-width
/// characters; the message names the field.
pub fn check_visible(field: &str, value: &str) -> Result<()> {
    if !is_visible(value) {
        return Err(Error::invalid(format!(
            "{field} contains a control, bidirectional-override or zero-width character"
        )));
    }
    Ok(())
}

/// An id given by a caller: 1 to 128 visible characters.
pub fn check_id(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{field} is required")));
    }
    if value.len() > MAX_ID_LEN {
        return Err(Error::invalid(format!(
            "{field} is longer than {MAX_ID_LEN} bytes"
        )));
    }
    check_visible(field, value)
}

/// The key under which an email is unique and looked up: the local part
/// with ASCII letters lower-cased (and nothing else folded, so that e.g.
/// the Kelvin sign does not become `k`), `@`, and the domain in its IDNA
/// ASCII form, lower-cased. `email` has passed `normalize_email`.
pub fn email_key(email: &str) -> Result<String> {
    let (local, domain) = email
        .rsplit_once('@')
        .ok_or_else(|| Error::invalid(format!("email {email:?} has no domain")))?;
    let domain = idna::domain_to_ascii_strict(domain).map_err(|_| {
        Error::invalid(format!(
            "the domain of email {email:?} is not a valid domain name"
        ))
    })?;
    Ok(format!(
        "{}@{}",
        local.to_ascii_lowercase(),
        domain.to_ascii_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunked scan finds a hidden byte wherever it falls in a long
    /// token: first, last, either side of a chunk's edge.
    #[test]
    fn a_hidden_byte_is_found_anywhere_in_a_long_token() {
        let token = "eyJ".repeat(100);
        assert!(is_visible(&token));
        for at in [0, 1, 63, 64, 65, 127, 128, 200, 299] {
            for bad in ['\0', '\u{1F}', '\u{7F}', '\u{9F}', '\u{202E}'] {
                let mut s = token.clone();
                s.replace_range(at..at + 1, &bad.to_string());
                assert!(!is_visible(&s), "{bad:?} at {at}");
            }
            let mut s = token.clone();
            s.replace_range(at..at + 1, "é");
            assert!(is_visible(&s), "é at {at}");
        }
    }

    #[test]
    fn hidden_characters_are_refused() {
        assert!(check_visible("f", "plain text, ünïcode ✓").is_ok());
        for bad in [
            "a\0b",
            "a\u{7}",
            "x\u{202E}y",
            "x\u{200B}",
            "\u{FEFF}x",
            "a\u{2066}b",
        ] {
            assert!(check_visible("f", bad).is_err(), "{bad:?}");
        }
        assert!(check_id("user_id", "").is_err());
        assert!(check_id("user_id", &"x".repeat(129)).is_err());
        assert!(check_id("user_id", "usr_\0").is_err());
    }

    #[test]
    fn emails_fold_ascii_case_and_idna_domains() {
        assert_eq!(email_key("Kate@Example.COM").unwrap(), "kate@example.com");
        // The Kelvin sign is not the letter k.
        assert_ne!(
            email_key("\u{212A}ate@example.com").unwrap(),
            "kate@example.com"
        );
        assert_eq!(
            email_key("ann@Bücher.example").unwrap(),
            "ann@xn--bcher-kva.example"
        );
        assert!(email_key("a@exa mple.com").is_err());
    }
}
