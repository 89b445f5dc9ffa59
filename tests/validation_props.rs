//! Property tests of the pure input validators: they never panic on any input and accept exactly
//! what the contract allows. No services needed (`cargo test --test validation_props`).
//!
//! These are the fuzz targets for request parsing/validation of orders, charges, coupons,
//! sign-up and catalog cursors: every request body reaches one of these functions after serde
//! has checked its shape.

use std::collections::HashSet;

use flashmart::domain::{Email, Password};
use flashmart::error::AppError;
use flashmart::service::catalog::{decode_cursor, encode_cursor};
use flashmart::service::discount::Discount;
use flashmart::service::orders::{validate_lines, RequestedLine, MAX_LINES, MAX_QUANTITY};
use flashmart::service::wallet::{parse_amount, MAX_CHARGE_WON};
use proptest::prelude::*;
use serde_json::{json, Value};

const CASES: u32 = 512;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // No regression files in the source tree; failures print the minimal input instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Orders: validate_lines
// ---------------------------------------------------------------------------------------------

/// The contract, written independently of the implementation.
fn lines_are_acceptable(lines: &[RequestedLine]) -> bool {
    let mut seen = HashSet::new();
    (1..=MAX_LINES).contains(&lines.len())
        && lines.iter().all(|&(product_id, quantity)| {
            product_id > 0 && seen.insert(product_id) && (1..=MAX_QUANTITY).contains(&quantity)
        })
}

/// Product ids: mostly a small range (so duplicates, zero and negatives are common), sometimes
/// any i64 (extremes included).
fn product_id() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => -3i64..40,
        2 => any::<i64>(),
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
    ]
}

/// Quantities: around the 1..=100 bounds, sometimes any i64.
fn quantity() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => -2i64..=103,
        2 => any::<i64>(),
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
    ]
}

/// Any list of lines, lengths around the 1..=50 bounds.
fn any_lines() -> impl Strategy<Value = Vec<RequestedLine>> {
    prop_oneof![
        4 => prop::collection::vec((product_id(), quantity()), 0..=8),
        2 => prop::collection::vec((product_id(), quantity()), 45..=55),
        1 => prop::collection::vec((1i64..10_000, 1i64..=100), 0..=120),
    ]
}

/// Lines that satisfy the contract: 1–50 unique positive ids, quantities 1–100.
fn valid_lines() -> impl Strategy<Value = Vec<RequestedLine>> {
    prop::collection::btree_set(1i64..=i64::MAX, 1..=MAX_LINES)
        .prop_flat_map(|ids| {
            let n = ids.len();
            (
                Just(ids.into_iter().collect::<Vec<_>>()),
                prop::collection::vec(1i64..=MAX_QUANTITY, n),
            )
        })
        .prop_flat_map(|(ids, qty)| {
            let lines: Vec<RequestedLine> = ids.into_iter().zip(qty).collect();
            Just(lines).prop_shuffle()
        })
}

fn field_errors(err: &AppError) -> usize {
    match err {
        AppError::Validation(errors) => errors.len(),
        other => panic!("validate_lines must refuse with VALIDATION_FAILED, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn validate_lines_accepts_exactly_the_contract(lines in any_lines()) {
        let expected = lines_are_acceptable(&lines);
        match validate_lines(&lines) {
            Ok(()) => prop_assert!(expected, "accepted {lines:?}"),
            Err(e) => {
                prop_assert!(!expected, "refused valid lines {lines:?}");
                prop_assert!(field_errors(&e) > 0, "a refusal names at least one field");
            }
        }
    }

    #[test]
    fn validate_lines_accepts_every_valid_order(lines in valid_lines()) {
        prop_assert!(validate_lines(&lines).is_ok(), "refused {lines:?}");
    }

    #[test]
    fn validate_lines_refuses_any_single_defect(
        lines in valid_lines(),
        defect in 0usize..4,
        at in any::<prop::sample::Index>(),
        bad_quantity in prop_oneof![i64::MIN..=0, (MAX_QUANTITY + 1)..=i64::MAX],
        bad_id in i64::MIN..=0,
    ) {
        let mut lines = lines;
        let i = at.index(lines.len());
        match defect {
            0 => lines[i].1 = bad_quantity,
            1 => lines[i].0 = bad_id,
            2 => {
                // a duplicate product id
                let dup = lines[i];
                lines.push((dup.0, 1));
            }
            _ => {
                // no lines at all, or more than 50 (all else valid)
                if lines.len() % 2 == 0 {
                    lines.clear();
                } else {
                    let mut ids: HashSet<i64> = lines.iter().map(|l| l.0).collect();
                    let mut next = 1i64;
                    while lines.len() <= MAX_LINES {
                        if ids.insert(next) {
                            lines.push((next, 1));
                        }
                        next += 1;
                    }
                }
            }
        }
        prop_assert!(validate_lines(&lines).is_err(), "accepted a defective order {lines:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Wallet: parse_amount
// ---------------------------------------------------------------------------------------------

fn leaf_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-5i64..=10_000_005).prop_map(|n| json!(n)),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(10_000_000),
            Just(10_000_001),
            Just(-1)
        ]
        .prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (1i64..=10_000_000).prop_map(|n| json!(n as f64)),
        any::<String>().prop_map(Value::String),
        (1i64..=10_000_000).prop_map(|n| Value::String(n.to_string())),
        "[0-9eE+.-]{1,30}".prop_map(Value::String),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf_value().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Number-looking JSON texts (parsed by serde_json as a client body would be).
fn numeric_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,25}",
        "-?[0-9]{1,8}\\.[0-9]{1,4}",
        "-?[0-9]{1,3}[eE][+-]?[0-9]{1,3}",
        "-?[0-9]{1,8}\\.0",
        "[0-9eE+.-]{1,24}",
    ]
}

