//! Where records come from: files, directories, globs, archives (`.zip`, `.tar`,
//! `.tar.gz`/`.tgz`) and compressed files (`.gz`, `.zst`). Archives are read member by
//! member as streams; nothing is extracted to disk.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::IngestError;

/// One stream of records: a file, or a member of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceName {
    /// The file on disk (or URL) it came from.
    pub origin: String,
    /// The member inside an archive, if any.
    pub member: Option<String>,
}

impl SourceName {
    /// A plain file (or any stream not inside an archive).
    pub fn file(origin: impl Into<String>) -> Self {
        SourceName {
            origin: origin.into(),
            member: None,
        }
    }

    /// The name used to detect the table: the member's, else the file's (less `.gz`/`.zst`).
    pub fn file_name(&self) -> &str {
        let name = self.member.as_deref().unwrap_or(&self.origin);
        name.strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".zst"))
            .unwrap_or(name)
    }
}

impl std::fmt::Display for SourceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.member {
            Some(m) => write!(f, "{} [{m}]", self.origin),
            None => f.write_str(&self.origin),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Zip,
    Tar,
    TarGz,
    Gz,
    Zst,
    Plain,
}

fn kind_of(path: &Path) -> Kind {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".zip") {
        Kind::Zip
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Kind::TarGz
    } else if name.ends_with(".tar") {
        Kind::Tar
    } else if name.ends_with(".gz") {
        Kind::Gz
    } else if name.ends_with(".zst") {
        Kind::Zst
    } else {
        Kind::Plain
    }
}

/// Expands the command line's sources into files: directories recursively (sorted, hidden
/// files skipped), globs, plain paths.
pub fn expand(inputs: &[String]) -> Result<Vec<PathBuf>, IngestError> {
    let mut files = Vec::new();
    for input in inputs {
        let local;
        let input = if let Some((scheme, _)) = input.split_once("://") {
            if scheme != "file" {
                return Err(IngestError::Source {
                    source_name: input.clone(),
                    reason: format!("{scheme}:// is not a local path (see expand_inputs)"),
                });
            }
            let url = url::Url::parse(input).map_err(|e| IngestError::Source {
                source_name: input.clone(),
                reason: format!("not a valid URL: {e}"),
            })?;
            local = url
                .to_file_path()
                .map_err(|()| IngestError::Source {
                    source_name: input.clone(),
                    reason: "a file:// URL needs an absolute path".into(),
                })?
                .display()
                .to_string();
            &local
        } else {
            input
        };
        if input.contains(['*', '?', '[']) {
            let paths = glob::glob(input).map_err(|e| IngestError::Source {
                source_name: input.clone(),
                reason: format!("bad glob pattern: {e}"),
            })?;
            let mut matched: Vec<PathBuf> = paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            if matched.is_empty() {
                return Err(IngestError::Source {
                    source_name: input.clone(),
                    reason: "the pattern matches no file".into(),
                });
            }
            matched.sort();
            files.extend(matched);
            continue;
        }
        let path = PathBuf::from(input);
        let meta = std::fs::metadata(&path).map_err(|e| IngestError::Source {
            source_name: input.to_string(),
            reason: e.to_string(),
        })?;
        if meta.is_dir() {
            files.extend(walk(&path, &mut std::collections::HashSet::new())?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

/// File names a directory walk picks up: exports and archives of them.
pub fn is_data_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".zst"))
        .unwrap_or(&name);
    [
        ".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".zip", ".tar", ".tgz",
    ]
    .iter()
    .chain(crate::xlsx::WORKBOOK_EXTENSIONS)
    .any(|ext| name.ends_with(ext))
}

/// The data files below `dir`, in name order. A directory reached again (a symbolic link
/// to an ancestor, or to a directory walked already) is walked once: a link cycle would
/// otherwise never end.
fn walk(
    dir: &Path,
    walked: &mut std::collections::HashSet<PathBuf>,
) -> Result<Vec<PathBuf>, IngestError> {
    let mut out = Vec::new();
    let real = std::fs::canonicalize(dir).map_err(|e| IngestError::Source {
        source_name: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    if !walked.insert(real) {
        tracing::warn!(path = %dir.display(), "skipping: a directory reached again through a link");
        return Ok(out);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| IngestError::Source {
            source_name: dir.display().to_string(),
            reason: e.to_string(),
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(walk(&p, walked)?);
        } else if is_data_file(&p) {
            out.push(p);
        } else {
            tracing::info!(path = %p.display(), "skipping: not a data file or archive");
        }
    }
    Ok(out)
}

/// A member name that would escape a directory if it were extracted (`../x`, `/etc/x`).
/// kefu never extracts, but such an archive is not what an office sends: refuse it.
fn unsafe_member(name: &str) -> bool {
    Path::new(name).components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::RootDir | Component::Prefix(_)
        )
    }) || name.contains("..\\")
}

