//! What a path scan remembers about each file it read, so that an unchanged file
//! costs a `stat` on the next scan instead of a read and a hash (as git's index
//! does for `git status`).
//!
//! Per path (the file actually read), the index keeps the file's [`Stamp`] (size,
//! modification and change time with nanoseconds, device and inode) as a `stat`
//! gave it just before the read, with the content hash of what was read
//! (`analyzer::content_hash`). On the next scan, when `stat` gives the identical stamp, the hash is reused and
//! the file is not opened. Any doubt means a read: no stamp on this platform, a
//! `stat` that fails, a stamp that differs in any field, an entry evicted.
//!
//! **Racily clean files.** A write in the same timestamp tick as the read would
//! leave the stamp unchanged (same size, same times), so an entry is recorded
//! only when both the file's modification and change times are older than the
//! moment before the read by more than [`RACY_WINDOW`] ([`RACY_WINDOW_WHOLE_SECONDS`]
//! when a time has no sub-second part, as on filesystems that keep whole or even
//! seconds). A later write then always moves one of them past what was recorded.
//! A file written shortly before it was read is read and hashed again on the next
//! scan, which records it once it has settled. The change time matters too: it
//! cannot be set, so a write whose modification time is restored afterwards
//! (`touch -d`, `File::set_modified`) still changes the stamp.
//!
//! The timestamps come from the kernel's clock, which lags the real-time clock
//! by at most a tick (1–10 ms on Linux); the window is far wider. A filesystem
//! whose times come from another machine's clock (a network mount with a skewed
//! server) breaks that assumption: set `FILE_INDEX_MAX_ENTRIES=0` there to read
//! and hash every file on each scan.
//!
//! The index is bounded (`FILE_INDEX_MAX_ENTRIES`, default
//! [`DEFAULT_MAX_ENTRIES`], like the content-hash caches); an evicted path is read
//! again. Entries of deleted files are never matched again (a new file has a new
//! change time) and age out of the bound.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use moka::sync::Cache;

/// Default of `FILE_INDEX_MAX_ENTRIES`: as many paths as `CACHE_MAX_ENTRIES`
/// holds analyses.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;

/// How much older than the moment before the read a file's modification and
/// change times must be for its entry to be recorded, when they have a
/// sub-second part (nanosecond filesystems: ext4, XFS, Btrfs, tmpfs, APFS, NTFS;
/// exFAT keeps 10 ms). A hundred times a kernel tick.
pub const RACY_WINDOW: Duration = Duration::from_secs(1);

/// The same for a time that is a whole second: the filesystem may round to whole
/// seconds (ext3, HFS+, ext4 with small inodes) or to even ones (FAT).
pub const RACY_WINDOW_WHOLE_SECONDS: Duration = Duration::from_secs(3);

/// What `stat` says about a file, compared field by field to tell an unchanged
/// file. Times are (seconds, nanoseconds) since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    device: u64,
    inode: u64,
}

impl Stamp {
    /// The stamp of `meta`; `None` where the platform has no change time and
    /// inode (a restored modification time could not be told from no change),
    /// so every file is read there.
    #[cfg(unix)]
    pub fn of(meta: &Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        Some(Self {
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
            device: meta.dev(),
            inode: meta.ino(),
        })
    }

    /// See the unix version: no stamp, so the index is never used.
    #[cfg(not(unix))]
    pub fn of(_meta: &Metadata) -> Option<Self> {
        None
    }

