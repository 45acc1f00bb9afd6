//! Integer and number cells: signs, group and decimal characters, `bareNumber`, and the short
//! decimals the fast path reads without the general float parser.

/// Options of number and integer fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberFormat {
    pub decimal_char: char,
    pub group_char: Option<char>,
    /// False allows leading and trailing non-numeric text such as "€" or "%".
    pub bare_number: bool,
}

impl Default for NumberFormat {
    fn default() -> Self {
        NumberFormat {
            decimal_char: '.',
            group_char: None,
            bare_number: true,
        }
    }
}

/// Strip non-numeric text around a number when `bareNumber` is false.
#[inline]
fn strip_non_bare<'a>(cell: &'a str, format: &NumberFormat) -> &'a str {
    if format.bare_number {
        return cell;
    }
    let is_numeric =
        |c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == format.decimal_char;
    let start = cell
        .find(|c: char| c.is_ascii_digit() || c == '-' || c == '+')
        .unwrap_or(cell.len());
    let end = cell
        .rfind(|c: char| c.is_ascii_digit())
        .map(|i| i + 1)
        .unwrap_or(start);
    let inner = &cell[start..end.max(start)];
    if inner.chars().next().is_some_and(is_numeric) {
        inner
    } else {
        cell
    }
}

/// Digits with an optional sign and group characters between digits.
#[inline]
pub(super) fn parse_integer(cell: &str, format: &NumberFormat) -> Option<i128> {
    let text = strip_non_bare(cell, format);
    match format.group_char {
        Some(group) if text.contains(group) => {
            let plain: String = text.chars().filter(|c| *c != group).collect();
            parse_plain_int(&plain)
        }
        _ => parse_plain_int(text),
    }
}

#[inline]
pub(super) fn parse_plain_int(text: &str) -> Option<i128> {
    parse_plain_int_bytes(text.as_bytes())
}

/// An optional sign and digits.
#[inline]
pub(crate) fn parse_plain_int_bytes(bytes: &[u8]) -> Option<i128> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        all => (false, all),
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() > 18 {
        return parse_long_int(negative, digits);
    }
    // One pass for the usual case, in 64 bits while they surely hold the value.
    let mut value: u64 = 0;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    let value = i128::from(value);
    Some(if negative { -value } else { value })
}