/// Calls `each` with every record stream of `path`: the file itself, or each member of an
/// archive (directories and hidden members skipped), decompressing on the fly.
pub fn for_each_stream(
    path: &Path,
    each: impl FnMut(SourceName, &mut dyn Read) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    for_each_stream_counted(path, &|_| {}, each)
}

/// How much a compressed source may expand: a small file that decompresses to gigabytes
/// (a "zip bomb") is refused as it is read, never buffered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecompressionLimits {
    /// Decompressed bytes per compressed byte of the source, at most (past `allowance`).
    pub max_ratio: u64,
    /// Decompressed bytes any source may reach whatever its ratio (a tiny file of
    /// repeated text legitimately compresses far beyond `max_ratio`).
    pub allowance: u64,
    /// Decompressed bytes of one source at most.
    pub max_bytes: u64,
}

/// The default [`DecompressionLimits::max_ratio`]: CSV exports compress 5–20× with gzip
/// or zstd; 100× leaves room for very repetitive ones.
pub const DEFAULT_MAX_DECOMPRESSION_RATIO: u64 = 100;

impl Default for DecompressionLimits {
    fn default() -> Self {
        DecompressionLimits {
            max_ratio: DEFAULT_MAX_DECOMPRESSION_RATIO,
            allowance: 16 << 20,
            max_bytes: 64 << 30,
        }
    }
}

impl DecompressionLimits {
    /// The decompressed bytes a source of `compressed` bytes may reach.
    pub fn limit_for(&self, compressed: u64) -> u64 {
        compressed
            .saturating_mul(self.max_ratio)
            .max(self.allowance)
            .min(self.max_bytes)
    }
}

/// The error inside the `std::io::Error` a source beyond its [`DecompressionLimits`]
/// fails with.
#[derive(Debug)]
pub struct ExpansionLimit(String);

impl std::fmt::Display for ExpansionLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExpansionLimit {}

impl ExpansionLimit {
    /// Whether `error` is a source stopped at its decompression limit.
    pub fn is_cause_of(error: &IngestError) -> bool {
        match error {
            IngestError::Read { error, .. } => error
                .get_ref()
                .is_some_and(|e| e.downcast_ref::<ExpansionLimit>().is_some()),
            _ => false,
        }
    }
}

/// The decompressed bytes one source may still yield (shared by the members of an
/// archive).
struct Budget {
    read: std::cell::Cell<u64>,
    limit: u64,
    compressed: u64,
    ratio: u64,
}

impl Budget {
    fn wrap<R>(&self, inner: R) -> Expanded<'_, R> {
        Expanded {
            inner,
            budget: self,
        }
    }
}

/// A decompressed stream counted against its source's [`Budget`].
struct Expanded<'a, R> {
    inner: R,
    budget: &'a Budget,
}

impl<R: Read> Read for Expanded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Budget {
            read,
            limit,
            compressed,
            ratio,
        } = self.budget;
        // Never hand out more than the limit allows, so the excess is not even read.
        let room = limit.saturating_sub(read.get());
        if room == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            return Err(std::io::Error::other(ExpansionLimit(format!(
                "decompresses to more than {limit} bytes from {compressed} compressed bytes \
                 (at most {ratio}× its size is read; raise --max-decompression-ratio if the \
                 export is genuine)"
            ))));
        }
        let take = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..take])?;
        read.set(read.get() + n as u64);
        Ok(n)
    }
}

/// Counts the bytes read from the file (compressed bytes, for archives).
struct Counted<'a, R> {
    inner: R,
    on_read: &'a (dyn Fn(&[u8]) + Sync),
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.on_read)(&buf[..n]);
        Ok(n)
    }
}

impl<R: std::io::Seek> std::io::Seek for Counted<'_, R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// [`for_each_stream`], calling `on_read` with the bytes of `path` as they are read (for
/// progress, and hashing).
pub fn for_each_stream_counted(
    path: &Path,
    on_read: &(dyn Fn(&[u8]) + Sync),
    each: impl FnMut(SourceName, &mut dyn Read) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    for_each_input_stream(&Input::Local(path.to_path_buf()), on_read, each)
}

