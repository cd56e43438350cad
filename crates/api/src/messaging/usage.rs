//! Token usage an agent reports in its answer (the original's `extractTokenUsage`,
//! `handlers/a2a_proxy_helpers.go:368-405` at 624ef4d0).

use serde_json::Value;

/// Each count is clamped to this (a runaway agent cannot overflow the totals).
const MAX_TOKENS: i64 = 10_000_000;
/// Estimated USD per input and per output token.
const INPUT_COST: f64 = 0.000_003;
const OUTPUT_COST: f64 = 0.000_015;

/// One answer's usage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

impl Usage {
    pub fn cost_usd(self) -> f64 {
        self.input_tokens as f64 * INPUT_COST + self.output_tokens as f64 * OUTPUT_COST
    }
}

/// `result.usage` when it counts anything, else the top-level `usage`; `None` when neither does.
pub fn reported(answer: &Value) -> Option<Usage> {
    [answer.pointer("/result/usage"), answer.get("usage")]
        .into_iter()
        .flatten()
        .map(|usage| Usage {
            input_tokens: count(usage, "input_tokens"),
            output_tokens: count(usage, "output_tokens"),
        })
        .find(|usage| usage.input_tokens > 0 || usage.output_tokens > 0)
}

fn count(usage: &Value, key: &str) -> i64 {
    usage
        .get(key)
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .clamp(0, MAX_TOKENS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn result_usage_wins_then_top_level_then_nothing() {
        let both = json!({"result": {"usage": {"input_tokens": 10, "output_tokens": 2}}, "usage": {"input_tokens": 99}});
        assert_eq!(
            reported(&both),
            Some(Usage {
                input_tokens: 10,
                output_tokens: 2
            })
        );
        let zero_result =
            json!({"result": {"usage": {"input_tokens": 0}}, "usage": {"output_tokens": 5}});
        assert_eq!(
            reported(&zero_result),
            Some(Usage {
                input_tokens: 0,
                output_tokens: 5
            })
        );
        assert_eq!(reported(&json!({"result": {}})), None);
        let huge = json!({"usage": {"input_tokens": i64::MAX, "output_tokens": -4}});
        assert_eq!(
            reported(&huge),
            Some(Usage {
                input_tokens: MAX_TOKENS,
                output_tokens: 0
            })
        );
    }

    #[test]
    fn cost_is_priced_per_token() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
        };
        assert!((usage.cost_usd() - 18.0).abs() < 1e-9);
    }
}
