//! The event ids a batch has seen, for dropping duplicates in bounded memory.
//!
//! Ids are 64-bit fingerprints. The most recent ones sit in a hash set; when it is
//! full they are sorted and written to an unnamed temporary file (a *run*), and only a
//! binary fuse filter (about 1.1 bytes an id, 1 false positive in 256) and a sparse
//! index (one id in 512) stay in memory. A filter hit is settled by reading one block
//! of the run. Runs of equal size are merged, so a batch of n ids keeps about
//! log2(n / limit) runs, each probed once per row. Spilling and merging run on a
//! background thread while the full set, frozen, still answers.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use xorf::{BinaryFuse8, Filter};

/// Ids kept in the hash set before they spill: 7 million fill a table of 8 Mi slots
/// (about 80 MB) without growing it again, and most batches never spill.
pub const DEFAULT_IDS_IN_MEMORY: usize = 7_000_000;

/// Ids per filter (each filter covers a fixed slice of the fingerprint space).
const FILTER_IDS: usize = 64 * 1024;
/// One id in this many is kept as the sparse index of a run.
const SPARSE_STEP: usize = 512;

/// Hashes that are already 64-bit fingerprints.
#[derive(Default)]
struct Fingerprint(u64);

impl Hasher for Fingerprint {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdSet = HashSet<u64, BuildHasherDefault<Fingerprint>>;

/// The fingerprints seen so far, in memory and in spilled runs.
pub struct SeenIds {
    recent: IdSet,
    limit: usize,
    /// The previous set while it spills.
    frozen: Option<Arc<IdSet>>,
    spilling: Option<JoinHandle<io::Result<Vec<Arc<Run>>>>>,
    runs: Vec<Arc<Run>>,
    spill_dir: PathBuf,
}

impl SeenIds {
    /// Keeps up to `limit` ids in memory; older ones spill to unnamed files in `spill_dir`.
    pub fn new(limit: usize, spill_dir: &Path) -> Self {
        SeenIds {
            recent: IdSet::default(),
            limit: limit.max(1),
            frozen: None,
            spilling: None,
            runs: Vec::new(),
            spill_dir: spill_dir.to_path_buf(),
        }
    }

    /// Sets `new[i]` to whether `ids[i]` is seen for the first time (an earlier id in
    /// `ids` counts as seen) and remembers the new ones.
    pub fn insert_all(&mut self, ids: &[u64], new: &mut Vec<bool>) -> io::Result<()> {
        new.clear();
        if self.spilling.as_ref().is_some_and(|s| s.is_finished()) {
            self.finish_spill()?;
        }
        if self.runs.is_empty() && self.frozen.is_none() {
            new.extend(ids.iter().map(|&id| self.recent.insert(id)));
        } else {
            // Probing one run for all ids at once lets the memory loads overlap.
            let mut old = vec![false; ids.len()];
            if let Some(frozen) = &self.frozen {
                for (id, old) in ids.iter().zip(old.iter_mut()) {
                    *old = frozen.contains(id);
                }
            }
            for run in &self.runs {
                run.probe(ids, &mut old)?;
            }
            new.extend(
                ids.iter()
                    .zip(&old)
                    .map(|(&id, &old)| !old && self.recent.insert(id)),
            );
        }
        if self.recent.len() >= self.limit {
            self.start_spill()?;
        }
        Ok(())
    }

    /// Waits for the spill under way and takes its runs.
    fn finish_spill(&mut self) -> io::Result<()> {
        if let Some(spilling) = self.spilling.take() {
            self.runs = spilling
                .join()
                .map_err(|_| io::Error::other("the spilling thread panicked"))??;
            self.frozen = None;
        }
        Ok(())
    }

    fn start_spill(&mut self) -> io::Result<()> {
        self.finish_spill()?;
        // The next set grows as it fills, so two full sets do not coexist for long.
        let full = Arc::new(std::mem::take(&mut self.recent));
        self.frozen = Some(Arc::clone(&full));
        let runs = self.runs.clone();
        let dir = self.spill_dir.clone();
        let handle = std::thread::Builder::new()
            .name("kefu-spill".into())
            .spawn(move || spill(&full, runs, &dir))?;
        self.spilling = Some(handle);
        Ok(())
    }

