//! The languages this connector analyses: names, aliases and file extensions.
//!
//! Grammars come from `big-code-analysis` (built with exactly these language
//! features), so a language listed here has both metrics and a tree-sitter grammar.

use std::path::Path;

use big_code_analysis::LANG;

use crate::error::Error;

/// Every supported language, in the order ListLanguages shows them.
pub const SUPPORTED: [LANG; 9] = [
    LANG::C,
    LANG::Cpp,
    LANG::Go,
    LANG::Java,
    LANG::Javascript,
    LANG::Python,
    LANG::Rust,
    LANG::Typescript,
    LANG::Tsx,
];

/// The names of the supported languages, comma-separated, for error messages.
pub fn supported_names() -> String {
    SUPPORTED
        .iter()
        .map(LANG::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The language for a user-given name or alias (case-insensitive).
pub fn from_name(name: &str) -> Result<LANG, Error> {
    let lower = name.trim().to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "py" | "python3" => "python",
        "js" | "node" | "nodejs" | "jsx" | "ecmascript" => "javascript",
        "ts" => "typescript",
        "c++" | "cxx" | "cc" => "cpp",
        "golang" => "go",
        "rs" => "rust",
        other => other,
    };
    SUPPORTED
        .iter()
        .copied()
        .find(|lang| lang.name() == canonical)
        .ok_or_else(|| Error::UnknownLanguage {
            given: name.to_owned(),
            supported: supported_names(),
        })
}

/// The supported language of a file, from its extension; `None` when unsupported.
pub fn from_path(path: &Path) -> Option<LANG> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    let lang = big_code_analysis::get_from_ext(&ext)?;
    SUPPORTED.contains(&lang).then_some(lang)
}

/// The language of a request: `language` when given, else inferred from `file_name`.
pub fn resolve(language: Option<&str>, file_name: Option<&str>) -> Result<LANG, Error> {
    match (language.filter(|l| !l.trim().is_empty()), file_name) {
        (Some(name), _) => from_name(name),
        (None, Some(file)) => from_path(Path::new(file)).ok_or_else(|| Error::LanguageRequired {
            supported: supported_names(),
        }),
        (None, None) => Err(Error::LanguageRequired {
            supported: supported_names(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_case_resolve_to_canonical_languages() {
        assert_eq!(from_name("Python").ok(), Some(LANG::Python));
        assert_eq!(from_name("c++").ok(), Some(LANG::Cpp));
        assert_eq!(from_name("golang").ok(), Some(LANG::Go));
        assert!(matches!(
            from_name("cobol"),
            Err(Error::UnknownLanguage { .. })
        ));
    }

    #[test]
    fn extensions_pick_the_language_and_unsupported_ones_do_not() {
        assert_eq!(from_path(Path::new("a/b.rs")), Some(LANG::Rust));
        assert_eq!(from_path(Path::new("x.H")), Some(LANG::Cpp));
        assert_eq!(from_path(Path::new("x.tsx")), Some(LANG::Tsx));
        assert_eq!(from_path(Path::new("x.rb")), None);
        assert_eq!(from_path(Path::new("Makefile")), None);
    }

    #[test]
    fn an_explicit_language_wins_over_the_file_name() {
        assert_eq!(resolve(Some("go"), Some("x.py")).ok(), Some(LANG::Go));
        assert!(matches!(
            resolve(None, Some("notes.txt")),
            Err(Error::LanguageRequired { .. })
        ));
    }
}
