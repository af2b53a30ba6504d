//! RFC 8785 JSON Canonicalization Scheme (JCS): one byte string for one JSON value, the same
//! one any conforming implementation produces, so a signature or hash over it can be checked
//! elsewhere. A leaf: it knows only `serde_json`.
//!
//! One deliberate departure, for integers outside ±2^53: `serde_json` holds them exactly as
//! `i64`/`u64`, and they are written exactly, where an ECMAScript implementation would first
//! round them to the nearest double. Values meant for other verifiers should keep integers
//! within ±2^53, as RFC 8785 §3.2.2.3 advises (I-JSON).

use serde_json::{Number, Value};

/// The RFC 8785 canonical text of `value`: object members sorted by the UTF-16 code units of
/// their names (§3.2.3), no whitespace, strings escaped only where §3.2.2.2 requires, numbers
/// written as ECMAScript's `Number.prototype.toString` writes them (§3.2.2.3).
///
/// Never fails: a `serde_json::Value` cannot hold NaN or an infinity, the only numbers JCS
/// refuses, nor a lone surrogate.
pub(crate) fn jcs(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // UTF-16 order differs from UTF-8 (byte) order above U+FFFF: a surrogate pair
            // (0xD800..0xDFFF) sorts before U+E000..U+FFFF, whose UTF-8 bytes are smaller.
            members.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (name, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

/// §3.2.2.2: `"` and `\` escaped, U+0000..U+001F as the short forms where JSON has them and as
/// `\u00xx` (lowercase hex) otherwise; every other character literally, in UTF-8.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(n: &Number, out: &mut String) {
    if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(f) = n.as_f64() {
        write_double(f, out);
    }
}

/// ECMAScript `Number::toString(x)` (ECMA-262 §6.1.6.1.20) for a finite double: plain notation
/// for 1e-6 <= |x| < 1e21, `d.ddde±n` outside it; `-0` is written `0`.
fn write_double(x: f64, out: &mut String) {
    if x == 0.0 {
        out.push('0');
        return;
    }
    if x < 0.0 {
        out.push('-');
    }
    // In ECMA-262's terms: |x| = 0.digits × 10^n, with k digits.
    let (digits, n) = ecmascript_digits(x.abs());
    let k = digits.len() as i32;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n - 1 > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
}

/// The digits ECMAScript writes for `x > 0`, as `(digits, n)` with x = 0.digits × 10^n: the
/// fewest that read back as x, of those the nearest to x, and of two equally near the even one.
fn ecmascript_digits(x: f64) -> (String, i32) {
    // Rust's `{:e}` gives the fewest digits, nearest to x, but may break an exact tie upward.
    let (digits, n) = digits_of(&format!("{x:e}"));
    // A tie means x's exact value (767 significant digits always hold a double) has one digit
    // more, a 5: then both neighbours are equally near, and the even one may read back too.
    let (exact, exact_n) = digits_of(&format!("{x:.766e}"));
    if exact.len() == digits.len() + 1 && exact.ends_with('5') {
        let low: u64 = exact[..digits.len()].parse().expect("a tie has at most 17 digits");
        let even = (low + low % 2).to_string();
        let even_n = exact_n + (even.len() - digits.len()) as i32;
        let even = even.trim_end_matches('0').to_owned();
        let back: f64 = format!("0.{even}e{even_n}").parse().expect("digits and an exponent parse");
        if back.to_bits() == x.to_bits() {
            return (even, even_n);
        }
    }
    (digits, n)
}

/// `d[.ddd]e<exp>` as `(significant digits without trailing zeros, exp + 1)`.
fn digits_of(sci: &str) -> (String, i32) {
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` writes a decimal exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let digits = digits.trim_end_matches('0');
    (if digits.is_empty() { "0" } else { digits }.to_owned(), exp + 1)
}

#[cfg(test)]
mod tests {
    use super::jcs;
    use serde_json::{Value, json};

    fn double(bits: u64) -> String {
        jcs(&Value::from(f64::from_bits(bits)))
    }

    #[test]
    fn members_sort_by_utf16_code_units_as_in_rfc_8785_section_3_2_3() {
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let value: Value = serde_json::from_str(input).unwrap();
        let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
            \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
            \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(jcs(&value), want);
    }

    #[test]
    fn the_rfc_8785_section_3_2_2_example_canonicalizes_to_its_published_text() {
        // serde_json's default float parser can land one ULP off (333333333.33333329 becomes
        // ...325 unless its `float_roundtrip` feature is on), so the numbers are read by Rust's
        // correctly rounded parser, as ECMAScript's JSON.parse reads them.
        let numbers = ["333333333.33333329", "1E30", "4.50", "2e-3", "0.000000000000000000000000001"];
        let numbers: Vec<f64> = numbers.iter().map(|n| n.parse().unwrap()).collect();
        let input = r#"{
            "numbers": [],
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        let mut value: Value = serde_json::from_str(input).unwrap();
        value["numbers"] = json!(numbers);
        let want = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;
        assert_eq!(jcs(&value), want);
    }

    #[test]
    fn doubles_print_as_the_rfc_8785_appendix_b_table_says() {
        let table: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, want) in table {
            assert_eq!(double(*bits), *want, "double {bits:016x}");
        }
    }

    #[test]
    fn a_double_exactly_between_two_shortest_texts_takes_the_even_digit_as_node_does() {
        let ties: &[(u64, &str)] = &[
            (0x430f862d6f8ebdca, "1109156747663289.2"),
            (0xc2e8362da4b4f6b4, "-212967784556469.62"),
            (0xc2be3d6f61c3c810, "-33249210516424.062"),
            (0x42e47f0ae2859b04, "180287008156888.12"),
        ];
        for (bits, want) in ties {
            assert_eq!(double(*bits), *want, "double {bits:016x}");
        }
    }

    #[test]
    fn exponent_form_starts_at_1e21_and_below_1e_minus_6() {
        let cases: &[(f64, &str)] = &[
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e21, "1.5e+21"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (1e-6, "0.000001"),
            (1.25e-6, "0.00000125"),
            (0.5, "0.5"),
            (-2.5, "-2.5"),
            (1.0, "1"),
            (123.456, "123.456"),
        ];
        for (x, want) in cases {
            assert_eq!(jcs(&Value::from(*x)), *want, "{x:e}");
        }
    }

    #[test]
    fn integers_and_json_number_texts_print_as_ecmascript_would() {
        assert_eq!(
            jcs(&json!([0, -1, 9007199254740992_u64, -9007199254740992_i64])),
            "[0,-1,9007199254740992,-9007199254740992]"
        );
        let parsed: Value = serde_json::from_str("[1e21, 1E-7, -0, 1.0, 4.50, 5e-324, 100]").unwrap();
        assert_eq!(jcs(&parsed), "[1e+21,1e-7,0,1,4.5,5e-324,100]");
    }

    #[test]
    fn integers_beyond_two_to_the_53_are_written_exactly() {
        assert_eq!(jcs(&json!([u64::MAX, i64::MIN])), "[18446744073709551615,-9223372036854775808]");
    }

    #[test]
    fn only_quote_backslash_and_control_characters_are_escaped() {
        let s: String = (0u8..0x20).map(char::from).chain("\"\\/\u{7f}\u{2028}é😀".chars()).collect();
        let want = concat!(
            r#""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f"#,
            r#"\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f"#,
            "\\\"\\\\/\u{7f}\u{2028}é😀\""
        );
        assert_eq!(jcs(&Value::String(s)), want);
    }

    #[test]
    fn nested_values_carry_no_whitespace_and_sort_at_every_level() {
        let value = json!({"b": [{"z": 1, "a": {"y": null, "x": true}}], "a": "", "": []});
        assert_eq!(jcs(&value), r#"{"":[],"a":"","b":[{"a":{"x":true,"y":null},"z":1}]}"#);
    }
}
