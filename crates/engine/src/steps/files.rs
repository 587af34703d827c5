//! The `files` step: read, write, list, move and delete files in the engine's storage,
//! every path confined to the file roots.
//!
//! A `write` replaces its file atomically, so running it again after a crash writes the
//! same file; an `append` run again appends again (use it for logs, not for exactly-once
//! output). A `move` whose source is gone and whose target exists counts as done, so it
//! too can run again.

use serde_json::json;
use switchboard_files::{FilesError, Format, WriteMode, format};
use switchboard_project::{FilesAction, FilesStep};

use super::{StepContext, StepError, StepOutcome};

pub(crate) async fn run(step: &FilesStep, context: &StepContext<'_>) -> StepOutcome {
    let render = |template: &switchboard_expr::Template, what| {
        template
            .render(context.scope, context.limits)
            .map_err(|source| StepError::Expression { what, source })
    };
    let result = async {
        match &step.action {
            FilesAction::Read(path) => {
                let path = render(path, "read")?;
                let format = format_of(step, &path)?;
                let input = json!({"read": path, "format": format.as_str()});
                let bytes = context
                    .files
                    .read(&path, context.max_file_bytes)
                    .await
                    .map_err(files_error)?;
                let data = format::read(format, &bytes, &step.csv)
                    .map_err(|error| StepError::Invalid(format!("`{path}`: {error}")))?;
                Ok((input, data))
            }
            FilesAction::Write { path, data, append } => {
                let path = render(path, "write")?;
                let format = format_of(step, &path)?;
                let value = data
                    .eval_one(context.scope, context.limits)
                    .map_err(|source| StepError::Expression {
                        what: "data",
                        source,
                    })?;
                let mut csv = step.csv.clone();
                if *append && format == Format::Csv {
                    // Rows added to a file that has them: the header is written once.
                    let exists = context.files.stat(&path).await.map_err(files_error)?;
                    csv.header = csv.header && exists.is_none_or(|file| file.size == 0);
                }
                let bytes = format::write(format, &value, &csv)
                    .map_err(|error| StepError::Invalid(format!("`{path}`: {error}")))?;
                let mode = if *append {
                    WriteMode::Append
                } else {
                    WriteMode::Replace
                };
                let size = context
                    .files
                    .write(&path, bytes, mode)
                    .await
                    .map_err(files_error)?;
                let rows = value.as_array().map(Vec::len);
                let input = json!({"write": path, "format": format.as_str(), "append": append});
                Ok((input, json!({"path": path, "size": size, "rows": rows})))
            }
            FilesAction::List { dir, pattern } => {
                let dir = render(dir, "list")?;
                let files = context
                    .files
                    .list(&dir, pattern.as_deref())
                    .await
                    .map_err(files_error)?;
                let input = json!({"list": dir, "pattern": pattern});
                Ok((input, files.iter().map(|file| file.to_json()).collect()))
            }
            FilesAction::Move { from, to } => {
                let (from, to) = (render(from, "move")?, render(to, "to")?);
                let input = json!({"move": from, "to": to});
                match context.files.rename(&from, &to).await {
                    Ok(()) => {}
                    // Moved by an earlier run of this step.
                    Err(FilesError::NotFound(_))
                        if context
                            .files
                            .stat(&to)
                            .await
                            .is_ok_and(|file| file.is_some()) => {}
                    Err(error) => return Err(files_error(error)),
                }
                Ok((input, json!({"from": from, "to": to})))
            }
            FilesAction::Delete(path) => {
                let path = render(path, "delete")?;
                let deleted = context.files.delete(&path).await.map_err(files_error)?;
                Ok((
                    json!({"delete": path}),
                    json!({"path": path, "deleted": deleted}),
                ))
            }
        }
    }
    .await;
    match result {
        Ok((input, output)) => StepOutcome::new(input, Ok(output)),
        Err(error) => StepOutcome::new(json!({"kind": "files"}), Err(error)),
    }
}

/// The step's format, else the one `path`'s extension names.
fn format_of(step: &FilesStep, path: &str) -> Result<Format, StepError> {
    step.format.or_else(|| Format::of_name(path)).ok_or_else(|| {
        StepError::Invalid(format!(
            "`{path}` has no extension that names a format: set `format` to csv, json, ndjson, xml or text"
        ))
    })
}

fn files_error(error: FilesError) -> StepError {
    match error {
        FilesError::Io { .. } => StepError::FileSystem(error.to_string()),
        other => StepError::Invalid(other.to_string()),
    }
}
