//! Streaming CSV reading on top of csv-core, with fixed-size buffers.

use std::io::{self, Read};

use csv_core::ReadRecordResult;
use serde::{Deserialize, Serialize};

use crate::mapping::{Mapping, MappingError, column_label};
use crate::record::{self, Issue, Plan, RawFields, RowOutcome, Severity};

/// Bounds that keep a hostile or broken file from exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest record, quotes and line end included.
    pub max_record_bytes: usize,
    pub max_columns: usize,
    pub max_field_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 64 * 1024,
            max_columns: 200,
            max_field_bytes: 16 * 1024,
        }
    }
}

/// A problem that stops the whole file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: reading the file failed: {source}")]
    Io {
        line: u64,
        #[source]
        source: io::Error,
    },
    #[error("the file is empty: it has no header line")]
    Empty,
    #[error("line {line}: the header line has no column names")]
    EmptyHeader { line: u64 },
    #[error(
        "line {line}: the header is not valid UTF-8 text (column {column}); choose the file's encoding (the wizard offers them, the API takes `encoding`) or save it as \"CSV UTF-8\""
    )]
    HeaderEncoding { line: u64, column: usize },
    #[error("line {line}: a record is longer than {limit} bytes; is a quote (\") left unclosed?")]
    RecordTooLong { line: u64, limit: usize },
    #[error(
        "line {line}: the value in column '{column}' is longer than {limit} bytes; is a quote (\") left unclosed?"
    )]
    FieldTooLong {
        line: u64,
        column: String,
        limit: usize,
    },
    #[error("line {line}: more than {limit} columns")]
    TooManyColumns { line: u64, limit: usize },
}

