//! The directory tree the connector may read (`CODE_ROOT`): resolving requested
//! paths inside it, and walking it in parallel with .gitignore rules and
//! include/exclude globs.
//!
//! Paths are canonicalised (symbolic links resolved) before the containment check,
//! so neither `..` nor a link can lead out of the root. The walk does not follow
//! links to directories; a link to a file is read only if its target is inside
//! the root.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use big_code_analysis::LANG;
use ignore::overrides::OverrideBuilder;
use ignore::{WalkBuilder, WalkState};

use crate::error::Error;
use crate::languages;

/// The confined root directory.
#[derive(Debug, Clone)]
pub struct CodeRoot {
    root: PathBuf,
}

/// What a walk should visit.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Only files matching one of these globs (all when empty).
    pub include: Vec<String>,
    /// Skip files and directories matching any of these globs.
    pub exclude: Vec<String>,
    /// Honour .gitignore, .ignore and .git/info/exclude.
    pub respect_gitignore: bool,
    /// Stop after this many files.
    pub max_files: usize,
    /// Worker threads.
    pub threads: usize,
}

/// One file the walk found.
#[derive(Debug)]
pub enum Visit {
    /// A file in a supported language, to be read from `path`.
    Source {
        path: PathBuf,
        relative: String,
        language: LANG,
    },
    /// A file that must not be read, with the reason.
    Refused { relative: String, reason: String },
}

/// One entry of a directory listing ([`CodeRoot::list_dir`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The file or directory name.
    pub name: String,
    /// Its path as listed (under the listed directory; not resolved).
    pub path: PathBuf,
    /// A directory (else a file, or a link to a file inside the root).
    pub is_dir: bool,
}

/// The walker every read of the tree uses, so that a listing, a resource read and
/// an analysis agree on what is visible: hidden entries skipped, links not
/// followed, and with `respect_gitignore` the .gitignore, .ignore and
/// .git/info/exclude rules of the directory and its parents applied (also
/// outside a git repository).
fn walk_builder(start: &Path, respect_gitignore: bool) -> WalkBuilder {
    let mut builder = WalkBuilder::new(start);
    builder
        .hidden(true)
        .git_ignore(respect_gitignore)
        .git_exclude(respect_gitignore)
        .git_global(false)
        .ignore(respect_gitignore)
        .parents(respect_gitignore)
        .require_git(false)
        .follow_links(false);
    builder
}

