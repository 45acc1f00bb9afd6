//! Numbers as people read them: sizes, counts with their noun, digit groups.

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

/// The part done, 0 to 1, for a progress bar (0 while the total is unknown).
pub fn fraction(done: f64, total: f64) -> f64 {
    if total > 0.0 {
        done / total
    } else {
        0.0
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
    // Native `cargo test` and, in headless Chromium, `cargo test --target wasm32-unknown-unknown`.
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn helpers() {
        assert_eq!(group(5000), "5,000");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(plural(1, "error"), "1 error");
        assert_eq!(plural(5000, "error"), "5,000 errors");
        assert_eq!(human_size(999.0), "999 B");
        assert_eq!(human_size(1_234_567.0), "1.2 MB");
    }
}