    /// The moment after which a read records this file as clean: its newest
    /// time plus the racy window for that time's granularity. `None` for a time
    /// that cannot be represented (then it is never clean).
    pub fn settled_at(&self) -> Option<SystemTime> {
        [self.modified, self.changed]
            .into_iter()
            .map(|(secs, nanos)| {
                let window = if nanos == 0 {
                    RACY_WINDOW_WHOLE_SECONDS
                } else {
                    RACY_WINDOW
                };
                let nanos = u32::try_from(nanos).ok()?;
                let since_epoch = if secs >= 0 {
                    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
                } else {
                    SystemTime::UNIX_EPOCH
                        .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
                        .checked_add(Duration::from_nanos(u64::from(nanos)))
                };
                since_epoch?.checked_add(window)
            })
            .try_fold(SystemTime::UNIX_EPOCH, |latest, at| Some(latest.max(at?)))
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    stamp: Stamp,
    hash: u128,
}

/// Path → (stamp, content hash) of the files read, bounded.
pub struct FileIndex {
    /// `None` when disabled (a bound of 0).
    entries: Option<Cache<PathBuf, Entry>>,
    /// The clock the moment before a read is taken from (tests move it).
    clock: fn() -> SystemTime,
}

impl std::fmt::Debug for FileIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileIndex")
            .field("entries", &self.entries.as_ref().map(Cache::entry_count))
            .finish_non_exhaustive()
    }
}

impl FileIndex {
    /// An index of at most `max_entries` paths; 0 disables it (every file is
    /// read and hashed on every scan).
    pub fn new(max_entries: u64) -> Self {
        Self {
            entries: (max_entries > 0).then(|| Cache::new(max_entries)),
            clock: SystemTime::now,
        }
    }

    /// The moment to pass to [`FileIndex::record`]: take it before the `stat`
    /// whose metadata is recorded.
    pub fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// The content hash recorded for `path` when `meta` (a fresh `stat` of it)
    /// gives exactly the stamp recorded with it.
    pub fn unchanged(&self, path: &Path, meta: &Metadata) -> Option<u128> {
        let entries = self.entries.as_ref()?;
        let stamp = Stamp::of(meta)?;
        let entry = entries.get(path)?;
        (entry.stamp == stamp).then_some(entry.hash)
    }

    /// Records that the content read from `path` hashes to `hash`; `meta` is the
    /// `stat` taken after `before_stat` and before the read. A racily clean file
    /// (a time within the racy window of `before_stat`) is not recorded, and what
    /// was recorded for the path is dropped.
    pub fn record(&self, path: &Path, meta: &Metadata, hash: u128, before_stat: SystemTime) {
        let Some(entries) = self.entries.as_ref() else {
            return;
        };
        match Stamp::of(meta) {
            Some(stamp) if stamp.settled_at().is_some_and(|at| at < before_stat) => {
                entries.insert(path.to_path_buf(), Entry { stamp, hash });
            }
            _ => entries.invalidate(path),
        }
    }

    /// Paths held (after pending evictions have run).
    pub fn len(&self) -> u64 {
        self.entries.as_ref().map_or(0, |entries| {
            entries.run_pending_tasks();
            entries.entry_count()
        })
    }

    /// Whether no path is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This index with another clock (tests).
    #[cfg(test)]
    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> Self {
        self.clock = clock;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(modified: (i64, i64), changed: (i64, i64)) -> Stamp {
        Stamp {
            len: 1,
            modified,
            changed,
            device: 1,
            inode: 1,
        }
    }

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn a_stamp_settles_one_window_after_its_newest_time() {
        // The change time is the newer one here.
        let fine = stamp((100, 5), (200, 7));
        assert_eq!(fine.settled_at(), Some(at(200, 7) + RACY_WINDOW));
        // A restored (older) change time cannot hide a newer modification time.
        let future_mtime = stamp((300, 1), (200, 7));
        assert_eq!(future_mtime.settled_at(), Some(at(300, 1) + RACY_WINDOW));
        // Whole seconds: a coarse filesystem may have rounded down.
        let coarse = stamp((100, 0), (200, 0));
        assert_eq!(
            coarse.settled_at(),
            Some(at(200, 0) + RACY_WINDOW_WHOLE_SECONDS)
        );
        assert_eq!(stamp((-10, 0), (-5, 500)).settled_at(), Some(at(0, 0)));
        assert_eq!(stamp((1, -1), (1, 1)).settled_at(), None);
    }
}