/// A source as the command line names it: a local file, or an object in a store.
#[derive(Debug, Clone)]
pub enum Input {
    Local(PathBuf),
    Object(crate::object::ObjectSource),
}

trait ReadSeek: Read + std::io::Seek + Send {}
impl<T: Read + std::io::Seek + Send> ReadSeek for T {}

impl Input {
    /// The path or URL, as reports and the ledger name the source.
    pub fn name(&self) -> String {
        match self {
            Input::Local(p) => p.display().to_string(),
            Input::Object(o) => o.url.clone(),
        }
    }

    pub fn size(&self) -> Result<u64, IngestError> {
        match self {
            Input::Local(p) => {
                std::fs::metadata(p)
                    .map(|m| m.len())
                    .map_err(|error| IngestError::Read {
                        source_name: self.name(),
                        error,
                    })
            }
            Input::Object(o) => Ok(o.size),
        }
    }

    /// When the source was last modified (when it arrived), where the store tells.
    pub fn modified(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Input::Local(p) => std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .map(chrono::DateTime::<chrono::Utc>::from),
            Input::Object(o) => Some(o.modified),
        }
    }

    /// The name that tells the container kind (`.zip`, `.tar.gz`, …).
    fn kind(&self) -> Kind {
        match self {
            Input::Local(p) => kind_of(p),
            Input::Object(o) => kind_of(Path::new(o.location.as_ref())),
        }
    }

    /// Whether the source is read once, front to back (everything but zip archives, whose
    /// directory sits at the end), so it can be hashed as it is read.
    pub fn reads_sequentially(&self) -> bool {
        self.kind() != Kind::Zip
    }

    /// The source's raw bytes, from the start.
    pub fn open(&self) -> Result<Box<dyn Read + Send>, IngestError> {
        Ok(self.open_seekable()?)
    }

    fn open_seekable(&self) -> Result<Box<dyn ReadSeek>, IngestError> {
        match self {
            Input::Local(p) => Ok(Box::new(File::open(p).map_err(|error| {
                IngestError::Read {
                    source_name: self.name(),
                    error,
                }
            })?)),
            Input::Object(o) => Ok(Box::new(crate::object::ObjectReader::new(o))),
        }
    }
}

/// Expands the command line's sources: local files, directories and globs as [`expand`]
/// does, and `s3://bucket/key` objects or `s3://bucket/prefix/` listings (whose requests
/// run on `runtime`).
pub fn expand_inputs(
    runtime: &tokio::runtime::Handle,
    inputs: &[String],
) -> Result<Vec<Input>, IngestError> {
    let mut out = Vec::new();
    for input in inputs {
        if input.starts_with("s3://") {
            out.extend(
                crate::object::list(runtime, input)?
                    .into_iter()
                    .map(Input::Object),
            );
        } else {
            out.extend(
                expand(std::slice::from_ref(input))?
                    .into_iter()
                    .map(Input::Local),
            );
        }
    }
    Ok(out)
}

/// [`for_each_stream_counted`] for any [`Input`], with the default
/// [`DecompressionLimits`].
pub fn for_each_input_stream(
    input: &Input,
    on_read: &(dyn Fn(&[u8]) + Sync),
    each: impl FnMut(SourceName, &mut dyn Read) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    for_each_input_stream_limited(input, &DecompressionLimits::default(), on_read, each)
}

