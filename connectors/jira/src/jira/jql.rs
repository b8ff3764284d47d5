//! A lexer for JQL, by characters, for the project restriction ([`super::scope`]).
//!
//! To wrap a caller's query as `project in (...) AND (<query>)` safely, the
//! connector must see the query's parentheses, quotes and `ORDER BY` exactly where
//! Jira's own lexer sees them. This lexer follows Jira's rules for the tokens that
//! shape a query:
//!
//! - a quoted string opens with `"` or `'` and ends at the same, unescaped quote;
//!   inside it a backslash escapes one of `" ' \ t n r`, a space, or `uXXXX`
//!   (Jira's escapes); no control character (a raw newline, a tab) may appear in it;
//! - `(` and `)` are tokens wherever they stand outside quotes;
//! - `= ! < > ~ , [ ] | &` are operator characters;
//! - ASCII spaces, tabs and line breaks separate tokens;
//! - every other character (letters of any script, digits, emoji, combining marks,
//!   typographic quotes such as `“`) belongs to an unquoted word.
//!
//! Where Jira's reading could differ from this one, the query is refused with a
//! message that says how to write it instead, rather than guessed at: a backslash
//! outside quotes (Jira lets it escape a quote inside a word, which would change
//! where quoted text starts), an unknown escape, a control character, a quote that
//! never closes, and whitespace other than ASCII spaces, tabs and line breaks
//! outside quotes.

use std::fmt;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An unquoted word: a field, operator keyword, value, function name.
    Word,
    /// A quoted string, quotes included.
    Quoted,
    /// `(`.
    Open,
    /// `)`.
    Close,
    /// One operator character: `= ! < > ~ , [ ] | &`.
    Operator,
    /// A run of ASCII whitespace.
    Space,
}

/// One token: its kind and its text, a slice of the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What it is.
    pub kind: Kind,
    /// Its exact text in the query.
    pub text: &'a str,
}

impl Token<'_> {
    /// Whether this is the unquoted word `word` (keywords are case-insensitive).
    pub fn is_word(&self, word: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(word)
    }
}

/// Why a query cannot be read unambiguously. `at` is the character position
/// (counted from 1), so the caller can find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexError {
    /// A quote that is never closed.
    UnclosedQuote {
        /// Position of the opening quote.
        at: usize,
    },
    /// A backslash outside quoted text.
    BackslashOutsideQuotes {
        /// Its position.
        at: usize,
    },
    /// A backslash in quoted text that escapes nothing Jira knows.
    UnknownEscape {
        /// Its position.
        at: usize,
    },
    /// A control character (outside quotes: other than tab and line breaks).
    ControlCharacter {
        /// Its position.
        at: usize,
        /// The character.
        character: char,
    },
    /// Whitespace other than ASCII space, tab or line break outside quotes.
    UnusualWhitespace {
        /// Its position.
        at: usize,
        /// The character.
        character: char,
    },
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnclosedQuote { at } => write!(
                f,
                "the quote at character {at} is never closed; close it, and write a quote inside quoted text as \\\" or \\'"
            ),
            Self::BackslashOutsideQuotes { at } => write!(
                f,
                "has a backslash outside quotes (character {at}); put the value in double quotes instead, e.g. summary ~ \"a\\\\b\""
            ),
            Self::UnknownEscape { at } => write!(
                f,
                "the backslash at character {at} escapes nothing JQL knows; inside quotes write \\\" \\' \\\\ \\t \\n \\r or \\uXXXX"
            ),
            Self::ControlCharacter { at, character } => write!(
                f,
                "has the control character U+{:04X} at character {at}; inside quotes write a line break as \\n and a tab as \\t",
                u32::from(*character)
            ),
            Self::UnusualWhitespace { at, character } => write!(
                f,
                "has the whitespace character U+{:04X} outside quotes (character {at}); use a plain space, or quote the value",
                u32::from(*character)
            ),
        }
    }
}

impl std::error::Error for LexError {}

/// The ASCII whitespace that separates JQL tokens.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{c}')
}

fn is_operator(c: char) -> bool {
    matches!(c, '=' | '!' | '<' | '>' | '~' | ',' | '[' | ']' | '|' | '&')
}

/// Characters that end an unquoted word.
fn ends_word(c: char) -> bool {
    is_separator(c)
        || is_operator(c)
        || matches!(c, '(' | ')' | '"' | '\'' | '\\')
        || c.is_control()
}