impl ImportError {
    /// The line the error names, when it names one.
    pub fn line(&self) -> Option<u64> {
        match self {
            ImportError::Io { line, .. }
            | ImportError::EmptyHeader { line }
            | ImportError::HeaderEncoding { line, .. }
            | ImportError::RecordTooLong { line, .. }
            | ImportError::FieldTooLong { line, .. }
            | ImportError::TooManyColumns { line, .. } => Some(*line),
            ImportError::Empty => None,
        }
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";
const READ_CHUNK: usize = 64 * 1024;

/// Reads lead rows from a CSV stream one record at a time.
///
/// Memory stays bounded by [`Limits`] whatever the input: the record buffer is allocated once at
/// `max_record_bytes` and a longer record is an [`ImportError`], never a bigger buffer.
pub struct Reader<R: Read> {
    input: R,
    core: csv_core::Reader,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    out: Vec<u8>,
    ends: Vec<usize>,
    limits: Limits,
    consumed: u64,
    newlines: u64,
    delimiter: u8,
    header_line: u64,
    mapping: Mapping,
    plan: Plan,
    labels: Vec<String>,
    header_issues: Vec<Issue>,
    blank_rows: u64,
    finished: bool,
}

struct RawRecord {
    line: u64,
    fields: usize,
}

impl<R: Read> Reader<R> {
    /// Reads the header (skipping a UTF-8 byte-order mark, detecting ',' ';' or tab as the
    /// delimiter) and maps it with [`Mapping::auto`]. The returned mapping is the one in force; it
    /// is not validated here so that the wizard can show and correct it.
    pub fn new(input: R, limits: Limits) -> Result<(Self, Mapping), ImportError> {
        let limits = Limits {
            max_record_bytes: limits.max_record_bytes.max(1),
            max_columns: limits.max_columns.max(1),
            max_field_bytes: limits.max_field_bytes.max(1),
        };
        let mut reader = Reader {
            input,
            core: csv_core::Reader::new(),
            buf: vec![0; READ_CHUNK.max(limits.max_record_bytes.saturating_add(BOM.len()))],
            pos: 0,
            len: 0,
            eof: false,
            out: vec![0; limits.max_record_bytes],
            ends: vec![0; limits.max_columns],
            limits,
            consumed: 0,
            newlines: 0,
            delimiter: b',',
            header_line: 1,
            mapping: Mapping {
                dialect: crate::Dialect::Unknown,
                columns: Vec::new(),
                headers: Vec::new(),
            },
            plan: Plan::new(&[]),
            labels: Vec::new(),
            header_issues: Vec::new(),
            blank_rows: 0,
            finished: false,
        };
        reader.skip_bom()?;
        reader.delimiter = reader.sniff_delimiter()?;
        reader.core = csv_core::ReaderBuilder::new()
            .delimiter(reader.delimiter)
            .build();

        let Some(raw) = reader.read_raw()? else {
            return Err(ImportError::Empty);
        };
        reader.check_field_lengths(&raw)?;
        let fields = RawFields {
            data: &reader.out,
            ends: &reader.ends[..raw.fields],
        };
        let mut headers = Vec::with_capacity(raw.fields);
        for i in 0..raw.fields {
            let name =
                std::str::from_utf8(fields.get(i)).map_err(|_| ImportError::HeaderEncoding {
                    line: raw.line,
                    column: i + 1,
                })?;
            headers.push(name.trim().to_owned());
        }
        if headers.iter().all(String::is_empty) {
            return Err(ImportError::EmptyHeader { line: raw.line });
        }
        reader.header_line = raw.line;
        reader.labels = (0..headers.len())
            .map(|i| column_label(headers.get(i).map(String::as_str), i))
            .collect();
        reader.header_issues = header_issues(&headers, raw.line);
        let mapping = Mapping::auto(&headers);
        reader.plan = Plan::new(&mapping.columns);
        reader.mapping = mapping.clone();
        Ok((reader, mapping))
    }

    /// Replaces the mapping, e.g. with one the user corrected in the wizard and that the server
    /// stored. It must be valid and made for this file's header.
    pub fn with_mapping(mut self, mapping: Mapping) -> Result<Self, MappingError> {
        mapping.validate()?;
        let file = &self.mapping.headers;
        if mapping.headers.len() != file.len() {
            return Err(MappingError::ColumnCount {
                mapping: mapping.headers.len(),
                file: file.len(),
            });
        }
        if let Some(i) = (0..file.len()).find(|&i| mapping.headers[i].trim() != file[i]) {
            return Err(MappingError::HeaderMismatch {
                column: i + 1,
                expected: mapping.headers[i].clone(),
                found: file[i].clone(),
            });
        }
        self.plan = Plan::new(&mapping.columns);
        self.mapping = mapping;
        Ok(self)
    }

    /// The next non-blank row, `None` at the end of the file. After an `Err` the reader is
    /// finished: an [`ImportError`] means the rest of the file cannot be trusted.
    pub fn next_row(&mut self) -> Option<Result<RowOutcome, ImportError>> {
        while !self.finished {
            let raw = match self.read_raw() {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            };
            if let Err(e) = self.check_field_lengths(&raw) {
                self.finished = true;
                return Some(Err(e));
            }
            let fields = RawFields {
                data: &self.out,
                ends: &self.ends[..raw.fields],
            };
            match record::build(raw.line, &fields, &self.plan, &self.labels) {
                Some(outcome) => return Some(Ok(outcome)),
                None => self.blank_rows += 1,
            }
        }
        self.finished = true;
        None
    }

    /// Bytes of input consumed so far, for progress against the file's size.
    /// The input, for what it can say about itself (a [`crate::Decoded`] input's position in
    /// the file it decodes).
    pub fn get_ref(&self) -> &R {
        &self.input
    }

    pub fn bytes_read(&self) -> u64 {
        self.consumed
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// The line the header was found on (1 unless the file starts with blank lines).
    pub fn header_line(&self) -> u64 {
        self.header_line
    }

    /// Empty or duplicate column names, as warnings on the header line.
    pub fn header_issues(&self) -> &[Issue] {
        &self.header_issues
    }

    /// Rows skipped because every cell was blank.
    pub fn blank_rows(&self) -> u64 {
        self.blank_rows
    }

    fn fill(&mut self) -> Result<(), ImportError> {
        if self.pos == self.len {
            self.pos = 0;
            self.len = 0;
        } else if self.len == self.buf.len() && self.pos > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
        }
        if self.len == self.buf.len() {
            return Ok(());
        }
        loop {
            match self.input.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.len += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ImportError::Io {
                        line: self.newlines + 1,
                        source,
                    });
                }
            }
        }
    }

    fn skip_bom(&mut self) -> Result<(), ImportError> {
        while self.len - self.pos < BOM.len() && !self.eof {
            self.fill()?;
        }
        if self.buf[self.pos..self.len].starts_with(BOM) {
            self.pos += BOM.len();
            self.consumed += BOM.len() as u64;
        }
        Ok(())
    }

    /// Picks the delimiter that occurs most often outside quotes on the first non-blank line
    /// (',' on ties and when there is none, as in a one-column file).
    fn sniff_delimiter(&mut self) -> Result<u8, ImportError> {
        const CANDIDATES: [u8; 3] = [b',', b';', b'\t'];
        loop {
            let (line_complete, counts) = count_delimiters(&self.buf[self.pos..self.len]);
            let window_full = self.len - self.pos >= self.limits.max_record_bytes;
            if line_complete || self.eof || window_full {
                let mut best = 0;
                for i in 1..CANDIDATES.len() {
                    if counts[i] > counts[best] {
                        best = i;
                    }
                }
                return Ok(CANDIDATES[best]);
            }
            self.fill()?;
        }
    }

    fn read_raw(&mut self) -> Result<Option<RawRecord>, ImportError> {
        let (mut out_len, mut n_ends) = (0, 0);
        let base = self.newlines;
        let mut leading_newlines = 0;
        let mut started = false;
        let mut record_bytes = 0;
        loop {
            if self.pos == self.len && !self.eof {
                self.fill()?;
            }
            let input = &self.buf[self.pos..self.len];
            let (result, nin, nout, nend) =
                self.core
                    .read_record(input, &mut self.out[out_len..], &mut self.ends[n_ends..]);
            let used = &input[..nin];
            // The record's line is that of its first byte, after any blank lines csv-core skips
            // (and the '\n' of a CRLF it may leave for the next call).
            let content_from = if started {
                0
            } else {
                match used.iter().position(|&b| b != b'\n' && b != b'\r') {
                    Some(i) => {
                        started = true;
                        leading_newlines += count_newlines(&used[..i]);
                        i
                    }
                    None => {
                        leading_newlines += count_newlines(used);
                        nin
                    }
                }
            };
            record_bytes += nin - content_from;
            self.newlines += count_newlines(used);
            self.consumed += nin as u64;
            self.pos += nin;
            out_len += nout;
            n_ends += nend;
            let line = base + leading_newlines + 1;
            let too_long = ImportError::RecordTooLong {
                line,
                limit: self.limits.max_record_bytes,
            };
            // The terminator is allowed on top of the limit.
            if record_bytes > self.limits.max_record_bytes + 2 {
                return Err(too_long);
            }
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => return Err(too_long),
                ReadRecordResult::OutputEndsFull => {
                    return Err(ImportError::TooManyColumns {
                        line,
                        limit: self.limits.max_columns,
                    });
                }
                ReadRecordResult::Record => {
                    return Ok(Some(RawRecord {
                        line,
                        fields: n_ends,
                    }));
                }
                ReadRecordResult::End => return Ok(None),
            }
        }
    }

    fn check_field_lengths(&self, raw: &RawRecord) -> Result<(), ImportError> {
        let mut start = 0;
        for (i, &end) in self.ends[..raw.fields].iter().enumerate() {
            if end - start > self.limits.max_field_bytes {
                return Err(ImportError::FieldTooLong {
                    line: raw.line,
                    column: column_label(self.labels.get(i).map(String::as_str), i),
                    limit: self.limits.max_field_bytes,
                });
            }
            start = end;
        }
        Ok(())
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<RowOutcome, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row()
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Counts ',', ';' and tab outside quotes up to the end of the first non-blank line; the flag
/// says whether that line end was found.
fn count_delimiters(bytes: &[u8]) -> (bool, [usize; 3]) {
    let mut counts = [0; 3];
    let mut in_quotes = false;
    let mut seen_content = false;
    for &b in bytes {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' | b'\r' if !in_quotes => {
                if seen_content {
                    return (true, counts);
                }
                continue;
            }
            b',' if !in_quotes => counts[0] += 1,
            b';' if !in_quotes => counts[1] += 1,
            b'\t' if !in_quotes => counts[2] += 1,
            _ => {}
        }
        seen_content = true;
    }
    (false, counts)
}

