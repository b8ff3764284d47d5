//! Totals over an AnalyzePath request: lines, functions, complexity, a per-language
//! breakdown and the worst hotspots (functions ranked by cyclomatic × lines).

use std::collections::HashMap;

use switchboard_proto::code_analysis::v1 as pb;

/// Accumulates file results into a [`pb::PathSummary`].
#[derive(Debug, Default)]
pub struct PathTotals {
    files_analyzed: u64,
    files_skipped: u64,
    files_from_cache: u64,
    files_with_parse_errors: u64,
    lines: pb::LineCounts,
    functions: u64,
    cyclomatic_total: u64,
    cognitive_total: u64,
    languages: HashMap<String, pb::LanguageTotals>,
    /// Per language, the sum of the functions' own cyclomatic complexity (the file
    /// totals also count each file's top level).
    function_cyclomatic: HashMap<String, u64>,
    hotspots: Vec<pb::Hotspot>,
    top: usize,
    /// Once `top` hotspots have been kept, the lowest score among them: a
    /// function scoring less can never be among the top, so it is not kept.
    floor: Option<f64>,
}

fn add_lines(into: &mut pb::LineCounts, from: &pb::LineCounts) {
    into.sloc += from.sloc;
    into.ploc += from.ploc;
    into.lloc += from.lloc;
    into.cloc += from.cloc;
    into.blank += from.blank;
}

impl PathTotals {
    /// Totals that keep the `top` worst hotspots.
    pub fn new(top: usize) -> Self {
        Self {
            top,
            ..Self::default()
        }
    }

    /// Adds one analysed file (with its functions, whatever the requested depth).
    pub fn add_file(&mut self, file: &pb::FileAnalysis) {
        self.add(file, &file.path, file.from_cache);
    }

    /// [`PathTotals::add_file`] for an analysis as the cache holds it, which is
    /// not labelled: `path` is the file's, `from_cache` whether it came from the
    /// cache.
    pub fn add(&mut self, file: &pb::FileAnalysis, path: &str, from_cache: bool) {
        self.files_analyzed += 1;
        self.files_from_cache += u64::from(from_cache);
        self.files_with_parse_errors += u64::from(!file.parse_errors.is_empty());
        let metrics = file.metrics.unwrap_or_default();
        let lines = metrics.lines.unwrap_or_default();
        add_lines(&mut self.lines, &lines);
        self.functions += u64::from(metrics.functions);
        self.cyclomatic_total += metrics.cyclomatic_total;
        self.cognitive_total += metrics.cognitive_total;

        let language = self
            .languages
            .entry(file.language.clone())
            .or_insert_with(|| pb::LanguageTotals {
                language: file.language.clone(),
                lines: Some(pb::LineCounts::default()),
                ..Default::default()
            });
        language.files += 1;
        if let Some(total) = language.lines.as_mut() {
            add_lines(total, &lines);
        }
        language.functions += u64::from(metrics.functions);
        language.cyclomatic_total += metrics.cyclomatic_total;
        *self
            .function_cyclomatic
            .entry(file.language.clone())
            .or_insert(0) += file.functions.iter().map(|f| f.cyclomatic).sum::<u64>();

        if self.top == 0 {
            return;
        }
        let floor = self.floor;
        self.hotspots.extend(file.functions.iter().filter_map(|f| {
            let sloc = f.lines.as_ref().map_or(0, |l| l.sloc);
            let score = (f.cyclomatic * sloc) as f64;
            // A tie with the floor may still win on path and line.
            if floor.is_some_and(|floor| score < floor) {
                return None;
            }
            Some(pb::Hotspot {
                path: path.to_owned(),
                function: f.qualified_name.clone(),
                start_line: f.start_line,
                end_line: f.end_line,
                cyclomatic: f.cyclomatic,
                cognitive: f.cognitive,
                sloc,
                score,
            })
        }));
        // Keep memory bounded on huge trees: trim back to `top` now and then.
        if self.hotspots.len() > self.top.max(64) * 8 {
            self.trim_hotspots();
        }
    }

    /// Counts a skipped file.
    pub fn add_skipped(&mut self) {
        self.files_skipped += 1;
    }

