//! The bottom layer: problems found in a configuration, each with file, line, field and a
//! hint, collected so that every one is reported at once. Config parsing and the runtime
//! modules that check their own sections (templates, tools) both report through
//! [`Problems`]; nothing here depends on any other hookwire module.

pub mod locate;

use std::fmt;
use std::path::Path;
use std::path::PathBuf;

use locate::LineIndex;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The field path (`sources[0].secret_env`), empty for the whole file.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a config, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors against one file, placing each by its field path.
pub struct Problems<'a> {
    file: &'a Path,
    index: LineIndex,
    errors: Vec<ConfigError>,
}

impl<'a> Problems<'a> {
    /// Starts collecting errors for `file` whose text is `text`.
    pub fn new(file: &'a Path, text: &str) -> Self {
        Problems {
            file,
            index: LineIndex::build(text),
            errors: Vec::new(),
        }
    }

    /// Records a problem at `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>, hint: Option<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: self.index.line(field),
            field: field.to_owned(),
            message: message.into(),
            hint,
        });
    }

    /// Records a problem at a known line (for example a template's own error).
    pub fn add_at(&mut self, file: &Path, line: Option<usize>, field: &str, message: String) {
        self.errors.push(ConfigError {
            file: file.to_owned(),
            line,
            field: field.to_owned(),
            message,
            hint: None,
        });
    }

    /// All problems, or `Ok` when there were none.
    pub fn finish(mut self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        self.errors
            .sort_by_key(|e| (e.file.clone(), e.line.unwrap_or(usize::MAX)));
        Err(ConfigErrors(self.errors))
    }
}
