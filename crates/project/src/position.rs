//! Turning positions inside YAML scalars into `line:column`, and "did you mean" hints.

use serde_saphyr::Location;

/// The line and column (1-based) of byte `offset` inside the scalar `value` that starts at
/// `at` in `source`. Quoted scalars, and block scalars (`|`, `>`) whose text starts on the
/// next line, are accounted for; escape sequences before the offset are not.
pub(crate) fn scalar_position(
    source: &str,
    at: &Location,
    value: &str,
    offset: usize,
) -> (u64, u64) {
    let before = &value[..floor_char_boundary(value, offset)];
    let value_line = before.matches('\n').count() as u64;
    let column_in_line = before
        .rsplit('\n')
        .next()
        .map_or(0, |line| line.chars().count()) as u64;
    let opener = at
        .span()
        .byte_offset()
        .and_then(|byte| source.get(usize::try_from(byte).ok()?..))
        .and_then(|rest| rest.chars().next());
    match opener {
        Some('|' | '>') => {
            let line = at.line() + 1 + value_line;
            (line, indentation_of_line(source, line) + column_in_line + 1)
        }
        Some('\'' | '"') if value_line == 0 => (at.line(), at.column() + 1 + column_in_line),
        _ if value_line == 0 => (at.line(), at.column() + column_in_line),
        _ => {
            let line = at.line() + value_line;
            (line, indentation_of_line(source, line) + column_in_line + 1)
        }
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn indentation_of_line(source: &str, line: u64) -> u64 {
    let index = usize::try_from(line.saturating_sub(1)).unwrap_or(usize::MAX);
    source.lines().nth(index).map_or(0, |text| {
        (text.len() - text.trim_start_matches(' ').len()) as u64
    })
}

/// The candidate closest to `word`, when it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        let fields = ["id", "transform", "http", "log"];
        assert_eq!(did_you_mean("tranform", fields), Some("transform"));
        assert_eq!(did_you_mean("htp", fields), Some("http"));
        assert_eq!(did_you_mean("schedule", fields), None);
    }
}
