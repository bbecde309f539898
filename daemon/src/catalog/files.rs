//! Definition files on disk, shared by [`crate::catalog`] and [`crate::standards`]: which files
//! of a watched directory are read, how YAML/JSON documents are split and parsed with their line
//! numbers, and how a line is found again for faults found after parsing.
//!
//! Everything here is read-only: it never writes, renames or deletes a file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// How deep [`definition_files`] descends; a guard against symlink loops.
const MAX_DEPTH: usize = 16;

/// The file formats readyd reads definitions from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Yaml,
    Json,
}

impl Format {
    /// The format of a file by its extension; `None` for a file readyd does not read.
    pub(crate) fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Whether a file or folder name is one readyd never reads: hidden files (which includes the
/// `.#x` lock files of Emacs and the `.x.swp` files of Vim), editor backups (`x~`, `#x#`) and
/// temporary files (`*.swp`, `*.swx`, `*.tmp`, `*.bak`). Writers that replace a file atomically
/// (write to a temporary name, then rename) therefore never expose a half-written file.
pub fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || (name.starts_with('#') && name.ends_with('#'))
        || [".swp", ".swx", ".tmp", ".bak"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// Every definition file (`*.yaml`, `*.yml`, `*.json`) under `dir`, recursively, sorted by path,
/// skipping [ignored names](is_ignored_name).
pub(crate) fn definition_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    collect(dir, 0, &mut files)?;
    files.sort();
    Ok(files)
}

fn collect(dir: &Path, depth: usize, files: &mut Vec<PathBuf>) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_ignored_name(name) {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks, so a linked folder or file is read like a real one.
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            // A dangling symlink or a file removed while we list: not a definition.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            collect(&path, depth + 1, files)?;
        } else if meta.is_file() && Format::of(&path).is_some() {
            files.push(path);
        }
    }
    Ok(())
}

/// Hashes named contents into a short revision string (16 hex digits of SHA-256), so that two
/// loads of the same files give the same revision whatever order they were read in.
pub(crate) fn revision<'a>(contents: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut sorted: Vec<(&str, &str)> = contents.into_iter().collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    for (name, text) in sorted {
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    hex::encode(&hasher.finalize()[..8])
}

/// A parse fault: what went wrong, and the 1-based line when the parser knows it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParseFault {
    pub line: Option<usize>,
    pub message: String,
}

impl ParseFault {
    pub(crate) fn from_yaml(e: &serde_norway::Error) -> ParseFault {
        let line = e.location().map(|l| l.line());
        let mut message = e.to_string();
        // serde_norway appends " at line L column C"; the line is reported apart.
        if let Some(loc) = e.location() {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        ParseFault { line, message }
    }

    pub(crate) fn from_json(e: &serde_json::Error) -> ParseFault {
        let line = (e.line() > 0).then_some(e.line());
        let mut message = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
        ParseFault { line, message }
    }
}

/// Splits a file into its documents as JSON values (YAML files may hold several documents
/// separated by `---`; a JSON file is one document). Empty YAML documents are kept as `Null`
/// so that document indexes match [`reparse_document`]. YAML merge keys (`<<`) are applied.
pub(crate) fn documents(format: Format, text: &str) -> Result<Vec<serde_json::Value>, ParseFault> {
    match format {
        Format::Json => serde_json::from_str(text)
            .map(|v| vec![v])
            .map_err(|e| ParseFault::from_json(&e)),
        Format::Yaml => {
            let mut docs = Vec::new();
            for de in serde_norway::Deserializer::from_str(text) {
                // The iterator repeats a load failure forever: stop at the first error.
                let mut value: serde_norway::Value = serde::Deserialize::deserialize(de)
                    .map_err(|e: serde_norway::Error| ParseFault::from_yaml(&e))?;
                value.apply_merge().map_err(|e| ParseFault::from_yaml(&e))?;
                let json = serde_json::to_value(&value).map_err(|e| ParseFault {
                    line: None,
                    message: format!("cannot be represented as JSON: {e}"),
                })?;
                docs.push(json);
            }
            Ok(docs)
        }
    }
}

/// Deserializes document `index` of `text` straight from the text, for the sole purpose of
/// getting the parser's located error for a document that failed to convert from its JSON value.
/// Returns the fault, or `None` if the text unexpectedly deserializes.
pub(crate) fn reparse_document<T: DeserializeOwned>(
    format: Format,
    text: &str,
    index: usize,
) -> Option<ParseFault> {
    match format {
        Format::Json => serde_json::from_str::<T>(text)
            .err()
            .map(|e| ParseFault::from_json(&e)),
        Format::Yaml => {
            let de = serde_norway::Deserializer::from_str(text).nth(index)?;
            T::deserialize(de).err().map(|e| ParseFault::from_yaml(&e))
        }
    }
}

/// Finds the first line at or after `from` (1-based) where `key` is given the scalar `value`, in
/// block (`key: value`, `- key: value`) or flow (`{ key: value }`) style, quoted or not.
/// Used to point at an entity or rule after parsing, since the parsed values carry no positions.
pub(crate) fn find_key_value_line(
    text: &str,
    from: usize,
    key: &str,
    value: &str,
) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, line)| line_has_key_value(line, key, value))
        .map(|(i, _)| i + 1)
}