/// Splits `jql` into tokens; the tokens' texts concatenated are `jql` itself.
pub fn lex(jql: &str) -> Result<Vec<Token<'_>>, LexError> {
    let mut tokens = Vec::new();
    // (byte offset, character number from 1, character)
    let mut chars = jql
        .char_indices()
        .enumerate()
        .map(|(n, (i, c))| (i, n + 1, c))
        .peekable();
    let token = |kind, start: usize, end: usize| Token {
        kind,
        text: &jql[start..end],
    };
    while let Some((start, at, c)) = chars.next() {
        match c {
            '(' => tokens.push(token(Kind::Open, start, start + 1)),
            ')' => tokens.push(token(Kind::Close, start, start + 1)),
            '\\' => return Err(LexError::BackslashOutsideQuotes { at }),
            '"' | '\'' => {
                let mut end = None;
                while let Some((i, at, inner)) = chars.next() {
                    if inner == c {
                        end = Some(i + 1);
                        break;
                    }
                    if inner == '\\' {
                        match chars.next() {
                            Some((_, _, '"' | '\'' | '\\' | 't' | 'n' | 'r' | ' ')) => {}
                            Some((_, _, 'u')) => {
                                for _ in 0..4 {
                                    if !chars.next().is_some_and(|(_, _, h)| h.is_ascii_hexdigit())
                                    {
                                        return Err(LexError::UnknownEscape { at });
                                    }
                                }
                            }
                            Some(_) => return Err(LexError::UnknownEscape { at }),
                            None => break,
                        }
                    } else if inner.is_control() {
                        return Err(LexError::ControlCharacter {
                            at,
                            character: inner,
                        });
                    }
                }
                match end {
                    Some(end) => tokens.push(token(Kind::Quoted, start, end)),
                    None => return Err(LexError::UnclosedQuote { at }),
                }
            }
            c if is_separator(c) => {
                let mut end = start + c.len_utf8();
                while let Some(&(i, _, next)) = chars.peek()
                    && is_separator(next)
                {
                    end = i + next.len_utf8();
                    chars.next();
                }
                tokens.push(token(Kind::Space, start, end));
            }
            c if is_operator(c) => tokens.push(token(Kind::Operator, start, start + 1)),
            c if c.is_control() => return Err(LexError::ControlCharacter { at, character: c }),
            c if c.is_whitespace() => {
                return Err(LexError::UnusualWhitespace { at, character: c });
            }
            c => {
                let mut end = start + c.len_utf8();
                while let Some(&(i, at, next)) = chars.peek() {
                    if ends_word(next) {
                        break;
                    }
                    if next.is_whitespace() {
                        return Err(LexError::UnusualWhitespace {
                            at,
                            character: next,
                        });
                    }
                    end = i + next.len_utf8();
                    chars.next();
                }
                tokens.push(token(Kind::Word, start, end));
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(jql: &str) -> Vec<(Kind, &str)> {
        lex(jql)
            .expect("lexes")
            .into_iter()
            .filter(|t| t.kind != Kind::Space)
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn words_of_any_script_are_one_token() {
        assert_eq!(
            kinds("assignee = José"),
            [
                (Kind::Word, "assignee"),
                (Kind::Operator, "="),
                (Kind::Word, "José")
            ]
        );
        for word in [
            "🦀🦀",
            "e\u{301}te\u{301}",
            "שלום",
            "“quoted”",
            "a\u{202e}b",
        ] {
            assert_eq!(kinds(word), [(Kind::Word, word)], "{word:?}");
        }
    }

    #[test]
    fn quoted_strings_end_at_their_unescaped_quote() {
        assert_eq!(
            kinds(r#"summary ~ "a \" ) b" AND x = 'it\'s'"#),
            [
                (Kind::Word, "summary"),
                (Kind::Operator, "~"),
                (Kind::Quoted, r#""a \" ) b""#),
                (Kind::Word, "AND"),
                (Kind::Word, "x"),
                (Kind::Operator, "="),
                (Kind::Quoted, r"'it\'s'"),
            ]
        );
        assert_eq!(kinds(r#""a\\""#), [(Kind::Quoted, r#""a\\""#)]);
        assert_eq!(kinds(r#""\u00e9""#), [(Kind::Quoted, r#""\u00e9""#)]);
        assert_eq!(kinds(r#""it's""#), [(Kind::Quoted, r#""it's""#)]);
    }

    #[test]
    fn parentheses_and_operators_split_words() {
        assert_eq!(
            kinds("a(b)c!=d"),
            [
                (Kind::Word, "a"),
                (Kind::Open, "("),
                (Kind::Word, "b"),
                (Kind::Close, ")"),
                (Kind::Word, "c"),
                (Kind::Operator, "!"),
                (Kind::Operator, "="),
                (Kind::Word, "d"),
            ]
        );
    }

    #[test]
    fn the_tokens_are_the_query_itself() {
        let jql = "project = \"A B\" AND\n\tassignee in (José, 'x')  ORDER BY key";
        let joined: String = lex(jql).expect("lexes").iter().map(|t| t.text).collect();
        assert_eq!(joined, jql);
    }

    #[test]
    fn what_jira_could_read_differently_is_refused() {
        assert_eq!(
            lex(r"summary ~ a\' ) OR x"),
            Err(LexError::BackslashOutsideQuotes { at: 12 })
        );
        assert_eq!(lex(r#"x = "a\(""#), Err(LexError::UnknownEscape { at: 7 }));
        assert_eq!(lex(r#"x = "\u12""#), Err(LexError::UnknownEscape { at: 6 }));
        assert_eq!(lex("x = \"open"), Err(LexError::UnclosedQuote { at: 5 }));
        assert_eq!(lex("x = 'a\\"), Err(LexError::UnclosedQuote { at: 5 }));
        assert_eq!(
            lex("x = \"a\nb\""),
            Err(LexError::ControlCharacter {
                at: 7,
                character: '\n'
            })
        );
        assert_eq!(
            lex("x = a\u{0}"),
            Err(LexError::ControlCharacter {
                at: 6,
                character: '\0'
            })
        );
        assert_eq!(
            lex("x =\u{a0}a"),
            Err(LexError::UnusualWhitespace {
                at: 4,
                character: '\u{a0}'
            })
        );
        assert_eq!(
            lex("x = a\u{2028}b"),
            Err(LexError::UnusualWhitespace {
                at: 6,
                character: '\u{2028}'
            })
        );
    }

    #[test]
    fn messages_say_how_to_write_it_instead() {
        let message = LexError::BackslashOutsideQuotes { at: 3 }.to_string();
        assert!(message.contains("double quotes"), "{message}");
        let message = LexError::ControlCharacter {
            at: 1,
            character: '\n',
        }
        .to_string();
        assert!(
            message.contains("U+000A") && message.contains("\\n"),
            "{message}"
        );
    }
}
