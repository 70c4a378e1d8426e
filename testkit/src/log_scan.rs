//! The secret scan over a test run's directory (`docs/security.md`): every secret recorded
//! under `<dir>/secrets/*.tsv` (`kind<TAB>value` lines) is looked for in every file under
//! `<dir>/logs/`. A finding names the file, the line and the kind of secret; the line is shown
//! with every secret in it replaced by `<kind>`, so the report never repeats a secret.

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;

/// Longest excerpt of a finding's line in the report.
const EXCERPT_CHARS: usize = 300;
/// Findings listed in full; the rest are counted.
const LISTED_FINDINGS: usize = 50;

/// Every secret recorded for a run, by value.
#[derive(Debug, Default)]
struct Secrets {
    values: Vec<String>,
    kinds: Vec<String>,
}

impl Secrets {
    /// Reads every `*.tsv` under `dir` (missing directory: no secrets).
    fn load(dir: &Path) -> std::io::Result<Self> {
        let mut by_value: BTreeMap<String, String> = BTreeMap::new();
        for path in files_under(dir)? {
            if path.extension().is_none_or(|e| e != "tsv") {
                continue;
            }
            for line in std::fs::read_to_string(&path)?.lines() {
                if let Some((kind, value)) = line.split_once('\t') {
                    if !value.is_empty() {
                        by_value
                            .entry(value.to_owned())
                            .or_insert_with(|| kind.to_owned());
                    }
                }
            }
        }
        let (values, kinds) = by_value.into_iter().unzip();
        Ok(Self { values, kinds })
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// How many secrets of each kind.
    fn count_by_kind(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for kind in &self.kinds {
            *counts.entry(kind.clone()).or_default() += 1;
        }
        counts
    }
}

/// One secret found in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    /// 1-based.
    pub line: u64,
    pub kinds: Vec<String>,
    /// The line with every secret replaced by `<kind>`, cut to [`EXCERPT_CHARS`].
    pub redacted: String,
}

/// What a scan read and found.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub log_files: Vec<PathBuf>,
    pub lines: u64,
    pub bytes: u64,
    pub secrets_by_kind: BTreeMap<String, usize>,
    pub findings: Vec<Finding>,
}

impl ScanReport {
    /// Log files whose name starts with `prefix`.
    pub fn files_starting_with(&self, prefix: &str) -> usize {
        self.log_files
            .iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .count()
    }

    pub fn secrets(&self, kind: &str) -> usize {
        self.secrets_by_kind.get(kind).copied().unwrap_or(0)
    }
}

impl fmt::Display for ScanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secrets: Vec<String> = self
            .secrets_by_kind
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        writeln!(
            f,
            "secret scan: {} log files, {} lines, {} bytes; {} secrets ({})",
            self.log_files.len(),
            self.lines,
            self.bytes,
            self.secrets_by_kind.values().sum::<usize>(),
            secrets.join(", ")
        )?;
        for finding in self.findings.iter().take(LISTED_FINDINGS) {
            writeln!(
                f,
                "LEAK {}:{}: {}: {}",
                finding.file.display(),
                finding.line,
                finding.kinds.join(", "),
                finding.redacted
            )?;
        }
        if self.findings.len() > LISTED_FINDINGS {
            writeln!(
                f,
                "… and {} more lines with secrets",
                self.findings.len() - LISTED_FINDINGS
            )?;
        }
        write!(f, "{} lines with secrets", self.findings.len())
    }
}

/// Every regular file under `dir`, sorted (missing directory: none).
fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Activation codes and the like are digits (with separators): inside a longer run of digits
/// (a timestamp, a port, another number) they are a coincidence, not a leak.
fn is_numeric(secret: &str) -> bool {
    secret
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'-' || b == b' ')
}

/// Scans `<dir>/logs/` for the secrets of `<dir>/secrets/`.
pub fn scan(dir: &Path) -> std::io::Result<ScanReport> {
    let secrets = Secrets::load(&dir.join("secrets"))?;
    let mut report = ScanReport {
        log_files: files_under(&dir.join("logs"))?,
        secrets_by_kind: secrets.count_by_kind(),
        ..ScanReport::default()
    };
    let matcher = AhoCorasick::new(&secrets.values).expect("secret patterns build");
    let numeric: Vec<bool> = secrets.values.iter().map(|s| is_numeric(s)).collect();
    let mut findings = Vec::new();
    for path in &report.log_files {
        let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line)?;
            if read == 0 {
                break;
            }
            number += 1;
            report.bytes += read as u64;
            if secrets.is_empty() {
                continue;
            }
            let hits: Vec<(usize, usize, usize)> = matcher
                .find_overlapping_iter(&line)
                .filter(|m| {
                    let id = m.pattern().as_usize();
                    let digit_at = |i: Option<usize>| {
                        i.and_then(|i| line.get(i)).is_some_and(u8::is_ascii_digit)
                    };
                    !numeric[id] || !(digit_at(m.start().checked_sub(1)) || digit_at(Some(m.end())))
                })
                .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
                .collect();
            if !hits.is_empty() {
                findings.push(finding(path, number, &line, &hits, &secrets.kinds));
            }
        }
        report.lines += number;
    }
    report.findings = findings;
    Ok(report)
}

fn finding(
    path: &Path,
    number: u64,
    line: &[u8],
    hits: &[(usize, usize, usize)],
    kinds: &[String],
) -> Finding {
    // Byte-wise redaction: mark every byte of every hit, then copy the rest.
    let mut hidden = vec![None; line.len()];
    for &(start, end, id) in hits {
        for slot in &mut hidden[start..end] {
            *slot = Some(id);
        }
    }
    let mut redacted = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        match hidden[i] {
            Some(id) => {
                redacted.extend_from_slice(format!("<{}>", kinds[id]).as_bytes());
                while i < line.len() && hidden[i].is_some() {
                    i += 1;
                }
            }
            None => {
                redacted.push(line[i]);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&redacted);
    let mut excerpt: String = text.trim_end().chars().take(EXCERPT_CHARS).collect();
    if text.trim_end().chars().count() > EXCERPT_CHARS {
        excerpt.push('…');
    }
    let mut found: Vec<String> = hits.iter().map(|&(_, _, id)| kinds[id].clone()).collect();
    found.sort();
    found.dedup();
    Finding {
        file: path.to_path_buf(),
        line: number,
        kinds: found,
        redacted: excerpt,
    }
}
