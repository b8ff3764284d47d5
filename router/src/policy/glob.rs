//! Tool name globs: `*` matches any run of characters (also none), `?` exactly
//! one; everything else matches itself. Iterative, linear in practice, and at
//! worst `pattern × name` steps, never recursion or backtracking blow-up.

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Where the last `*` was, and the name position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry.
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;
    use proptest::prelude::*;

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(matches("jira_create_issue", "jira_create_issue"));
        assert!(!matches("jira_create_issue", "jira_create_issues"));
        assert!(!matches("jira_create_issue", "jira_create_issu"));
        assert!(!matches("a", ""));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
    }

    #[test]
    fn star_matches_any_run_including_none() {
        assert!(matches("code_analysis_*", "code_analysis_find_symbols"));
        assert!(matches("code_analysis_*", "code_analysis_"));
        assert!(!matches("code_analysis_*", "code_analysis"));
        assert!(!matches("code_analysis_*", "database_query"));
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("*_read*", "db_read_rows"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(matches("a*b*c", "abbbc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("*issue", "jira_issue_issue"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(matches("db_?", "db_x"));
        assert!(matches("db_?", "db_é"));
        assert!(!matches("db_?", "db_"));
        assert!(!matches("db_?", "db_xy"));
    }

    #[test]
    fn a_pathological_pattern_finishes_quickly() {
        let name = "a".repeat(2000);
        let pattern = format!("{}b", "*a".repeat(100));
        let started = std::time::Instant::now();
        assert!(!matches(&pattern, &name));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    /// A reference matcher: the obvious recursive definition.
    fn reference(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some('*'), _) => reference(&p[1..], n) || (!n.is_empty() && reference(p, &n[1..])),
            (Some(_), None) => false,
            (Some(&c), Some(&d)) => (c == '?' || c == d) && reference(&p[1..], &n[1..]),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
        ))]
        #[test]
        fn agrees_with_the_recursive_definition(p in "[ab*?]{0,8}", n in "[ab]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let nc: Vec<char> = n.chars().collect();
            prop_assert_eq!(matches(&p, &n), reference(&pc, &nc));
        }
    }
}