fn header_issues(headers: &[String], line: u64) -> Vec<Issue> {
    let mut issues = Vec::new();
    for (i, header) in headers.iter().enumerate() {
        let reason = if header.is_empty() {
            "the column has no name; it is not imported unless you map it".to_owned()
        } else if let Some(j) = headers[..i]
            .iter()
            .position(|h| h.to_lowercase() == header.to_lowercase())
        {
            format!(
                "the same name as column {}; only one of them is mapped automatically unless the field takes several columns (tags, notes, do_not_contact)",
                j + 1
            )
        } else {
            continue;
        };
        issues.push(Issue {
            line,
            column: column_label(Some(header), i),
            reason,
            severity: Severity::Warn,
        });
    }
    issues
}

/// What the import wizard shows before the user confirms the mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    pub mapping: Mapping,
    pub delimiter: u8,
    pub header_issues: Vec<Issue>,
    /// The first rows, as they would be imported with `mapping`.
    pub rows: Vec<RowOutcome>,
}

/// Reads the header and the first `rows` non-blank rows with default [`Limits`].
pub fn preview<R: Read>(input: R, rows: usize) -> Result<Preview, ImportError> {
    let (mut reader, mapping) = Reader::new(input, Limits::default())?;
    let mut outcomes = Vec::with_capacity(rows.min(1000));
    while outcomes.len() < rows {
        match reader.next_row() {
            Some(outcome) => outcomes.push(outcome?),
            None => break,
        }
    }
    Ok(Preview {
        mapping,
        delimiter: reader.delimiter,
        header_issues: reader.header_issues,
        rows: outcomes,
    })
}
