//! Printing results: JSON for scripts (`--json`), short text for people.

use serde_json::{Value, json};

pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints `value` as one line of JSON, or the text `human` makes of it.
    pub fn show(&self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!("{value}");
        } else {
            let text = human(value);
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }

    /// Errors go to standard error: `error: …`, or a JSON object with `--json`.
    pub fn error(&self, message: &str, field: Option<&str>) {
        if self.json {
            eprintln!("{}", json!({ "error": message, "field": field }));
        } else {
            eprintln!("error: {message}");
        }
    }
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
