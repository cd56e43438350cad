//! Secret redaction before a memory reaches the database (SAFE-T1201; the original's
//! `handlers/memories.go:47-78` at 624ef4d0).

use std::sync::LazyLock;

use regex::Regex;

/// The patterns, applied in order, each over the previous one's output, and their labels.
static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        // Go's `\b`, `\s` and `\S` are ASCII: spelled out so Unicode spaces count as text.
        (
            r"(?i)(?-u:\b)[A-Z][A-Z0-9_]*_API_KEY[\t\n\f\r ]*=[\t\n\f\r ]*[^\t\n\f\r ]+",
            "API_KEY",
        ),
        (
            r"(?i)(?-u:\b)[A-Z][A-Z0-9_]*_TOKEN[\t\n\f\r ]*=[\t\n\f\r ]*[^\t\n\f\r ]+",
            "TOKEN",
        ),
        (
            r"(?i)(?-u:\b)[A-Z][A-Z0-9_]*_SECRET[\t\n\f\r ]*=[\t\n\f\r ]*[^\t\n\f\r ]+",
            "SECRET",
        ),
        (r"Bearer[\t\n\f\r ]+[^\t\n\f\r ]+", "BEARER_TOKEN"),
        (r"sk-[A-Za-z0-9\-_]{16,}", "SK_TOKEN"),
        (r"ctx7_[A-Za-z0-9]+", "CTX7_TOKEN"),
        (r"[A-Za-z0-9+/]{33,}={0,2}", "BASE64_BLOB"),
    ]
    .into_iter()
    .map(|(pattern, label)| (Regex::new(pattern).expect("a valid pattern"), label))
    .collect()
});

/// Replaces every secret-looking run with `[REDACTED:<LABEL>]`.
pub fn redact_secrets(content: &str) -> String {
    let mut text = content.to_string();
    for (regex, label) in PATTERNS.iter() {
        if regex.is_match(&text) {
            tracing::debug!(label, "redacted a secret from a memory");
            text = regex
                .replace_all(&text, format!("[REDACTED:{label}]").as_str())
                .into_owned();
        }
    }
    text
}

/// GLOBAL memories are shown to every workspace wrapped in `[MEMORY …]: `; a writer may not forge
/// that prefix (`memories.go:186-188`).
pub fn escape_memory_delimiter(content: &str) -> String {
    content.replace("[MEMORY ", "[_MEMORY ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_order() {
        assert_eq!(
            redact_secrets("use OPENAI_API_KEY=sk-abc now"),
            "use [REDACTED:API_KEY] now"
        );
        assert_eq!(redact_secrets("GITHUB_TOKEN = ghp_1"), "[REDACTED:TOKEN]");
        assert_eq!(
            redact_secrets("Authorization: Bearer abc.def"),
            "Authorization: [REDACTED:BEARER_TOKEN]"
        );
        assert_eq!(
            redact_secrets("key sk-0123456789abcdefXYZ end"),
            "key [REDACTED:SK_TOKEN] end"
        );
        assert_eq!(redact_secrets("ctx7_abc123"), "[REDACTED:CTX7_TOKEN]");
        assert_eq!(redact_secrets(&"a".repeat(40)), "[REDACTED:BASE64_BLOB]");
        assert_eq!(redact_secrets("nothing here"), "nothing here");
    }

    #[test]
    fn the_delimiter_cannot_be_forged() {
        assert_eq!(
            escape_memory_delimiter("[MEMORY id=x]: hi"),
            "[_MEMORY id=x]: hi"
        );
    }
}
