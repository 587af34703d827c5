//! The formats flows read and write: CSV, JSON, NDJSON, XML and text, each to and from
//! JSON values.
//!
//! - **CSV**: with a header (the default) each row is an object keyed by the header's
//!   names; without, an array of strings. Values are text, as in the file. Writing takes
//!   a list of objects (the columns are `columns`, else the first row's keys) or arrays.
//! - **JSON**: one value. **NDJSON**: one value per line, as a list.
//! - **XML**: an element is an object of its attributes (`@name`), its child elements
//!   (by name; a name seen twice becomes a list) and its text (`#text`); an element
//!   with text only is that text. The document is `{<root>: …}`, and is written back
//!   from the same shape.
//! - **Text**: the file as a string (invalid UTF-8 is replaced).
//!
//! A malformed file's error names its line and column.

use std::fmt;

use serde_json::{Map, Value};

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma- (or otherwise) separated values.
    Csv,
    /// One JSON value.
    Json,
    /// One JSON value per line.
    Ndjson,
    /// XML, as JSON.
    Xml,
    /// Text.
    Text,
}

impl Format {
    /// Every format, as written in YAML.
    pub const NAMES: [(&'static str, Self); 5] = [
        ("csv", Self::Csv),
        ("json", Self::Json),
        ("ndjson", Self::Ndjson),
        ("xml", Self::Xml),
        ("text", Self::Text),
    ];

    /// The format a file name's extension says, if it says one.
    pub fn of_name(name: &str) -> Option<Self> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "csv" | "tsv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "xml" => Some(Self::Xml),
            "txt" | "text" | "log" => Some(Self::Text),
            _ => None,
        }
    }

    /// The format as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Xml => "xml",
            Self::Text => "text",
        }
    }
}

/// How CSV is read and written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field separator (default `,`).
    pub delimiter: u8,
    /// The quote character (default `"`).
    pub quote: u8,
    /// Whether the first row names the columns (default `true`).
    pub header: bool,
    /// The columns written, in order (default: the first row's keys).
    pub columns: Option<Vec<String>>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            quote: b'"',
            header: true,
            columns: None,
        }
    }
}

/// A file that is not what its format says, or a value that cannot be written in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// The format.
    pub format: Format,
    /// Where, when the error is in a file: line and column, from 1.
    pub at: Option<(u64, u64)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, column)) => write!(
                f,
                "{} at line {line}, column {column}: {}",
                self.format.as_str(),
                self.message
            ),
            None => write!(f, "{}: {}", self.format.as_str(), self.message),
        }
    }
}

impl std::error::Error for FormatError {}

impl FormatError {
    fn new(format: Format, at: Option<(u64, u64)>, message: impl Into<String>) -> Self {
        Self {
            format,
            at,
            message: message.into(),
        }
    }
}

/// Reads `bytes` as `format`.
pub fn read(format: Format, bytes: &[u8], csv: &CsvOptions) -> Result<Value, FormatError> {
    match format {
        Format::Csv => read_csv(bytes, csv),
        Format::Json => {
            serde_json::from_slice(bytes).map_err(|error| json_error(format, 0, &error))
        }
        Format::Ndjson => read_ndjson(bytes),
        Format::Xml => xml::read(bytes),
        Format::Text => Ok(Value::String(String::from_utf8_lossy(bytes).into_owned())),
    }
}

/// Writes `value` as `format`.
pub fn write(format: Format, value: &Value, csv: &CsvOptions) -> Result<Vec<u8>, FormatError> {
    match format {
        Format::Csv => write_csv(value, csv),
        Format::Json => {
            let mut bytes = serde_json::to_vec_pretty(value)
                .map_err(|error| FormatError::new(format, None, error.to_string()))?;
            bytes.push(b'\n');
            Ok(bytes)
        }
        Format::Ndjson => {
            let rows = match value {
                Value::Array(rows) => rows.as_slice(),
                single => std::slice::from_ref(single),
            };
            let mut bytes = Vec::new();
            for row in rows {
                bytes.extend(row.to_string().into_bytes());
                bytes.push(b'\n');
            }
            Ok(bytes)
        }
        Format::Xml => xml::write(value),
        Format::Text => Ok(match value {
            Value::String(text) => text.clone().into_bytes(),
            Value::Array(lines) => lines
                .iter()
                .map(|line| format!("{}\n", text_of(line)))
                .collect::<String>()
                .into_bytes(),
            other => other.to_string().into_bytes(),
        }),
    }
}