fn amount_is_acceptable(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::Number(n)) => n.as_i64().filter(|a| (1..=MAX_CHARGE_WON).contains(a)),
        _ => None,
    }
}

fn check_amount(value: Option<&Value>) -> Result<(), TestCaseError> {
    let expected = amount_is_acceptable(value);
    match parse_amount(value) {
        Ok(amount) => prop_assert_eq!(Some(amount), expected, "accepted {:?}", value),
        Err(AppError::InvalidAmount(_)) => {
            prop_assert!(expected.is_none(), "refused valid amount {:?}", value)
        }
        Err(other) => prop_assert!(false, "refusal must be INVALID_AMOUNT, got {other:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_amount_accepts_only_integers_from_1_to_10_million(value in any_json()) {
        check_amount(Some(&value))?;
    }

    #[test]
    fn parse_amount_on_parsed_number_texts(text in numeric_text()) {
        if let Ok(value) = serde_json::from_str::<Value>(&text) {
            check_amount(Some(&value))?;
            // floats such as 5.0 or 1e3 are never accepted, even when integral
            if text.contains(['.', 'e', 'E']) {
                prop_assert!(parse_amount(Some(&value)).is_err(), "accepted float text {text}");
            }
        }
    }

    #[test]
    fn parse_amount_accepts_every_amount_in_range(amount in 1i64..=MAX_CHARGE_WON) {
        prop_assert_eq!(parse_amount(Some(&json!(amount))).ok(), Some(amount));
    }
}

#[test]
fn parse_amount_refuses_a_missing_amount_and_the_bounds() {
    assert!(parse_amount(None).is_err());
    for bad in [
        json!(0),
        json!(-1),
        json!(MAX_CHARGE_WON + 1),
        json!(u64::MAX),
        json!(1.5),
        json!(1.0),
        json!("1000"),
        json!([1000]),
        json!({"amount": 1000}),
    ] {
        assert!(parse_amount(Some(&bad)).is_err(), "accepted {bad}");
    }
    assert_eq!(parse_amount(Some(&json!(1))).ok(), Some(1));
    assert_eq!(
        parse_amount(Some(&json!(MAX_CHARGE_WON))).ok(),
        Some(MAX_CHARGE_WON)
    );
}

// ---------------------------------------------------------------------------------------------
// Coupons: Discount::on
// ---------------------------------------------------------------------------------------------

fn any_discount() -> impl Strategy<Value = Discount> {
    let amount = prop_oneof![any::<i64>(), -10i64..1_000_000];
    let percent = prop_oneof![any::<i64>(), -5i64..=105];
    let cap = prop::option::of(prop_oneof![any::<i64>(), -10i64..1_000_000]);
    prop_oneof![
        amount.prop_map(|amount| Discount::Fixed { amount }),
        (percent, cap).prop_map(|(percent, cap)| Discount::Percent { percent, cap }),
    ]
}

fn subtotal() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        0i64..10_000_000,
        Just(0),
        Just(i64::MAX),
        Just(i64::MIN)
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_discount_is_never_negative_nor_above_the_subtotal(terms in any_discount(), sub in subtotal()) {
        let d = terms.on(sub);
        prop_assert!(d >= 0, "{terms:?} on {sub} = {d}");
        prop_assert!(d <= sub.max(0), "{terms:?} on {sub} = {d}");
    }

    #[test]
    fn percent_discounts_round_down_then_cap(
        percent in 0i64..=100,
        cap in prop::option::of(0i64..=i64::MAX),
        sub in prop_oneof![0i64..=i64::MAX, 0i64..1_000_000],
    ) {
        let floor = (i128::from(sub) * i128::from(percent)).div_euclid(100);
        let expected = cap.map_or(floor, |c| floor.min(i128::from(c)));
        prop_assert_eq!(i128::from(Discount::Percent { percent, cap }.on(sub)), expected);
    }

    #[test]
    fn fixed_discounts_are_the_amount_capped_by_the_subtotal(
        amount in 0i64..=i64::MAX,
        sub in 0i64..=i64::MAX,
    ) {
        prop_assert_eq!(Discount::Fixed { amount }.on(sub), amount.min(sub));
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-up: Email / Password
// ---------------------------------------------------------------------------------------------

/// Strings of any Unicode, plus e-mail-looking ones near the length limits.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,300}",
        "[ \\t\\n\\r\\x00-\\x1f@.a-zA-Z0-9ÄİıſK\u{212A}\u{0130}]{0,80}",
        "[a-z]{1,70}@[a-z]{1,70}\\.[a-z]{2,6}",
        "[a-z]{60,70}@[a-z.]{180,260}",
        (1usize..400).prop_map(|n| format!("{}@example.com", "é".repeat(n))),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn email_parse_never_panics_and_normalises(raw in hostile_string()) {
        if let Ok(email) = Email::parse(&raw) {
            let value = email.as_str();
            prop_assert!(value.len() <= 254, "{value:?}");
            prop_assert_eq!(value, raw.trim().to_ascii_lowercase());
            prop_assert_eq!(value.matches('@').count(), 1, "{:?}", value);
            prop_assert!(!value.chars().any(|c| c.is_whitespace() || c.is_control()));
            let (local, domain) = value.split_once('@').expect("one @");
            prop_assert!(!local.is_empty() && local.len() <= 64);
            prop_assert!(domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'));
        }
    }

    #[test]
    fn password_parse_never_panics_and_checks_length_in_chars(raw in hostile_string()) {
        let chars = raw.chars().count();
        match Password::parse(&raw) {
            Ok(p) => {
                prop_assert!((8..=128).contains(&chars), "accepted {chars} chars");
                prop_assert_eq!(p.expose(), raw.as_str(), "a password is kept verbatim");
            }
            Err(e) => {
                prop_assert!(!(8..=128).contains(&chars), "refused {chars} chars");
                prop_assert_eq!(e.field.as_str(), "password");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Catalog cursors
// ---------------------------------------------------------------------------------------------

/// Cursor-like inputs: random text, random URL-safe base64, and tampered real cursors.
fn cursor_input() -> impl Strategy<Value = String> {
    use base64::Engine;
    let b64 = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,80}",
        "[A-Za-z0-9+/=_-]{0,40}",
        // payloads that decode to "p1:<something>": signs, zeros, spaces, overflow, junk
        "p1:[-+0 ]{0,3}[0-9]{0,22}[a-z ]{0,2}".prop_map(b64),
        "[a-z][0-9]:[-+]?[0-9]{1,5}".prop_map(b64),
        any::<i64>().prop_map(encode_cursor),
        (any::<i64>(), 0usize..20, any::<u8>()).prop_map(|(id, at, byte)| {
            let mut c = encode_cursor(id).into_bytes();
            if !c.is_empty() {
                let i = at % c.len();
                c[i] = byte;
            }
            String::from_utf8_lossy(&c).into_owned()
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cursor_round_trips_for_every_non_negative_id(id in 0i64..=i64::MAX) {
        prop_assert_eq!(decode_cursor(&encode_cursor(id)).ok(), Some(id));
    }

    #[test]
    fn cursor_of_a_negative_id_is_refused(id in i64::MIN..0) {
        prop_assert!(decode_cursor(&encode_cursor(id)).is_err());
    }

    /// Never panics; whatever it accepts names a non-negative position and refusals are 400s.
    #[test]
    fn cursor_decoder_never_panics(input in cursor_input()) {
        match decode_cursor(&input) {
            Ok(id) => prop_assert!(id >= 0),
            Err(AppError::Validation(errors)) => prop_assert_eq!(errors[0].field.as_str(), "cursor"),
            Err(other) => prop_assert!(false, "refusal must be VALIDATION_FAILED, got {other:?}"),
        }
    }

    /// Only what `encode_cursor` produced is accepted: a decoded cursor re-encodes to itself.
    #[test]
    fn cursor_decoder_accepts_only_canonical_cursors(input in cursor_input()) {
        if let Ok(id) = decode_cursor(&input) {
            prop_assert_eq!(encode_cursor(id), input, "accepted a cursor encode_cursor never makes");
        }
    }
}