/// Where each line of a text starts, so a search can begin at a line without walking the lines
/// before it (locating every entity of a large file would otherwise be quadratic).
pub(crate) struct LineStarts(Vec<usize>);

impl LineStarts {
    pub(crate) fn new(text: &str) -> LineStarts {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        LineStarts(starts)
    }

    /// The text from the start of 1-based `line` (empty past the end).
    fn text_at_line<'t>(&self, text: &'t str, line: usize) -> &'t str {
        self.0
            .get(line.saturating_sub(1))
            .map_or("", |&at| &text[at..])
    }

    /// `text.lines().count()`, without walking the text.
    pub(crate) fn count(&self, text: &str) -> usize {
        if text.is_empty() {
            0
        } else if text.ends_with('\n') {
            self.0.len() - 1
        } else {
            self.0.len()
        }
    }

    /// [`find_key_value_line`] for the text these starts were made from.
    pub(crate) fn find_key_value_line(
        &self,
        text: &str,
        from: usize,
        key: &str,
        value: &str,
    ) -> Option<usize> {
        let from = from.max(1);
        self.text_at_line(text, from)
            .lines()
            .position(|line| line_has_key_value(line, key, value))
            .map(|i| from + i)
    }
}

/// Finds the first line in `from..until` (1-based, `until` exclusive) that sets `key`, whatever
/// its value.
pub(crate) fn find_key_line(
    text: &str,
    from: usize,
    until: Option<usize>,
    key: &str,
) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .take_while(|(i, _)| until.is_none_or(|u| i + 1 < u))
        .find(|(_, line)| key_positions(line, key).next().is_some())
        .map(|(i, _)| i + 1)
}

/// Byte offsets just after `key:` for every place `key` is used as a mapping key on the line.
fn key_positions<'l>(line: &'l str, key: &'l str) -> impl Iterator<Item = usize> + 'l {
    line.match_indices(key).filter_map(move |(at, _)| {
        let before = line[..at].trim_end_matches(['"', '\'']);
        let starts_key = before
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || matches!(c, '-' | '{' | ','));
        if !starts_key {
            return None;
        }
        let rest = line[at + key.len()..].trim_start_matches(['"', '\'']);
        let rest = rest.trim_start();
        rest.starts_with(':').then(|| line.len() - rest.len() + 1)
    })
}