impl CodeRoot {
    /// `root` must already be canonical (see `Config::from_env`).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Resolves a requested path (relative to the root, or absolute inside it) to
    /// its canonical form and its root-relative display form.
    pub fn resolve(&self, requested: &str) -> Result<(PathBuf, String), Error> {
        let requested = requested.trim();
        let requested = if requested.is_empty() { "." } else { requested };
        let candidate = self.root.join(requested);
        let canonical = candidate.canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound {
                    path: requested.to_owned(),
                    root: self.root.display().to_string(),
                }
            } else {
                Error::Unreadable {
                    path: requested.to_owned(),
                    message: e.to_string(),
                }
            }
        })?;
        if !canonical.starts_with(&self.root) {
            return Err(Error::OutsideRoot {
                path: requested.to_owned(),
                root: self.root.display().to_string(),
            });
        }
        // Inside the root, a `..` leads nowhere a path without it could not
        // name; refused, so that whoever reads paths as given (a policy on
        // `args.path`: `src/...`) sees where they lead.
        if Path::new(requested)
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(Error::InvalidArgument(format!(
                "{requested} has a `..` segment: name the path from the code root without `..`"
            )));
        }
        let relative = self.relative(&canonical);
        Ok((canonical, relative))
    }

    fn relative(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => path.to_string_lossy().into_owned(),
        }
    }

    /// Walks `start` (canonical, inside the root) on `options.threads` threads,
    /// calling `visit` for every supported source file until it returns false or
    /// `max_files` is reached. Returns whether the file limit cut the walk short.
    pub fn walk<F>(&self, start: &Path, options: &WalkOptions, visit: F) -> Result<bool, Error>
    where
        F: Fn(Visit) -> bool + Sync,
    {
        let mut builder = walk_builder(start, options.respect_gitignore);
        builder.threads(options.threads.max(1));
        if !options.include.is_empty() || !options.exclude.is_empty() {
            let mut overrides = OverrideBuilder::new(start);
            let globs = options
                .include
                .iter()
                .map(|g| (g, g.clone()))
                .chain(options.exclude.iter().map(|g| (g, format!("!{g}"))));
            for (original, glob) in globs {
                overrides.add(&glob).map_err(|e| Error::InvalidGlob {
                    glob: original.clone(),
                    message: e.to_string(),
                })?;
            }
            builder.overrides(overrides.build().map_err(|e| {
                Error::InvalidGlob {
                    glob: options
                        .include
                        .iter()
                        .chain(&options.exclude)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    message: e.to_string(),
                }
            })?);
        }

        let seen = AtomicUsize::new(0);
        let truncated = AtomicBool::new(false);
        let stopped = AtomicBool::new(false);
        builder.build_parallel().run(|| {
            Box::new(|entry| {
                if stopped.load(Ordering::Relaxed) {
                    return WalkState::Quit;
                }
                let Ok(entry) = entry else {
                    return WalkState::Continue;
                };
                let Some(visit_item) = self.classify(
                    entry.path(),
                    entry.path_is_symlink(),
                    entry.file_type().is_some_and(|t| t.is_file()),
                ) else {
                    return WalkState::Continue;
                };
                if seen.fetch_add(1, Ordering::Relaxed) >= options.max_files {
                    truncated.store(true, Ordering::Relaxed);
                    stopped.store(true, Ordering::Relaxed);
                    return WalkState::Quit;
                }
                if visit(visit_item) {
                    WalkState::Continue
                } else {
                    stopped.store(true, Ordering::Relaxed);
                    WalkState::Quit
                }
            })
        });
        Ok(truncated.load(Ordering::Relaxed))
    }

    /// The entries of directory `dir` (inside the root) that a walk with
    /// .gitignore rules would visit, sorted by name: hidden and ignored entries are
    /// left out, and so are symbolic links to directories (walks do not follow
    /// them), links leading out of the root and anything that is neither a file nor
    /// a directory. Names that are not UTF-8 are left out too.
    pub fn list_dir(&self, dir: &Path) -> Vec<DirEntry> {
        let mut builder = walk_builder(dir, true);
        builder.max_depth(Some(1));
        let mut entries = Vec::new();
        for entry in builder.build() {
            let Ok(entry) = entry else { continue };
            if entry.depth() == 0 {
                continue;
            }
            let Some(name) = entry.file_name().to_str() else {
                continue;
            };
            let is_dir = if entry.path_is_symlink() {
                match entry.path().canonicalize() {
                    Ok(target) if target.starts_with(&self.root) && target.is_file() => false,
                    _ => continue,
                }
            } else {
                match entry.file_type() {
                    Some(t) if t.is_dir() => true,
                    Some(t) if t.is_file() => false,
                    _ => continue,
                }
            };
            entries.push(DirEntry {
                name: name.to_owned(),
                path: entry.path().to_path_buf(),
                is_dir,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    /// Whether a walk of the root with .gitignore rules reaches `canonical` (a
    /// canonical path inside the root): no component is hidden or ignored, and it
    /// is a file or a directory.
    pub fn is_visible(&self, canonical: &Path) -> bool {
        let Ok(relative) = canonical.strip_prefix(&self.root) else {
            return false;
        };
        let mut dir = self.root.clone();
        for component in relative.components() {
            let name = component.as_os_str();
            let Some(found) = self
                .list_dir(&dir)
                .into_iter()
                .find(|e| e.name.as_str() == name)
            else {
                return false;
            };
            if !found.is_dir && dir.join(name) != canonical {
                return false;
            }
            dir.push(name);
        }
        true
    }

    /// What to do with one walked path: `None` to pass over it silently
    /// (directories, unsupported languages, links to directories).
    fn classify(&self, path: &Path, is_link: bool, is_file: bool) -> Option<Visit> {
        let language = languages::from_path(path)?;
        let relative = self.relative(path);
        if is_link {
            return match path.canonicalize() {
                Ok(target) if !target.starts_with(&self.root) => Some(Visit::Refused {
                    relative,
                    reason: "symbolic link leads outside the code root".to_owned(),
                }),
                Ok(target) if target.is_file() => Some(Visit::Source {
                    path: target,
                    relative,
                    language,
                }),
                Ok(_) => None,
                Err(e) => Some(Visit::Refused {
                    relative,
                    reason: format!("unreadable: {e}"),
                }),
            };
        }
        is_file.then(|| Visit::Source {
            path: path.to_path_buf(),
            relative,
            language,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn tree() -> (tempfile::TempDir, CodeRoot) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir_all(root.join("src/gen")).expect("mkdir");
        std::fs::write(root.join("src/a.py"), "x = 1\n").expect("write");
        std::fs::write(root.join("src/b.rs"), "fn b() {}\n").expect("write");
        std::fs::write(root.join("src/gen/c.py"), "y = 2\n").expect("write");
        std::fs::write(root.join("src/notes.txt"), "text\n").expect("write");
        std::fs::write(root.join(".gitignore"), "ignored/\n").expect("write");
        std::fs::create_dir_all(root.join("ignored")).expect("mkdir");
        std::fs::write(root.join("ignored/d.py"), "z = 3\n").expect("write");
        (dir, CodeRoot::new(root))
    }

    fn walked(root: &CodeRoot, options: &WalkOptions) -> Vec<String> {
        let found = Mutex::new(Vec::new());
        root.walk(root.path(), options, |v| {
            if let Visit::Source { relative, .. } = v {
                found.lock().expect("lock").push(relative);
            }
            true
        })
        .expect("walk");
        let mut found = found.into_inner().expect("lock");
        found.sort();
        found
    }

    fn options() -> WalkOptions {
        WalkOptions {
            respect_gitignore: true,
            max_files: 100,
            threads: 2,
            ..Default::default()
        }
    }

    #[test]
    fn walk_honours_gitignore_and_skips_unsupported_files() {
        let (_dir, root) = tree();
        assert_eq!(
            walked(&root, &options()),
            ["src/a.py", "src/b.rs", "src/gen/c.py"]
        );
        let all = WalkOptions {
            respect_gitignore: false,
            ..options()
        };
        assert!(walked(&root, &all).contains(&"ignored/d.py".to_owned()));
    }

    #[test]
    fn include_and_exclude_globs_filter_the_walk() {
        let (_dir, root) = tree();
        let only_python = WalkOptions {
            include: vec!["*.py".into()],
            exclude: vec!["gen".into()],
            ..options()
        };
        assert_eq!(walked(&root, &only_python), ["src/a.py"]);
    }

    #[test]
    fn paths_outside_the_root_are_refused() {
        let (_dir, root) = tree();
        assert!(matches!(
            root.resolve("../"),
            Err(Error::OutsideRoot { .. })
        ));
        assert!(matches!(
            root.resolve("/etc"),
            Err(Error::OutsideRoot { .. })
        ));
        assert!(matches!(
            root.resolve("missing.py"),
            Err(Error::NotFound { .. })
        ));
        assert!(
            matches!(root.resolve("src/../src/a.py"), Err(Error::InvalidArgument(m)) if m.contains("`..`")),
            "a `..` inside the root is refused"
        );
        assert_eq!(root.resolve("./src/a.py").expect("inside").1, "src/a.py");
    }

    #[test]
    fn a_symlink_leading_out_of_the_root_is_not_read() {
        let (_dir, root) = tree();
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret.py"), "k = 1\n").expect("write");
        std::os::unix::fs::symlink(
            outside.path().join("secret.py"),
            root.path().join("src/link.py"),
        )
        .expect("symlink");
        assert!(matches!(
            root.resolve("src/link.py"),
            Err(Error::OutsideRoot { .. })
        ));
        let refused = Mutex::new(Vec::new());
        root.walk(root.path(), &options(), |v| {
            if let Visit::Refused { relative, .. } = v {
                refused.lock().expect("lock").push(relative);
            }
            true
        })
        .expect("walk");
        assert_eq!(refused.into_inner().expect("lock"), ["src/link.py"]);
    }

    #[test]
    fn listings_and_visibility_follow_the_walk_rules() {
        let (_dir, root) = tree();
        std::fs::write(root.path().join(".env"), "K=v\n").expect("write");
        let names: Vec<_> = root
            .list_dir(root.path())
            .into_iter()
            .map(|e| (e.name, e.is_dir))
            .collect();
        assert_eq!(names, [("src".to_owned(), true)]);
        let src = root.path().join("src");
        assert!(root.is_visible(&src.join("gen/c.py")));
        assert!(root.is_visible(&src.join("notes.txt")));
        assert!(root.is_visible(root.path()));
        assert!(!root.is_visible(&root.path().join("ignored/d.py")));
        assert!(!root.is_visible(&root.path().join(".env")));
        assert!(!root.is_visible(&src.join("missing.py")));
    }

    #[test]
    fn the_file_limit_truncates_the_walk() {
        let (_dir, root) = tree();
        let limited = WalkOptions {
            max_files: 1,
            threads: 1,
            ..options()
        };
        let truncated = root.walk(root.path(), &limited, |_| true).expect("walk");
        assert!(truncated);
    }
}