fn json_error(format: Format, line_offset: u64, error: &serde_json::Error) -> FormatError {
    // serde_json's message ends with the position, which the error carries already.
    let message = error.to_string();
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(message, _)| message);
    FormatError::new(
        format,
        Some((line_offset + error.line() as u64, error.column() as u64)),
        message,
    )
}

fn read_ndjson(bytes: &[u8]) -> Result<Value, FormatError> {
    let mut rows = Vec::new();
    for (index, line) in bytes.split(|byte| *byte == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let row = serde_json::from_slice(line)
            .map_err(|error| json_error(Format::Ndjson, index as u64, &error))?;
        rows.push(row);
    }
    Ok(Value::Array(rows))
}

/// The text of a value in a CSV field or a text line.
fn text_of(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn csv_reader<R: std::io::Read>(source: R, options: &CsvOptions) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .delimiter(options.delimiter)
        .quote(options.quote)
        .has_headers(options.header)
        .from_reader(source)
}

/// A CSV error with the line and column (the field, counted from 1) it names.
fn csv_error(error: &csv::Error) -> FormatError {
    let (at, message) = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => {
            let line = pos.as_ref().map_or(0, csv::Position::line);
            let column = expected_len.min(len) + 1;
            (
                Some((line, column)),
                format!("the row has {len} fields where the first row has {expected_len}"),
            )
        }
        csv::ErrorKind::Utf8 { pos, err } => {
            let line = pos.as_ref().map_or(0, csv::Position::line);
            (
                Some((line, err.field() as u64 + 1)),
                String::from("the field is not valid UTF-8"),
            )
        }
        _ => (None, error.to_string()),
    };
    FormatError::new(Format::Csv, at, message)
}

/// Reads the rows of a CSV or NDJSON file from `source` one by one, handing each to
/// `each`; answers how many there were. A large file is never held whole.
pub fn read_rows<R: std::io::Read>(
    format: Format,
    source: R,
    csv: &CsvOptions,
    mut each: impl FnMut(Value) -> Result<(), FormatError>,
) -> Result<u64, FormatError> {
    match format {
        Format::Csv => read_csv_rows(source, csv, each),
        Format::Ndjson => {
            use std::io::BufRead;
            let mut count = 0;
            for (index, line) in std::io::BufReader::new(source).lines().enumerate() {
                let line = line.map_err(|error| {
                    FormatError::new(format, Some((index as u64 + 1, 1)), error.to_string())
                })?;
                if line.trim().is_empty() {
                    continue;
                }
                let row = serde_json::from_str(&line)
                    .map_err(|error| json_error(format, index as u64, &error))?;
                each(row)?;
                count += 1;
            }
            Ok(count)
        }
        other => Err(FormatError::new(
            other,
            None,
            "rows are read from csv or ndjson",
        )),
    }
}

/// Every row of a CSV file, each as [`read_csv_rows`] gives it.
fn read_csv(bytes: &[u8], options: &CsvOptions) -> Result<Value, FormatError> {
    let mut rows = Vec::new();
    read_csv_rows(bytes, options, |row| {
        rows.push(row);
        Ok(())
    })?;
    Ok(Value::Array(rows))
}

/// Reads a CSV file row by row, handing each to `each` (an object keyed by the header,
/// or an array of strings without one), so a large file is never held whole as values.
pub fn read_csv_rows<R: std::io::Read>(
    source: R,
    options: &CsvOptions,
    mut each: impl FnMut(Value) -> Result<(), FormatError>,
) -> Result<u64, FormatError> {
    let mut reader = csv_reader(source, options);
    let header: Option<Vec<String>> = if options.header {
        let names = reader.headers().map_err(|error| csv_error(&error))?;
        Some(names.iter().map(str::to_owned).collect())
    } else {
        None
    };
    let mut record = csv::StringRecord::new();
    let mut count = 0;
    while reader
        .read_record(&mut record)
        .map_err(|error| csv_error(&error))?
    {
        let row = match &header {
            Some(names) => Value::Object(
                names
                    .iter()
                    .zip(record.iter())
                    .map(|(name, field)| (name.clone(), Value::String(field.to_owned())))
                    .collect(),
            ),
            None => Value::Array(
                record
                    .iter()
                    .map(|field| Value::String(field.to_owned()))
                    .collect(),
            ),
        };
        each(row)?;
        count += 1;
    }
    Ok(count)
}