/// More than 18 digits: rare, so out of line.
#[cold]
#[inline(never)]
fn parse_long_int(negative: bool, digits: &[u8]) -> Option<i128> {
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // i128 holds 38 significant digits, and some of 39; past that the value does not fit
    // (leading zeros do not count).
    // Negative values build downwards: i128::MIN has no positive counterpart.
    let mut value: i128 = 0;
    for &b in digits {
        let digit = i128::from(b - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// Decimal notation with an optional exponent, or NaN / INF / -INF (the spec's spellings).
#[inline]
pub(super) fn parse_number(cell: &str, format: &NumberFormat) -> Option<f64> {
    let text = strip_non_bare(cell, format);
    let plain_format = format.decimal_char == '.' && format.group_char.is_none();
    if plain_format {
        if let Some(value) = parse_short_decimal(text.as_bytes()) {
            return Some(value);
        }
    }
    match text {
        "NaN" => return Some(f64::NAN),
        "INF" | "+INF" => return Some(f64::INFINITY),
        "-INF" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if plain_format {
        return is_decimal_notation(text)
            .then(|| text.parse().ok())
            .flatten();
    }
    let plain: String = text
        .chars()
        .filter(|c| Some(*c) != format.group_char)
        .map(|c| if c == format.decimal_char { '.' } else { c })
        .collect();
    is_decimal_notation(&plain)
        .then(|| plain.parse().ok())
        .flatten()
}

/// The common case `[+-]digits[.digits]` with at most 15 digits, without the general float
/// parser: the digits and the power of ten are both exact in an `f64`, so one division gives
/// the correctly rounded value, the same one `str::parse` gives. `None`: use the general path.
#[inline]
fn parse_short_decimal(text: &[u8]) -> Option<f64> {
    short_decimal(text).map(ShortDecimal::to_f64)
}

/// [`parse_short_decimal`]'s digits, before the division.
#[inline]
pub(crate) fn short_decimal(text: &[u8]) -> Option<ShortDecimal> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        bytes => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut count = 0;
    let mut point = None;
    for (i, &byte) in digits.iter().enumerate() {
        match byte {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(byte - b'0');
                count += 1;
            }
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    if count == 0 || count > 15 {
        return None;
    }
    let fraction_digits = point.map_or(0, |p| digits.len() - 1 - p);
    Some(ShortDecimal {
        negative,
        mantissa,
        fraction_digits,
    })
}

/// `[+-]digits[.digits]` with at most 15 digits: exactly `±mantissa / 10^fraction_digits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShortDecimal {
    pub negative: bool,
    pub mantissa: u64,
    pub fraction_digits: usize,
}

impl ShortDecimal {
    /// The nearest `f64`: the digits and the power of ten are both exact, so one division
    /// rounds correctly.
    #[inline]
    pub fn to_f64(self) -> f64 {
        const POWERS_OF_TEN: [f64; 16] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        ];
        let magnitude = self.mantissa as f64 / POWERS_OF_TEN[self.fraction_digits];
        if self.negative {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// `[+-]digits[.digits][(e|E)[+-]digits]`, with digits on at least one side of the point.
/// Rust's float parser alone would also take "inf" and "infinity", which the spec does not.
pub(super) fn is_decimal_notation(text: &str) -> bool {
    let bytes = text.strip_prefix(['+', '-']).unwrap_or(text).as_bytes();
    let mut i = 0;
    let int_digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == bytes.len()
}

#[cfg(test)]
mod tests {
    use super::super::{FieldType, Value};
    use super::*;

    #[test]
    fn short_decimals_parse_exactly_as_the_general_parser_does() {
        let mut inputs: Vec<String> = [
            "0",
            "-0",
            "+0.0",
            ".5",
            "5.",
            "0.1",
            "0.3",
            "-2.675",
            "123456789012345",
            "99999999999999.9",
            "0.00000000000001",
            "4952.59",
            "1.79769313486231",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let digits = (seed % 10_u64.pow((seed >> 59) as u32 % 15 + 1)).to_string();
            let point = (seed >> 40) as usize % (digits.len() + 1);
            inputs.push(format!("{}.{}", &digits[..point], &digits[point..]));
        }
        for input in &inputs {
            let expected: f64 = input.parse().unwrap();
            let parsed = parse_short_decimal(input.as_bytes()).expect(input);
            assert_eq!(parsed.to_bits(), expected.to_bits(), "{input}");
        }
        for too_long_or_not_short in ["1234567890123456", "1e5", "1.2.3", "", "-", ".", "1_0"] {
            assert_eq!(
                parse_short_decimal(too_long_or_not_short.as_bytes()),
                None,
                "{too_long_or_not_short}"
            );
        }
    }

    fn number() -> FieldType {
        FieldType::Number(NumberFormat::default())
    }

    #[test]
    fn integers() {
        let t = FieldType::Integer(NumberFormat::default());
        assert_eq!(t.parse("42"), Some(Value::Integer(42)));
        assert_eq!(t.parse("-7"), Some(Value::Integer(-7)));
        assert_eq!(t.parse("+7"), Some(Value::Integer(7)));
        for bad in ["1x3", "1.0", "", "-", "1 000", " 1"] {
            assert_eq!(t.parse(bad), None, "{bad}");
        }
        // Past 18 digits, up to the ends of i128 and not beyond.
        for long in [
            i128::MAX.to_string(),
            i128::MIN.to_string(),
            format!("-{}", "9".repeat(38)),
            format!("{}{}", "0".repeat(40), "12"),
        ] {
            assert_eq!(
                t.parse(&long),
                Some(Value::Integer(long.parse().unwrap())),
                "{long}"
            );
        }
        for too_long in [
            "170141183460469231731687303715884105728",
            "-170141183460469231731687303715884105729",
            "1234567890123456789012345678901234567890",
            "12345678901234567890x",
        ] {
            assert_eq!(t.parse(too_long), None, "{too_long}");
        }
        let grouped = FieldType::Integer(NumberFormat {
            group_char: Some(','),
            ..Default::default()
        });
        assert_eq!(grouped.parse("1,000,000"), Some(Value::Integer(1_000_000)));
        let loose = FieldType::Integer(NumberFormat {
            bare_number: false,
            ..Default::default()
        });
        assert_eq!(loose.parse("€95"), Some(Value::Integer(95)));
        assert_eq!(loose.parse("95%"), Some(Value::Integer(95)));
    }

    #[test]
    fn numbers() {
        assert_eq!(number().parse("1.5"), Some(Value::Number(1.5)));
        assert_eq!(number().parse("-1e3"), Some(Value::Number(-1000.0)));
        assert_eq!(number().parse(".5"), Some(Value::Number(0.5)));
        assert_eq!(number().parse("INF"), Some(Value::Number(f64::INFINITY)));
        assert!(matches!(number().parse("NaN"), Some(Value::Number(n)) if n.is_nan()));
        for bad in ["inf", "infinity", "nan", "1e", "1,5", "abc", "", "."] {
            assert_eq!(number().parse(bad), None, "{bad}");
        }
        let european = FieldType::Number(NumberFormat {
            decimal_char: ',',
            group_char: Some('.'),
            bare_number: true,
        });
        assert_eq!(european.parse("1.234,5"), Some(Value::Number(1234.5)));
    }
}
