//! String formats: email, URI and UUID (a plain string takes any text).

/// A string field's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFormat {
    Default,
    Email,
    Uri,
    Uuid,
}

pub(super) fn check_string_format(format: StringFormat, cell: &str) -> bool {
    match format {
        StringFormat::Default => true,
        StringFormat::Email => is_email(cell),
        StringFormat::Uri => is_uri(cell),
        StringFormat::Uuid => is_uuid(cell),
    }
}

/// `local@domain.tld`: one '@', no spaces, a dot in the domain, no empty labels.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}

/// An absolute URI: a scheme (RFC 3986: letter, then letters, digits, + - .), a colon, no spaces.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// 8-4-4-4-12 hexadecimal digits.
fn is_uuid(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::super::FieldType;
    use super::*;

    #[test]
    fn string_formats() {
        let email = FieldType::String(StringFormat::Email);
        assert!(email.parse("ada@example.org").is_some());
        for bad in [
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a da@example.org",
            "a@b@c.org",
        ] {
            assert_eq!(email.parse(bad), None, "{bad}");
        }
        let uri = FieldType::String(StringFormat::Uri);
        assert!(uri.parse("https://example.org/x?y=1").is_some());
        assert!(uri.parse("mailto:ada@example.org").is_some());
        assert_eq!(uri.parse("example.org"), None);
        assert_eq!(uri.parse("http://exa mple.org"), None);
        let uuid = FieldType::String(StringFormat::Uuid);
        assert!(uuid.parse("123e4567-e89b-12d3-a456-426614174000").is_some());
        assert_eq!(uuid.parse("123e4567e89b12d3a456426614174000"), None);
    }
}
