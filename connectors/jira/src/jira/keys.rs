//! The syntax of Jira keys and ids, checked before they go into a URL path so a
//! caller cannot reach another endpoint with `../` or `?`.

/// A project key: a letter, then letters, digits or underscores (e.g. `PROJ`, `OPS_2`).
pub fn is_project_key(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A numeric id such as `10001`.
pub fn is_numeric_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.chars().all(|c| c.is_ascii_digit())
}

/// An issue key such as `PROJ-123`; returns its project key, upper-cased.
pub fn issue_key_project(s: &str) -> Option<String> {
    let (project, number) = s.rsplit_once('-')?;
    (is_project_key(project) && is_numeric_id(number)).then(|| project.to_ascii_uppercase())
}

/// A field id or name usable as a path segment or JSON key: no control characters.
pub fn is_plain_text(s: &str) -> bool {
    !s.trim().is_empty() && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_keys_yield_their_project() {
        assert_eq!(issue_key_project("PROJ-123").as_deref(), Some("PROJ"));
        assert_eq!(issue_key_project("proj-1").as_deref(), Some("PROJ"));
        assert_eq!(issue_key_project("OPS_2-7").as_deref(), Some("OPS_2"));
        assert_eq!(issue_key_project("PROJ-"), None);
        assert_eq!(issue_key_project("../x-1"), None);
        assert_eq!(issue_key_project("PROJ-12?x=1"), None);
        assert_eq!(issue_key_project("10001"), None);
    }

    #[test]
    fn project_keys_and_ids_are_recognised() {
        assert!(is_project_key("PROJ"));
        assert!(!is_project_key("1PROJ"));
        assert!(!is_project_key("PR/OJ"));
        assert!(is_numeric_id("10001"));
        assert!(!is_numeric_id(""));
        assert!(!is_numeric_id("10a"));
    }
}
