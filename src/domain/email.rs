//! Email addresses, checked one way for every place that takes one (contacts, the admin
//! notice list), so that an address accepted there can always be sent to.

/// Whether `text` is an address hookd can send to: at most 254 characters (the longest
/// path a mail server must accept, RFC 5321), one `@` between a local part and a domain
/// with a dot, and an address the mail library parses (so building the message never fails
/// on it). Whether it is deliverable is for the mail server to say.
pub fn is_address(text: &str) -> bool {
    text.len() <= 254
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && text.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && text.parse::<lettre::Address>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::is_address;

    #[test]
    fn an_address_needs_a_local_part_a_dotted_domain_and_a_form_mail_can_carry() {
        for good in [
            "a.b+c@clinic.example",
            "Ada@Example.org",
            "o'neil@clinic.example",
        ] {
            assert!(is_address(good), "{good}");
        }
        for bad in [
            "",
            "ada",
            "@example.org",
            "ada@",
            "ada@org",
            "a b@x.org",
            "ada@x@y.org",
            "a@.ch",
            "a@b.ch.",
            "<a@b.ch>",
            "a;b@clinic.example",
            "a,b@clinic.example",
            "a\"b@clinic.example",
            "a(b)@clinic.example",
            "a\u{7}b@clinic.example",
        ] {
            assert!(!is_address(bad), "{bad:?}");
        }
        let long = format!("{}@clinic.example", "a".repeat(240));
        assert!(!is_address(&long), "longer than 254 characters");
    }
}