    fn trim_hotspots(&mut self) {
        self.hotspots.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.path.cmp(&b.path))
                .then_with(|| a.start_line.cmp(&b.start_line))
        });
        self.hotspots.truncate(self.top);
        if self.hotspots.len() == self.top {
            self.floor = self.hotspots.last().map(|h| h.score);
        }
    }

    /// The summary message.
    pub fn finish(mut self, path: String, truncated: bool, elapsed_ms: u64) -> pb::PathSummary {
        self.trim_hotspots();
        let mut languages: Vec<pb::LanguageTotals> = self.languages.into_values().collect();
        for language in &mut languages {
            language.cyclomatic_average = if language.functions == 0 {
                0.0
            } else {
                self.function_cyclomatic
                    .get(&language.language)
                    .copied()
                    .unwrap_or(0) as f64
                    / language.functions as f64
            };
        }
        languages.sort_by(|a, b| {
            let size = |l: &pb::LanguageTotals| l.lines.as_ref().map_or(0, |l| l.sloc);
            size(b)
                .cmp(&size(a))
                .then_with(|| a.language.cmp(&b.language))
        });
        pb::PathSummary {
            path,
            files_analyzed: self.files_analyzed,
            files_skipped: self.files_skipped,
            files_from_cache: self.files_from_cache,
            truncated,
            lines: Some(self.lines),
            functions: self.functions,
            cyclomatic_total: self.cyclomatic_total,
            cognitive_total: self.cognitive_total,
            files_with_parse_errors: self.files_with_parse_errors,
            languages,
            hotspots: self.hotspots,
            elapsed_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, language: &str, functions: &[(u64, u64)]) -> pb::FileAnalysis {
        pb::FileAnalysis {
            path: path.to_owned(),
            language: language.to_owned(),
            metrics: Some(pb::FileMetrics {
                lines: Some(pb::LineCounts {
                    sloc: 10,
                    ..Default::default()
                }),
                functions: u32::try_from(functions.len()).expect("few"),
                // Like the library: each function, plus 1 for the file's top level.
                cyclomatic_total: functions.iter().map(|f| f.0).sum::<u64>() + 1,
                ..Default::default()
            }),
            functions: functions
                .iter()
                .enumerate()
                .map(|(i, &(cyclomatic, sloc))| pb::FunctionMetrics {
                    qualified_name: format!("f{i}"),
                    cyclomatic,
                    lines: Some(pb::LineCounts {
                        sloc,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn hotspots_rank_complexity_times_size_and_languages_sum_up() {
        let mut totals = PathTotals::new(2);
        totals.add_file(&file("a.py", "python", &[(10, 10), (2, 100)]));
        totals.add_file(&file("b.rs", "rust", &[(30, 5), (1, 1)]));
        totals.add_file(&file("c.py", "python", &[]));
        totals.add_skipped();
        let summary = totals.finish(".".into(), false, 1);
        let ranked: Vec<_> = summary
            .hotspots
            .iter()
            .map(|h| (h.path.as_str(), h.score))
            .collect();
        assert_eq!(ranked, [("a.py", 200.0), ("b.rs", 150.0)]);
        assert_eq!(summary.files_analyzed, 3);
        assert_eq!(summary.files_skipped, 1);
        assert_eq!(summary.functions, 4);
        assert_eq!(summary.languages[0].language, "python");
        assert_eq!(summary.languages[0].files, 2);
        assert_eq!(summary.languages[0].cyclomatic_average, 6.0);
    }

    #[test]
    fn hotspots_kept_past_the_floor_are_those_a_full_ranking_gives() {
        // Four scores only, so the top ties at the floor and is decided by path
        // (the files come in descending path order: the later ones win ties).
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % 4 + 1
        };
        let files: Vec<pb::FileAnalysis> = (0..300)
            .map(|i| {
                let functions: Vec<(u64, u64)> = (0..7).map(|_| (next(), 10)).collect();
                file(&format!("f{:03}.py", 299 - i), "python", &functions)
            })
            .collect();
        let mut totals = PathTotals::new(5);
        for file in &files {
            totals.add_file(file);
        }
        assert!(totals.floor.is_some(), "the floor was set on the way");
        let kept = totals.finish(".".into(), false, 1).hotspots;

        let mut all = PathTotals::new(100_000);
        for file in &files {
            all.add_file(file);
        }
        all.top = 5;
        all.trim_hotspots();
        assert_eq!(kept, all.hotspots);
        assert_eq!(kept.len(), 5);
    }
}