fn line_has_key_value(line: &str, key: &str, value: &str) -> bool {
    key_positions(line, key).any(|after| {
        let rest = line[after..].trim_start();
        let rest = rest.trim_start_matches(['"', '\'']);
        rest.strip_prefix(value).is_some_and(|tail| {
            tail.chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}' | '#'))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_starts_agree_with_walking_the_lines() {
        let texts = [
            "",
            "\n",
            "- identifier: a\n  kind: service\n- identifier: b\n",
            "- identifier: a\r\n- identifier: b\r\n\r\n- {identifier: c, kind: api}",
            "[{\"identifier\": \"a\"}, {\"identifier\": \"b\"}]",
        ];
        for text in texts {
            let starts = LineStarts::new(text);
            assert_eq!(starts.count(text), text.lines().count(), "{text:?}");
            for from in 0..=text.lines().count() + 2 {
                for value in ["a", "b", "c", "zz"] {
                    assert_eq!(
                        starts.find_key_value_line(text, from, "identifier", value),
                        find_key_value_line(text, from, "identifier", value),
                        "{text:?} from {from} value {value}"
                    );
                }
            }
        }
    }

    #[test]
    fn ignored_names() {
        for name in [
            ".hidden.yaml",
            ".#x.yaml",
            "x.yaml~",
            "#x.yaml#",
            "x.yaml.swp",
            "x.tmp",
            "a.bak",
        ] {
            assert!(is_ignored_name(name), "{name}");
        }
        for name in ["catalog.yaml", "x.json", "payments.yml"] {
            assert!(!is_ignored_name(name), "{name}");
        }
    }

    #[test]
    fn walks_recursively_and_skips_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("team-a");
        fs::create_dir(&sub).unwrap();
        fs::create_dir(dir.path().join(".git")).unwrap();
        for f in [
            "a.yaml",
            "b.json",
            "c.txt",
            ".d.yaml",
            "e.yaml~",
            "f.yaml.tmp",
        ] {
            fs::write(dir.path().join(f), "").unwrap();
        }
        fs::write(sub.join("g.yml"), "").unwrap();
        fs::write(dir.path().join(".git").join("h.yaml"), "").unwrap();
        let names: Vec<String> = definition_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.yaml", "b.json", "team-a/g.yml"]);
    }

    #[test]
    fn key_value_lines() {
        let text = "- identifier: a\n  kind: service\n- { identifier: \"b\", tier: 1 }\n-   identifier: ab # c\n";
        assert_eq!(find_key_value_line(text, 1, "identifier", "a"), Some(1));
        assert_eq!(find_key_value_line(text, 1, "identifier", "b"), Some(3));
        assert_eq!(find_key_value_line(text, 2, "identifier", "ab"), Some(4));
        assert_eq!(find_key_value_line(text, 2, "identifier", "a"), None);
        assert_eq!(find_key_line(text, 2, None, "tier"), Some(3));
        assert_eq!(find_key_line(text, 1, Some(3), "tier"), None);
        // `kind` inside `mykind:` is not the key `kind`.
        assert_eq!(
            find_key_line("mykind: x\nkind: y\n", 1, None, "kind"),
            Some(2)
        );
    }

    #[test]
    fn yaml_documents_and_located_errors() {
        let docs = documents(Format::Yaml, "a: 1\n---\n---\nb: [1, 2]\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1], serde_json::Value::Null);
        assert_eq!(docs[2]["b"][1], 2);
        let fault = documents(Format::Yaml, "a: 1\nb: [1, 2\n").unwrap_err();
        assert!(fault.line.is_some(), "{fault:?}");
        let fault = documents(Format::Json, "{\n\"a\": 1,\n}").unwrap_err();
        assert_eq!(fault.line, Some(3));
        assert!(!fault.message.contains("at line"), "{}", fault.message);
    }

    #[test]
    fn revision_is_order_independent_and_content_sensitive() {
        let a = revision([("x", "1"), ("y", "2")]);
        assert_eq!(a, revision([("y", "2"), ("x", "1")]));
        assert_ne!(a, revision([("x", "1"), ("y", "3")]));
        // Moving text from one file to another is a different revision.
        assert_ne!(
            revision([("x", "12"), ("y", "")]),
            revision([("x", "1"), ("y", "2")])
        );
        assert_eq!(a.len(), 16);
    }
}