/// [`for_each_input_stream`] within `limits`: the decompressed bytes of a compressed
/// source (all members of an archive together) are bounded by its compressed size.
pub fn for_each_input_stream_limited(
    input: &Input,
    limits: &DecompressionLimits,
    on_read: &(dyn Fn(&[u8]) + Sync),
    mut each: impl FnMut(SourceName, &mut dyn Read) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let origin = input.name();
    let compressed = input.size()?;
    let budget = Budget {
        read: std::cell::Cell::new(0),
        limit: limits.limit_for(compressed),
        compressed,
        ratio: limits.max_ratio,
    };
    let open_err = |e: std::io::Error| IngestError::Read {
        source_name: origin.clone(),
        error: e,
    };
    let file = Counted {
        inner: input.open_seekable()?,
        on_read,
    };
    let archive_err = |reason: String| IngestError::Source {
        source_name: origin.clone(),
        reason,
    };
    let name = |member: Option<String>| SourceName {
        origin: origin.clone(),
        member,
    };
    // An archive without a single data member is refused, not recorded as ingested.
    let mut members = 0usize;
    let mut each = |name: SourceName, reader: &mut dyn Read| {
        members += 1;
        each(name, reader)
    };
    let result = match input.kind() {
        Kind::Plain => each(name(None), &mut BufReader::new(file)),
        Kind::Gz => each(
            name(None),
            &mut budget.wrap(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        ),
        Kind::Zst => {
            let decoder = zstd::Decoder::new(file).map_err(open_err)?;
            each(name(None), &mut budget.wrap(decoder))
        }
        Kind::Zip => {
            let mut zip = zip::ZipArchive::new(BufReader::new(file))
                .map_err(|e| archive_err(format!("not a readable zip archive: {e}")))?;
            for i in 0..zip.len() {
                let mut member = zip
                    .by_index(i)
                    .map_err(|e| archive_err(format!("member {i}: {e}")))?;
                let member_name = member
                    .name()
                    .map_err(|e| archive_err(format!("member {i}: {e}")))?
                    .into_owned();
                if member.is_dir() || hidden(&member_name) {
                    continue;
                }
                if unsafe_member(&member_name) {
                    return Err(archive_err(format!(
                        "member '{member_name}' has a path that leaves the archive; refusing it"
                    )));
                }
                each(name(Some(member_name)), &mut budget.wrap(&mut member))?;
            }
            Ok(())
        }
        Kind::Tar => tar_members(tar::Archive::new(BufReader::new(file)), &origin, each),
        Kind::TarGz => tar_members(
            tar::Archive::new(budget.wrap(flate2::read::MultiGzDecoder::new(BufReader::new(file)))),
            &origin,
            &mut each,
        ),
    };
    result?;
    if members == 0 {
        return Err(archive_err(
            "the archive holds no data file (directories, hidden files and __MACOSX are \
             skipped); nothing of it was ingested"
                .into(),
        ));
    }
    Ok(())
}

fn hidden(member: &str) -> bool {
    member
        .rsplit('/')
        .next()
        .is_some_and(|n| n.starts_with('.') || n.is_empty())
        || member.starts_with("__MACOSX/")
}

fn tar_members<R: Read>(
    mut archive: tar::Archive<R>,
    origin: &str,
    mut each: impl FnMut(SourceName, &mut dyn Read) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let err = |reason: String| IngestError::Source {
        source_name: origin.to_string(),
        reason,
    };
    let entries = archive
        .entries()
        .map_err(|e| err(format!("not a readable tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| err(format!("damaged tar archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if hidden(&member) {
            continue;
        }
        if unsafe_member(&member) {
            return Err(err(format!(
                "member '{member}' has a path that leaves the archive; refusing it"
            )));
        }
        each(
            SourceName {
                origin: origin.to_string(),
                member: Some(member),
            },
            &mut entry,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_walks_pick_up_data_files() {
        for name in [
            "a.csv",
            "B.CSV",
            "c.tsv",
            "d.csv.gz",
            "e.zip",
            "f.tar.gz",
            "g.tgz",
            "h.txt.zst",
        ] {
            assert!(is_data_file(Path::new(name)), "{name}");
        }
        for name in ["manifest.json", "notes.md", "x.gz.bak", "report.pdf"] {
            assert!(!is_data_file(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn member_paths_that_leave_the_archive_are_unsafe() {
        assert!(unsafe_member("../evil.csv"));
        assert!(unsafe_member("a/../../evil.csv"));
        assert!(unsafe_member("/etc/passwd"));
        assert!(unsafe_member("..\\evil.csv"));
        assert!(!unsafe_member("calls_20260101.csv"));
        assert!(!unsafe_member("2026/01/话务记录.csv"));
    }

    #[test]
    fn table_detection_names_drop_compression_suffixes() {
        let n = SourceName {
            origin: "in/calls.csv.gz".into(),
            member: None,
        };
        assert_eq!(n.file_name(), "in/calls.csv");
        let m = SourceName {
            origin: "a.zip".into(),
            member: Some("工单_20260101.csv".into()),
        };
        assert_eq!(m.file_name(), "工单_20260101.csv");
        assert_eq!(m.to_string(), "a.zip [工单_20260101.csv]");
    }
}