fn write_csv(value: &Value, options: &CsvOptions) -> Result<Vec<u8>, FormatError> {
    let invalid = |message: String| FormatError::new(Format::Csv, None, message);
    let Value::Array(rows) = value else {
        return Err(invalid(String::from("CSV is written from a list of rows")));
    };
    let mut writer = csv::WriterBuilder::new()
        .delimiter(options.delimiter)
        .quote(options.quote)
        .from_writer(Vec::new());
    let columns: Option<Vec<String>> = match (&options.columns, rows.first()) {
        (Some(columns), _) => Some(columns.clone()),
        (None, Some(Value::Object(first))) => Some(first.keys().cloned().collect()),
        _ => None,
    };
    let failed = |error: csv::Error| invalid(error.to_string());
    if let (Some(columns), true) = (&columns, options.header) {
        writer.write_record(columns).map_err(failed)?;
    }
    for (index, row) in rows.iter().enumerate() {
        let fields: Vec<String> = match (row, &columns) {
            (Value::Object(fields), Some(columns)) => columns
                .iter()
                .map(|column| fields.get(column).map(text_of).unwrap_or_default())
                .collect(),
            (Value::Array(fields), _) => fields.iter().map(text_of).collect(),
            (other, _) => {
                return Err(invalid(format!(
                    "row {index} is {other}; a row is an object or an array"
                )));
            }
        };
        writer.write_record(&fields).map_err(failed)?;
    }
    writer
        .into_inner()
        .map_err(|error| invalid(error.to_string()))
}

/// The line and column (from 1) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (u64, u64) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|byte| **byte == b'\n').count() as u64 + 1;
    let start = before
        .iter()
        .rposition(|byte| *byte == b'\n')
        .map_or(0, |newline| newline + 1);
    (line, (before.len() - start) as u64 + 1)
}

mod xml {
    //! XML to and from JSON.

    use quick_xml::events::Event;

    use super::{Format, FormatError, Map, Value, line_and_column, text_of};

    /// An element being read.
    struct Element {
        name: String,
        fields: Map<String, Value>,
        text: String,
    }

    impl Element {
        /// The element as a value: its text alone, or an object.
        fn into_value(mut self) -> Value {
            let text = self.text.trim();
            if self.fields.is_empty() {
                return Value::String(text.to_owned());
            }
            if !text.is_empty() {
                self.fields
                    .insert(String::from("#text"), Value::String(text.to_owned()));
            }
            Value::Object(self.fields)
        }
    }