    /// Number of spilled runs, once the spill under way is done.
    #[cfg(test)]
    fn runs(&mut self) -> usize {
        self.finish_spill().unwrap();
        self.runs.len()
    }
}

impl Drop for SeenIds {
    /// Waits for a spill under way, so no thread writes beside a batch being discarded.
    fn drop(&mut self) {
        if let Some(spilling) = self.spilling.take() {
            let _ = spilling.join();
        }
    }
}

/// Writes `ids` as a new run after `runs` and merges runs of equal size.
fn spill(ids: &IdSet, mut runs: Vec<Arc<Run>>, dir: &Path) -> io::Result<Vec<Arc<Run>>> {
    let mut ids: Vec<u64> = ids.iter().copied().collect();
    ids.sort_unstable();
    let mut writer = RunWriter::new(dir, ids.len() as u64)?;
    for id in ids {
        writer.push(id)?;
    }
    runs.push(Arc::new(writer.finish()?));
    while let [.., older, newer] = runs.as_slice()
        && older.len <= newer.len
    {
        let merged = merge(older, newer, dir)?;
        runs.truncate(runs.len() - 2);
        runs.push(Arc::new(merged));
    }
    tracing::debug!(runs = runs.len(), "spilled the duplicate index");
    Ok(runs)
}

/// Sorted fingerprints in a temporary file, with what finds them in memory.
struct Run {
    file: File,
    len: u64,
    /// The filter of each slice of the fingerprint space (`None` for an empty slice).
    filters: Vec<Option<BinaryFuse8>>,
    /// How far to shift an id right to get its slice.
    shift: u32,
    /// Every `SPARSE_STEP`-th id, from the first.
    sparse: Vec<u64>,
}

impl Run {
    fn slice_bits(len: u64) -> u32 {
        (len / FILTER_IDS as u64)
            .max(1)
            .next_power_of_two()
            .trailing_zeros()
    }

    /// Marks the ids this run holds.
    fn probe(&self, ids: &[u64], found: &mut [bool]) -> io::Result<()> {
        let mut hits = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            if found[i] {
                continue;
            }
            let slice = slice_of(id, self.shift);
            if self.filters[slice]
                .as_ref()
                .is_some_and(|filter| filter.contains(&id))
            {
                hits.push(i);
            }
        }
        for i in hits {
            found[i] = self.holds(ids[i])?;
        }
        Ok(())
    }

    /// Reads the block of the run where `id` would be.
    fn holds(&self, id: u64) -> io::Result<bool> {
        let block = self.sparse.partition_point(|&first| first <= id);
        if block == 0 {
            return Ok(false);
        }
        let start = (block - 1) * SPARSE_STEP;
        let count = SPARSE_STEP.min(self.len as usize - start);
        let mut bytes = vec![0u8; count * 8];
        read_at(&self.file, &mut bytes, start as u64 * 8)?;
        let found = bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .any(|stored| stored == id);
        Ok(found)
    }

    /// The run's ids in order. Reads its own handle: other threads may probe the run.
    fn reader(&self) -> io::Result<impl Iterator<Item = io::Result<u64>> + '_> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut left = self.len;
        Ok(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut b = [0u8; 8];
            Some(reader.read_exact(&mut b).map(|()| u64::from_le_bytes(b)))
        }))
    }
}

/// The slice of the fingerprint space `id` falls in: its top bits (none when a run has
/// a single slice, `shift` 64).
fn slice_of(id: u64, shift: u32) -> usize {
    id.checked_shr(shift).unwrap_or(0) as usize
}

/// Writes ids in ascending order into a new run, building its filters as it goes.
struct RunWriter {
    out: BufWriter<File>,
    len: u64,
    written: u64,
    shift: u32,
    filters: Vec<Option<BinaryFuse8>>,
    slice_ids: Vec<u64>,
    sparse: Vec<u64>,
}

impl RunWriter {
    fn new(dir: &Path, len: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let bits = Run::slice_bits(len);
        Ok(RunWriter {
            out: BufWriter::with_capacity(1 << 20, tempfile::tempfile_in(dir)?),
            len,
            written: 0,
            shift: 64 - bits,
            filters: Vec::with_capacity(1 << bits),
            slice_ids: Vec::new(),
            sparse: Vec::new(),
        })
    }

