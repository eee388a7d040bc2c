//! Maps a field path (`sources[1].secret_env`) to its line in the YAML text, so semantic
//! errors found after parsing can still name a line. It reads block-style YAML (what people
//! write in config files); a path it cannot place falls back to its nearest placed parent.

use std::collections::HashMap;

/// Field path → 1-based line number.
#[derive(Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
}

struct Frame {
    indent: usize,
    segment: String,
    is_item: bool,
}

impl LineIndex {
    /// Indexes every mapping key and sequence item of a block-style YAML document.
    pub fn build(text: &str) -> Self {
        let mut index = LineIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut items: HashMap<String, usize> = HashMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line_no = n + 1;
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
                continue;
            }
            let mut col = raw.len() - trimmed.len();
            let mut rest = trimmed;
            // One or more "- " item markers, then possibly a key.
            while rest == "-" || rest.starts_with("- ") {
                while stack
                    .last()
                    .is_some_and(|f| f.indent > col || (f.indent == col && f.is_item))
                {
                    stack.pop();
                }
                let parent = path_of(&stack);
                let counter = items.entry(parent.clone()).or_insert(0);
                let segment = format!("[{}]", *counter);
                *counter += 1;
                stack.push(Frame {
                    indent: col,
                    segment,
                    is_item: true,
                });
                index.lines.entry(path_of(&stack)).or_insert(line_no);
                let after = rest[1..].trim_start();
                col += rest.len() - after.len();
                rest = after;
            }
            let Some(key) = key_of(rest) else { continue };
            while stack.last().is_some_and(|f| f.indent >= col) {
                stack.pop();
            }
            stack.push(Frame {
                indent: col,
                segment: key,
                is_item: false,
            });
            index.lines.entry(path_of(&stack)).or_insert(line_no);
        }
        index
    }

    /// The line of `path`, or of its nearest parent that has one.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

fn path_of(stack: &[Frame]) -> String {
    let mut out = String::new();
    for f in stack {
        if !f.is_item && !out.is_empty() {
            out.push('.');
        }
        out.push_str(&f.segment);
    }
    out
}

fn key_of(rest: &str) -> Option<String> {
    let (key, quoted) = match rest.as_bytes().first()? {
        q @ (b'"' | b'\'') => {
            let end = rest[1..].find(*q as char)? + 1;
            (&rest[1..end], &rest[end + 1..])
        }
        _ => {
            let colon = rest
                .find(": ")
                .or_else(|| rest.strip_suffix(':').map(|s| s.len()))?;
            (&rest[..colon], &rest[colon..])
        }
    };
    let after = quoted.trim_start();
    if !after.starts_with(':') || key.is_empty() || key.contains(['{', '[', '#']) {
        return None;
    }
    Some(key.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_items_and_falls_back_to_parents() {
        let text = "\
listen: 127.0.0.1:8788
channel:
  enabled: true
  sources: [github]
sources:
  - name: github
    type: github
    secret_env: A
  # a comment
  - name: datadog
    type: datadog
    options:
      header: X
";
        let ix = LineIndex::build(text);
        assert_eq!(ix.line("listen"), Some(1));
        assert_eq!(ix.line("channel.sources"), Some(4));
        assert_eq!(ix.line("sources[0]"), Some(6));
        assert_eq!(ix.line("sources[0].secret_env"), Some(8));
        assert_eq!(ix.line("sources[1].type"), Some(11));
        assert_eq!(ix.line("sources[1].options.header"), Some(13));
        assert_eq!(ix.line("sources[1].nope"), Some(10));
    }

    #[test]
    fn indentless_sequences() {
        let ix = LineIndex::build("sources:\n- name: a\n  type: x\n- name: b\n");
        assert_eq!(ix.line("sources[0].type"), Some(3));
        assert_eq!(ix.line("sources[1].name"), Some(4));
    }
}
