//! JSON bodies in API terms: objects only where an object is expected, and rejection messages
//! that name the field and the JSON type expected, never a Rust type.
//!
//! serde's derived struct visitors also accept a JSON array (fields by position), so `[3]`
//! would be a valid `{"amount": 3}`; [`Object`] accepts only a JSON object. serde's messages
//! name Rust types (`expected struct LoginRequest`, `expected i64`); [`describe`] rewrites
//! them into JSON's vocabulary and says where in the body the problem is.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

/// A value that must be written as a JSON object (never as an array of its fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

/// Parses a JSON body as an object of type `T`; the error is a sentence for the client.
pub fn parse<T: de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<Object<T>, _> = serde_path_to_error::deserialize(&mut json);
    let value = match parsed {
        Ok(Object(value)) => value,
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err("The body is not valid JSON.".into());
            }
            return Err(describe(&path, &inner));
        }
    };
    json.end()
        .map_err(|_| "The body is not valid JSON.".to_owned())?;
    Ok(value)
}

/// One sentence: where (`the body` or the field's path) and what was wrong, in JSON terms.
pub fn describe(path: &str, error: &serde_json::Error) -> String {
    let text = error.to_string();
    let message = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => text.as_str(),
    };
    let place = if path.is_empty() || path == "." {
        "The body".to_owned()
    } else {
        format!("Field `{path}`")
    };
    format!("{place}: {}.", api_terms(message))
}

/// Rewrites serde's Rust vocabulary into JSON's.
pub fn api_terms(message: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut rest = message.split(' ').peekable();
    while let Some(word) = rest.next() {
        let (core, tail) = split_punctuation(word);
        match core {
            // `struct Name` and `struct Name with N elements`
            "struct" | "enum" if rest.peek().is_some() => {
                let is_enum = core == "enum";
                let (_, name_tail) = split_punctuation(rest.next().unwrap_or_default());
                let mut tail = name_tail.to_owned();
                if rest.peek() == Some(&"with") {
                    rest.next();
                    rest.next();
                    tail = split_punctuation(rest.next().unwrap_or_default())
                        .1
                        .to_owned();
                }
                words.push(format!(
                    "{}{tail}",
                    if is_enum {
                        "one of the allowed values"
                    } else {
                        "an object"
                    }
                ));
            }
            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => {
                words.push(format!("an integer{tail}"))
            }
            "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
                words.push(format!("a non-negative integer{tail}"))
            }
            "f32" | "f64" => words.push(format!("a number{tail}")),
            "map" => words.push(format!("object{tail}")),
            "sequence" => words.push(format!("array{tail}")),
            "floating" if rest.peek().is_some_and(|w| w.starts_with("point")) => {
                let (_, point_tail) = split_punctuation(rest.next().unwrap_or_default());
                words.push(format!("number{point_tail}"));
            }
            "unit" if rest.peek().is_some_and(|w| w.starts_with("value")) => {
                let (_, value_tail) = split_punctuation(rest.next().unwrap_or_default());
                words.push(format!("null{value_tail}"));
            }
            _ => words.push(word.to_owned()),
        }
    }
    words
        .join(" ")
        .replace(" a array", " an array")
        .replace(" a object", " an object")
}

fn split_punctuation(word: &str) -> (&str, &str) {
    let end = word.find([',', ';', ':']).unwrap_or(word.len());
    word.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct LoginRequest {
        #[allow(dead_code)]
        email: String,
        #[allow(dead_code)]
        password: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Line {
        #[allow(dead_code)]
        product_id: i64,
        #[allow(dead_code)]
        quantity: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Order {
        #[allow(dead_code)]
        items: Vec<Object<Line>>,
    }

    const RUST_WORDS: [&str; 8] = [
        "struct", "i64", "u32", "f64", "sequence", "map", "enum", "Line",
    ];

    fn refused<T: de::DeserializeOwned + fmt::Debug>(body: &str) -> String {
        let message = parse::<T>(body.as_bytes()).expect_err(body);
        for word in RUST_WORDS {
            assert!(
                !message
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w == word),
                "{body} → {message}"
            );
        }
        message
    }

    #[test]
    fn non_objects_are_refused_in_json_terms() {
        assert_eq!(
            refused::<LoginRequest>("1"),
            "The body: invalid type: integer `1`, expected an object."
        );
        assert_eq!(
            refused::<LoginRequest>("[]"),
            "The body: invalid type: array, expected an object."
        );
        assert_eq!(
            refused::<LoginRequest>(r#"["a@b.c","secret"]"#),
            "The body: invalid type: array, expected an object."
        );
        assert_eq!(
            refused::<Order>(r#"{"items":[[7,2]]}"#),
            "Field `items[0]`: invalid type: array, expected an object."
        );
        assert_eq!(
            refused::<Order>(r#"{"items":[{"productId":1.5,"quantity":1}]}"#),
            "Field `items[0].productId`: invalid type: number `1.5`, expected an integer."
        );
        assert_eq!(
            refused::<Order>(r#"{"items":[{"productId":1,"quantity":-1}]}"#),
            "Field `items[0].quantity`: invalid value: integer `-1`, expected a non-negative integer."
        );
        assert_eq!(
            refused::<Order>(r#"{"items":{}}"#),
            "Field `items`: invalid type: object, expected an array."
        );
        assert!(refused::<LoginRequest>(r#"{"email":"a"}"#).contains("missing field `password`"));
        assert_eq!(
            refused::<LoginRequest>("nope"),
            "The body is not valid JSON."
        );
        assert_eq!(
            refused::<LoginRequest>(r#"{"email":"a","password":"b"} x"#),
            "The body is not valid JSON."
        );
    }

    #[test]
    fn objects_parse() {
        let order: Order =
            parse(br#"{"items":[{"productId":7,"quantity":2}]}"#).expect("an object");
        assert_eq!(order.items.len(), 1);
    }
}