    /// Adds `value` under `name`: a second one makes a list.
    fn add(fields: &mut Map<String, Value>, name: String, value: Value) {
        match fields.get_mut(&name) {
            Some(Value::Array(list)) => list.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                fields.insert(name, value);
            }
        }
    }

    pub(super) fn read(bytes: &[u8]) -> Result<Value, FormatError> {
        let text = String::from_utf8_lossy(bytes);
        let mut reader = quick_xml::Reader::from_str(&text);
        let error = |at: u64, message: String| {
            let at = usize::try_from(at).unwrap_or(usize::MAX);
            FormatError::new(Format::Xml, Some(line_and_column(&text, at)), message)
        };
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<(String, Value)> = None;
        loop {
            let event = reader
                .read_event()
                .map_err(|cause| error(reader.error_position(), cause.to_string()))?;
            let open = |start: &quick_xml::events::BytesStart<'_>| {
                let mut fields = Map::new();
                for attribute in start.attributes() {
                    let attribute = attribute
                        .map_err(|cause| error(reader.buffer_position(), cause.to_string()))?;
                    let value = attribute
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|cause| error(reader.buffer_position(), cause.to_string()))?;
                    fields.insert(
                        format!("@{}", attribute.key.as_ref()),
                        Value::String(value.into_owned()),
                    );
                }
                Ok::<_, FormatError>(Element {
                    name: start.name().as_ref().to_owned(),
                    fields,
                    text: String::new(),
                })
            };
            let mut close = |element: Element, stack: &mut Vec<Element>| {
                let name = element.name.clone();
                let value = element.into_value();
                match stack.last_mut() {
                    Some(parent) => add(&mut parent.fields, name, value),
                    None => root = Some((name, value)),
                }
            };
            match event {
                Event::Start(start) => stack.push(open(&start)?),
                Event::Empty(start) => {
                    let element = open(&start)?;
                    close(element, &mut stack);
                }
                Event::End(_) => {
                    if let Some(element) = stack.pop() {
                        close(element, &mut stack);
                    }
                }
                Event::Text(content) => {
                    if let Some(element) = stack.last_mut() {
                        element.text.push_str(&content.xml10_content());
                    }
                }
                Event::CData(content) => {
                    if let Some(element) = stack.last_mut() {
                        element.text.push_str(&content.into_inner());
                    }
                }
                Event::GeneralRef(reference) => {
                    let resolved = match reference.resolve_char_ref() {
                        Ok(Some(character)) => character.to_string(),
                        Ok(None) => match &*reference {
                            "amp" => String::from("&"),
                            "lt" => String::from("<"),
                            "gt" => String::from(">"),
                            "quot" => String::from("\""),
                            "apos" => String::from("'"),
                            other => {
                                return Err(error(
                                    reader.buffer_position(),
                                    format!("unknown entity `&{other};`"),
                                ));
                            }
                        },
                        Err(cause) => {
                            return Err(error(reader.buffer_position(), cause.to_string()));
                        }
                    };
                    if let Some(element) = stack.last_mut() {
                        element.text.push_str(&resolved);
                    }
                }
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
        if let Some(open) = stack.last() {
            return Err(error(
                reader.buffer_position(),
                format!("`<{}>` is not closed", open.name),
            ));
        }
        let (name, value) = root.ok_or_else(|| error(0, String::from("there is no element")))?;
        let mut document = Map::new();
        document.insert(name, value);
        Ok(Value::Object(document))
    }

    pub(super) fn write(value: &Value) -> Result<Vec<u8>, FormatError> {
        let invalid = |message: &str| FormatError::new(Format::Xml, None, message);
        let Value::Object(document) = value else {
            return Err(invalid(
                "XML is written from an object with one key, the root element",
            ));
        };
        let mut root = document.iter();
        let (Some((name, element)), None) = (root.next(), root.next()) else {
            return Err(invalid(
                "XML is written from an object with one key, the root element",
            ));
        };
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        write_element(&mut out, name, element, 0)?;
        Ok(out.into_bytes())
    }

    fn write_element(
        out: &mut String,
        name: &str,
        value: &Value,
        depth: usize,
    ) -> Result<(), FormatError> {
        if name.is_empty() || name.starts_with(['@', '#']) || name.contains(char::is_whitespace) {
            return Err(FormatError::new(
                Format::Xml,
                None,
                format!("`{name}` is not an element name"),
            ));
        }
        if let Value::Array(items) = value {
            for item in items {
                write_element(out, name, item, depth)?;
            }
            return Ok(());
        }
        let indent = "  ".repeat(depth);
        out.push_str(&indent);
        out.push('<');
        out.push_str(name);
        let Value::Object(fields) = value else {
            let text = text_of(value);
            if text.is_empty() {
                out.push_str("/>\n");
            } else {
                out.push('>');
                out.push_str(&quick_xml::escape::escape(text.as_str()));
                out.push_str(&format!("</{name}>\n"));
            }
            return Ok(());
        };
        for (key, value) in fields {
            if let Some(attribute) = key.strip_prefix('@') {
                let text = text_of(value);
                out.push_str(&format!(
                    " {attribute}=\"{}\"",
                    quick_xml::escape::escape(text.as_str())
                ));
            }
        }
        let children: Vec<(&String, &Value)> = fields
            .iter()
            .filter(|(key, _)| !key.starts_with(['@', '#']))
            .collect();
        let text = fields.get("#text").map(text_of).unwrap_or_default();
        if children.is_empty() && text.is_empty() {
            out.push_str("/>\n");
            return Ok(());
        }
        out.push('>');
        out.push_str(&quick_xml::escape::escape(text.as_str()));
        if !children.is_empty() {
            out.push('\n');
            for (child, value) in children {
                write_element(out, child, value, depth + 1)?;
            }
            out.push_str(&indent);
        }
        out.push_str(&format!("</{name}>\n"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn csv(text: &str) -> Result<Value, FormatError> {
        read(Format::Csv, text.as_bytes(), &CsvOptions::default())
    }

    #[test]
    fn csv_rows_map_to_the_header() {
        let rows =
            csv("id,name,note\n1,Ada,\"likes, commas\"\n2,Grace,\"says \"\"hi\"\"\"\n").unwrap();
        assert_eq!(
            rows,
            json!([
                {"id": "1", "name": "Ada", "note": "likes, commas"},
                {"id": "2", "name": "Grace", "note": "says \"hi\""}
            ])
        );
        let semicolons = CsvOptions {
            delimiter: b';',
            header: false,
            ..CsvOptions::default()
        };
        assert_eq!(
            read(Format::Csv, b"a;b\nc;d\n", &semicolons).unwrap(),
            json!([["a", "b"], ["c", "d"]])
        );
    }

    #[test]
    fn a_malformed_csv_names_its_line_and_column() {
        let error = csv("id,name\n1,Ada\n2,Grace,extra\n").unwrap_err();
        assert_eq!(error.at, Some((3, 3)));
        assert_eq!(
            error.to_string(),
            "csv at line 3, column 3: the row has 3 fields where the first row has 2"
        );
        let short = csv("id,name,email\n1,Ada\n").unwrap_err();
        assert_eq!(short.at, Some((2, 3)));
    }

    #[test]
    fn csv_is_written_with_the_columns_asked_for() {
        let rows =
            json!([{"id": 1, "name": "Ada, Countess", "vip": true}, {"id": 2, "name": null}]);
        let options = CsvOptions {
            columns: Some(vec!["name".into(), "id".into()]),
            ..CsvOptions::default()
        };
        let written = write(Format::Csv, &rows, &options).unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            "name,id\n\"Ada, Countess\",1\n,2\n"
        );
        assert!(write(Format::Csv, &json!({"a": 1}), &CsvOptions::default()).is_err());
    }

    #[test]
    fn ndjson_and_json_errors_name_their_line() {
        assert_eq!(
            read(
                Format::Ndjson,
                b"{\"a\":1}\n\n{\"a\":2}\n",
                &CsvOptions::default()
            )
            .unwrap(),
            json!([{"a": 1}, {"a": 2}])
        );
        let error = read(
            Format::Ndjson,
            b"{\"a\":1}\n{\"a\":}\n",
            &CsvOptions::default(),
        )
        .unwrap_err();
        assert_eq!(error.at, Some((2, 6)), "{error}");
        let error = read(Format::Json, b"{\n  \"a\": 1,,\n}", &CsvOptions::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "json at line 2, column 10: key must be a string"
        );
        let lines = write(
            Format::Ndjson,
            &json!([{"a": 1}, 2]),
            &CsvOptions::default(),
        )
        .unwrap();
        assert_eq!(String::from_utf8(lines).unwrap(), "{\"a\":1}\n2\n");
    }

    #[test]
    fn xml_reads_to_json_with_attributes_and_back() {
        let text = r#"<?xml version="1.0"?>
<order id="o-1" currency="EUR">
  <line sku="A-1">2</line>
  <line sku="B-2">1</line>
  <note>fragile &amp; urgent &#33;</note>
  <empty/>
</order>"#;
        let value = read(Format::Xml, text.as_bytes(), &CsvOptions::default()).unwrap();
        assert_eq!(
            value,
            json!({"order": {
                "@id": "o-1", "@currency": "EUR",
                "line": [{"@sku": "A-1", "#text": "2"}, {"@sku": "B-2", "#text": "1"}],
                "note": "fragile & urgent !",
                "empty": ""
            }})
        );
        let written = write(Format::Xml, &value, &CsvOptions::default()).unwrap();
        let again = read(Format::Xml, &written, &CsvOptions::default()).unwrap();
        assert_eq!(again, value, "{}", String::from_utf8_lossy(&written));
    }

    #[test]
    fn malformed_xml_names_its_line_and_column() {
        let error = read(Format::Xml, b"<a>\n  <b>\n</a>", &CsvOptions::default()).unwrap_err();
        assert_eq!(error.at.map(|at| at.0), Some(3), "{error}");
        let unclosed = read(Format::Xml, b"<a>\n  <b>x</b>\n", &CsvOptions::default()).unwrap_err();
        assert!(unclosed.message.contains("<a>"), "{unclosed}");
    }

    #[test]
    fn formats_follow_file_names() {
        assert_eq!(Format::of_name("orders-2026-11-23.CSV"), Some(Format::Csv));
        assert_eq!(Format::of_name("events.jsonl"), Some(Format::Ndjson));
        assert_eq!(Format::of_name("README"), None);
    }
}
