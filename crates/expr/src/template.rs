//! Strings with `${{ jq }}` interpolations, such as `"${{ $config.erp_url }}/orders"`.
//!
//! A JSON string result is inserted as it is; any other value as compact JSON.

use serde_json::Value;

use crate::program::{CompileError, EvalError, Expr, Limits};
use crate::scope::Scope;

const OPEN: &str = "${{";
const CLOSE: &str = "}}";

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Expr(Expr),
}

/// A compiled string template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
    expression_offsets: Vec<usize>,
}

impl Template {
    /// Compiles a template; errors carry byte offsets into the template text.
    pub fn compile(source: &str) -> Result<Self, Vec<CompileError>> {
        let mut parts = Vec::new();
        let mut expression_offsets = Vec::new();
        let mut errors = Vec::new();
        let mut rest_at = 0;
        while let Some(relative) = source[rest_at..].find(OPEN) {
            let open_at = rest_at + relative;
            if open_at > rest_at {
                parts.push(Part::Text(source[rest_at..open_at].to_owned()));
            }
            let code_at = open_at + OPEN.len();
            let Some(code_len) = closing_brace(&source[code_at..]) else {
                errors.push(CompileError {
                    message: String::from("`${{` is never closed with `}}`"),
                    offset: open_at,
                });
                return Err(errors);
            };
            let code = &source[code_at..code_at + code_len];
            match Expr::compile(code) {
                Ok(expr) => {
                    parts.push(Part::Expr(expr));
                    expression_offsets.push(code_at);
                }
                Err(found) => errors.extend(found.into_iter().map(|error| CompileError {
                    offset: code_at + error.offset,
                    ..error
                })),
            }
            rest_at = code_at + code_len + CLOSE.len();
        }
        if rest_at < source.len() {
            parts.push(Part::Text(source[rest_at..].to_owned()));
        }
        if errors.is_empty() {
            Ok(Self {
                source: source.to_owned(),
                parts,
                expression_offsets,
            })
        } else {
            Err(errors)
        }
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The embedded programs with the byte offset of each in the template text.
    pub fn expressions(&self) -> impl Iterator<Item = (usize, &Expr)> {
        let exprs = self.parts.iter().filter_map(|part| match part {
            Part::Expr(expr) => Some(expr),
            Part::Text(_) => None,
        });
        self.expression_offsets.iter().copied().zip(exprs)
    }

    /// The string with every interpolation evaluated.
    pub fn render(&self, scope: &Scope, limits: &Limits) -> Result<String, EvalError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Expr(expr) => match expr.eval_one(scope, limits)? {
                    Value::String(text) => out.push_str(&text),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }
}

/// The length of the code before the `}}` that closes an interpolation, skipping braces
/// and strings of the jq code itself (`${{ {a: {b: 1}} }}`).
fn closing_brace(code: &str) -> Option<usize> {
    let bytes = code.as_bytes();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            match byte {
                b'"' => in_string = true,
                b'{' => depth += 1,
                b'}' if depth == 0 && bytes.get(index + 1) == Some(&b'}') => return Some(index),
                b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        index += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Scope {
        let mut scope = Scope::new(
            &json!({"n": 3}),
            &json!({}),
            &json!({"url": "http://erp"}),
            &json!({}),
            &json!({}),
        );
        scope.set_step("forward", &json!({"status": 201}));
        scope
    }

    #[test]
    fn interpolates_strings_raw_and_values_as_json() {
        let template = Template::compile("${{ $config.url }}/orders/${{ .n }} -> ${{ $steps.forward.status }} ${{ {a: {b: 1}} }}").unwrap();
        assert_eq!(
            template.render(&scope(), &Limits::default()).unwrap(),
            "http://erp/orders/3 -> 201 {\"a\":{\"b\":1}}"
        );
        assert_eq!(
            template.expressions().map(|(at, _)| at).collect::<Vec<_>>(),
            vec![3, 29, 42, 71]
        );
    }

    #[test]
    fn errors_point_into_the_template() {
        let errors = Template::compile("abc ${{ .a | }}").unwrap_err();
        assert!(errors[0].offset >= 8, "{errors:?}");
        let errors = Template::compile("abc ${{ .a").unwrap_err();
        assert_eq!(errors[0].offset, 4);
    }
}