    fn push(&mut self, id: u64) -> io::Result<()> {
        debug_assert!(self.slice_ids.last().is_none_or(|&last| last < id));
        if self.written.is_multiple_of(SPARSE_STEP as u64) {
            self.sparse.push(id);
        }
        let slice = slice_of(id, self.shift);
        while self.filters.len() < slice {
            self.close_slice()?;
        }
        self.slice_ids.push(id);
        self.out.write_all(&id.to_le_bytes())?;
        self.written += 1;
        Ok(())
    }

    /// Builds the filter of the current slice and moves to the next.
    fn close_slice(&mut self) -> io::Result<()> {
        let filter = if self.slice_ids.is_empty() {
            None
        } else {
            Some(
                BinaryFuse8::try_from(&self.slice_ids)
                    .map_err(|e| io::Error::other(format!("building a filter: {e}")))?,
            )
        };
        self.filters.push(filter);
        self.slice_ids.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<Run> {
        debug_assert_eq!(self.written, self.len);
        let slices = 1usize << (64 - self.shift);
        while self.filters.len() < slices {
            self.close_slice()?;
        }
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(Run {
            file,
            len: self.written,
            filters: self.filters,
            shift: self.shift,
            sparse: self.sparse,
        })
    }
}

/// Fills `buf` from `file` at `offset`, leaving the file's cursor alone.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

/// Merges two runs into one (their ids are disjoint).
fn merge(a: &Run, b: &Run, dir: &Path) -> io::Result<Run> {
    let mut writer = RunWriter::new(dir, a.len + b.len)?;
    {
        let mut a_ids = a.reader()?.peekable();
        let mut b_ids = b.reader()?.peekable();
        loop {
            let take_a = match (a_ids.peek(), b_ids.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(Ok(x)), Some(Ok(y))) => x < y,
                (Some(Err(_)), _) => true,
                (_, Some(Err(_))) => false,
            };
            let id = if take_a { a_ids.next() } else { b_ids.next() };
            writer.push(id.expect("peeked")?)?;
        }
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(n: u64) -> u64 {
        // splitmix64: distinct inputs give distinct, well-spread fingerprints.
        let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn finds_every_repeat_across_spilled_and_merged_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = SeenIds::new(1000, dir.path());
        let mut new = Vec::new();
        // 50,000 distinct ids in batches of 700, then all of them again, shuffled in
        // among new ones.
        let first: Vec<u64> = (0..50_000).map(mix).collect();
        for chunk in first.chunks(700) {
            seen.insert_all(chunk, &mut new).unwrap();
            assert!(new.iter().all(|&n| n), "fresh ids are new");
        }
        assert!(seen.runs() >= 2, "the test must exercise several runs");
        let again: Vec<u64> = (0..50_000)
            .flat_map(|n| [mix(n), mix(1_000_000 + n)])
            .collect();
        for (c, chunk) in again.chunks(900).enumerate() {
            seen.insert_all(chunk, &mut new).unwrap();
            for (i, &is_new) in new.iter().enumerate() {
                let position = c * 900 + i;
                assert_eq!(is_new, position % 2 == 1, "id at {position}");
            }
        }
        // Repeats inside one call: only the first counts as new.
        seen.insert_all(&[mix(7_000_000), mix(7_000_000), mix(3)], &mut new)
            .unwrap();
        assert_eq!(new, [true, false, false]);
        assert!(
            seen.runs() <= 8,
            "runs are merged: {} for 150 spills",
            seen.runs()
        );
    }

    #[test]
    fn runs_of_any_size_build() {
        let dir = tempfile::tempdir().unwrap();
        for len in [1u64, 2, 3, 100, 70_000, 140_000] {
            let mut ids: Vec<u64> = (0..len).map(mix).collect();
            ids.sort_unstable();
            let mut writer = RunWriter::new(dir.path(), len).unwrap();
            for &id in &ids {
                writer.push(id).unwrap();
            }
            let run = writer.finish().unwrap();
            let mut found = vec![false; ids.len()];
            run.probe(&ids, &mut found).unwrap();
            assert!(found.iter().all(|&f| f), "all of {len} found");
            let others: Vec<u64> = (len..len + 1000).map(mix).collect();
            let mut found = vec![false; others.len()];
            run.probe(&others, &mut found).unwrap();
            assert!(!found.iter().any(|&f| f), "none of the others in {len}");
        }
    }
}
