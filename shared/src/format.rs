//! Numbers as people read them: sizes, counts with their noun, digit groups. The dashboard
//! and the command line say sizes and counts the same way.

/// 1234567 bytes → "1.2 MB" (powers of 1000, as file managers show them).
pub fn human_size(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// (1, "error") → "1 error"; (5000, "error") → "5,000 errors".
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{} {word}s", group(n))
    }
}

/// 5000 → "5,000".
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_say_them() {
        assert_eq!(group(5000), "5,000");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(plural(1, "error"), "1 error");
        assert_eq!(plural(5000, "error"), "5,000 errors");
        assert_eq!(human_size(999.0), "999 B");
        assert_eq!(human_size(1_234_567.0), "1.2 MB");
    }
}
