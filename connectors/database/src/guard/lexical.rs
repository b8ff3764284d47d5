//! The lexical pass: a small scanner that runs before the parser and refuses
//! every form the engines and the guard's parser (sqlparser) could read
//! differently.
//!
//! The guard's parse tree only means something if the database splits the text
//! into the same tokens. Where the engines' lexers disagree with sqlparser, or
//! with each other, or depend on server settings, the text is refused here:
//!
//! - Unicode escapes (`U&'…'`, `U&"…"`), PostgreSQL escape strings (`E'…'`) and
//!   any other letter glued to a quote (only `N`, `X`, `B` and MySQL `_charset`
//!   prefixes are accepted), dollar quoting (`$$…$$`, `$tag$…$tag$`);
//! - executable comments and optimizer hints (`/*!`, `/*M!`, `/*+`), nested or
//!   unterminated block comments (PostgreSQL nests them, MySQL and SQLite do
//!   not), MySQL `--` not followed by an ASCII space, tab or newline (not a comment
//!   for MySQL), `#` comments (MySQL, SQLite);
//! - a backslash inside a MySQL string (an escape unless the server runs with
//!   `NO_BACKSLASH_ESCAPES`, so where the string ends depends on the server);
//! - outside string literals and quoted identifiers: any character that is not
//!   printable ASCII, space, tab or a line break (Unicode spaces, NBSP,
//!   zero-width characters, control characters), a carriage return not followed
//!   by a line feed (PostgreSQL ends a `--` comment there, sqlparser does not),
//!   a backslash, braces (ODBC escapes), a number glued to letters (`1e1x`);
//! - NUL anywhere;
//! - more tokens than the bound (deeply chained expressions would exhaust the
//!   stack of the parser's tree when it is walked or dropped).
//!
//! The scanner also finds the comments itself, by the engine's rules, and blanks
//! them out of the text handed to the parser: sqlparser never decides where a
//! comment ends. Positions in refusals are 1-based line and column in characters.

use std::fmt;

use crate::engine::EngineKind;

/// A construct the lexical pass refuses, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexicalRefusal {
    /// What was found (e.g. "a MariaDB executable comment `/*M!`").
    pub construct: String,
    /// 1-based line of its first character.
    pub line: usize,
    /// 1-based column (in characters) of its first character.
    pub column: usize,
    /// Why it is a problem.
    pub why: &'static str,
}

impl fmt::Display for LexicalRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {} is not accepted because the database and the guard could read it differently ({})",
            self.construct, self.line, self.column, self.why
        )
    }
}

/// Why the scanner refused the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanRefusal {
    /// A form the engine and the parser could read differently.
    Ambiguous(LexicalRefusal),
    /// More tokens than the bound.
    TooManyTokens {
        /// The bound (`DB_MAX_SQL_TOKENS`).
        max_tokens: usize,
    },
}

/// What the scanner hands on: the text with every comment blanked out (same
/// length in characters, line breaks kept), and how many tokens it counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// The SQL without comments, for the parser.
    pub text: String,
    /// Words, numbers, literals, quoted identifiers and punctuation.
    pub tokens: usize,
}

/// Scans `sql` for `engine`; refuses what could be read differently, or more
/// than `max_tokens` tokens.
pub fn scan(engine: EngineKind, sql: &str, max_tokens: usize) -> Result<Scanned, ScanRefusal> {
    let mut scanner = Scanner {
        engine,
        chars: sql.chars().collect(),
        at: 0,
        text: String::with_capacity(sql.len()),
        tokens: 0,
        max_tokens,
    };
    scanner.run()?;
    Ok(Scanned {
        text: scanner.text,
        tokens: scanner.tokens,
    })
}

struct Scanner {
    engine: EngineKind,
    chars: Vec<char>,
    at: usize,
    text: String,
    tokens: usize,
    max_tokens: usize,
}

/// Characters of an unquoted name after its first.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

impl Scanner {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn refuse<T>(&self, at: usize, construct: String, why: &'static str) -> Result<T, ScanRefusal> {
        let before = &self.chars[..at.min(self.chars.len())];
        let line = 1 + before.iter().filter(|&&c| c == '\n').count();
        let column = 1 + before.iter().rev().take_while(|&&c| c != '\n').count();
        Err(ScanRefusal::Ambiguous(LexicalRefusal {
            construct,
            line,
            column,
            why,
        }))
    }

    /// Keeps `n` characters from the current position in the parser's text.
    fn keep(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(c) = self.peek(0) {
                self.text.push(c);
                self.at += 1;
            }
        }
    }

    /// Blanks `n` characters of a comment (line breaks stay, for positions).
    fn blank(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(c) = self.peek(0) {
                self.text.push(if c == '\n' { '\n' } else { ' ' });
                self.at += 1;
            }
        }
    }

    fn token(&mut self) -> Result<(), ScanRefusal> {
        self.tokens += 1;
        if self.tokens > self.max_tokens {
            return Err(ScanRefusal::TooManyTokens {
                max_tokens: self.max_tokens,
            });
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), ScanRefusal> {
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\n' => self.keep(1),
                '\r' if self.peek(1) == Some('\n') => self.keep(2),
                '\r' => {
                    return self.refuse(
                        self.at,
                        "a carriage return not followed by a line feed".to_owned(),
                        "PostgreSQL ends a -- comment there, the guard's parser does not",
                    );
                }
                '-' if self.peek(1) == Some('-') => self.line_comment()?,
                '/' if self.peek(1) == Some('*') => self.block_comment()?,
                '\'' => self.quoted('\'', Quoted::String)?,
                '"' => {
                    let kind = if self.engine == EngineKind::MySql {
                        Quoted::String
                    } else {
                        Quoted::Identifier
                    };
                    self.quoted('"', kind)?
                }
                '`' if self.engine != EngineKind::Postgres => {
                    self.quoted('`', Quoted::Identifier)?
                }
                '[' if self.engine == EngineKind::Sqlite => self.bracketed()?,
                '$' if self.engine == EngineKind::Postgres
                    && self.peek(1).is_some_and(|d| d.is_ascii_digit()) =>
                {
                    self.token()?;
                    self.keep(1);
                    while self.peek(0).is_some_and(|d| d.is_ascii_digit()) {
                        self.keep(1);
                    }
                    self.after_number()?;
                }
                '$' => {
                    return self.refuse(
                        self.at,
                        "`$` (dollar quoting or a $-name)".to_owned(),
                        "dollar-quoted strings and $-names are read differently by the engines and the guard's parser; use '…' strings",
                    );
                }
                '#' if self.engine != EngineKind::Postgres => {
                    return self.refuse(
                        self.at,
                        "`#`".to_owned(),
                        "MySQL starts a comment with #, the guard's parser may not; use -- or /* */ comments",
                    );
                }
                '\\' => {
                    return self.refuse(
                        self.at,
                        "a backslash outside a string".to_owned(),
                        "no engine accepts it there and each reads what follows differently",
                    );
                }
                '{' | '}' => {
                    return self.refuse(
                        self.at,
                        format!("`{c}`"),
                        "ODBC escape braces are expanded by some engines and drivers and not by others",
                    );
                }
                c if c.is_ascii_alphabetic() || c == '_' => self.word()?,
                c if c.is_ascii_digit() => self.number()?,
                '.' if self.peek(1).is_some_and(|d| d.is_ascii_digit()) => self.number()?,
                c if c.is_ascii_graphic() => {
                    self.token()?;
                    self.keep(1);
                }
                c => {
                    return self.refuse(
                        self.at,
                        describe_char(c),
                        "outside quotes only printable ASCII, spaces, tabs and line breaks are accepted; engines disagree on what other characters mean (a Unicode space after -- is a comment for one and not for another)",
                    );
                }
            }
        }
        Ok(())
    }

    /// `-- …` up to the end of the line.
    fn line_comment(&mut self) -> Result<(), ScanRefusal> {
        if self.engine == EngineKind::MySql {
            let spaced = match self.peek(2) {
                Some(' ' | '\t' | '\n') => true,
                Some('\r') => self.peek(3) == Some('\n'),
                _ => false,
            };
            if !spaced {
                return self.refuse(
                    self.at,
                    "`--` not followed by a space, tab or line break".to_owned(),
                    "MySQL reads it as two minus signs, other parsers as a comment; write `-- ` with a space, or `- -` for two minus signs",
                );
            }
        }
        while let Some(c) = self.peek(0) {
            match c {
                '\n' => break,
                '\r' if self.peek(1) == Some('\n') => break,
                '\r' => {
                    return self.refuse(
                        self.at,
                        "a carriage return inside a -- comment".to_owned(),
                        "PostgreSQL ends the comment there, the guard's parser does not",
                    );
                }
                '\0' => return self.refuse(self.at, describe_char(c), NUL_WHY),
                _ => self.blank(1),
            }
        }
        Ok(())
    }

    /// `/* … */`, neither nested nor executable nor a hint.
    fn block_comment(&mut self) -> Result<(), ScanRefusal> {
        let start = self.at;
        let marker = match (self.peek(2), self.peek(3)) {
            (Some('!'), _) => Some("a MySQL executable comment `/*!`"),
            (Some('M' | 'm'), Some('!')) => Some("a MariaDB executable comment `/*M!`"),
            (Some('+'), _) => Some("an optimizer hint `/*+`"),
            _ => None,
        };
        if let Some(marker) = marker {
            return self.refuse(
                start,
                marker.to_owned(),
                "MySQL and MariaDB run the text inside as SQL (or as hints that can lift the statement timeout), the guard's parser does not",
            );
        }
        self.blank(2);
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some('*'), Some('/')) => {
                    self.blank(2);
                    return Ok(());
                }
                (Some('/'), Some('*')) => {
                    return self.refuse(
                        self.at,
                        "a block comment opened inside a block comment".to_owned(),
                        "PostgreSQL nests block comments, MySQL and SQLite do not, so they end it at different places",
                    );
                }
                (Some('\0'), _) => return self.refuse(self.at, describe_char('\0'), NUL_WHY),
                (Some(_), _) => self.blank(1),
                (None, _) => {
                    return self.refuse(
                        start,
                        "an unterminated block comment".to_owned(),
                        "SQLite ends it at the end of the text, PostgreSQL and MySQL refuse it",
                    );
                }
            }
        }
    }

    /// A string literal or quoted identifier, with doubled quotes inside.
    fn quoted(&mut self, quote: char, kind: Quoted) -> Result<(), ScanRefusal> {
        self.token()?;
        let start = self.at;
        self.keep(1);
        loop {
            match self.peek(0) {
                Some(c) if c == quote && self.peek(1) == Some(quote) => self.keep(2),
                Some(c) if c == quote => {
                    self.keep(1);
                    return Ok(());
                }
                Some('\\') if kind == Quoted::String && self.engine == EngineKind::MySql => {
                    return self.refuse(
                        self.at,
                        "a backslash inside a MySQL string".to_owned(),
                        "it escapes the next character unless the server runs with NO_BACKSLASH_ESCAPES, so where the string ends depends on the server; for LIKE use another ESCAPE character, e.g. LIKE 'a!_b' ESCAPE '!'",
                    );
                }
                Some('\0') => return self.refuse(self.at, describe_char('\0'), NUL_WHY),
                Some(_) => self.keep(1),
                None => {
                    return self.refuse(
                        start,
                        format!("an unterminated {quote}…{quote}"),
                        "the engines and the guard's parser recover from it differently",
                    );
                }
            }
        }
    }

    /// SQLite's `[name]` identifier.
    fn bracketed(&mut self) -> Result<(), ScanRefusal> {
        self.token()?;
        let start = self.at;
        self.keep(1);
        loop {
            match self.peek(0) {
                Some(']') => {
                    self.keep(1);
                    return Ok(());
                }
                Some('\0') => return self.refuse(self.at, describe_char('\0'), NUL_WHY),
                Some(_) => self.keep(1),
                None => {
                    return self.refuse(
                        start,
                        "an unterminated [ identifier".to_owned(),
                        "the engines and the guard's parser recover from it differently",
                    );
                }
            }
        }
    }

    /// An unquoted name or keyword, and what may directly follow it.
    fn word(&mut self) -> Result<(), ScanRefusal> {
        self.token()?;
        let start = self.at;
        let mut word = String::new();
        while let Some(c) = self.peek(0).filter(|&c| is_word_char(c)) {
            word.push(c);
            self.keep(1);
        }
        let lower = word.to_ascii_lowercase();
        match self.peek(0) {
            Some('&') if lower == "u" && matches!(self.peek(1), Some('\'' | '"')) => self.refuse(
                start,
                "a Unicode escape `U&`".to_owned(),
                "U&'…' and U&\"…\" spell names and strings with escapes the guard's parser does not decode, so a hidden function name would pass",
            ),
            Some(q @ ('\'' | '"' | '`')) => {
                let prefix_ok = matches!(lower.as_str(), "n" | "x" | "b")
                    || (self.engine == EngineKind::MySql && q == '\'' && lower.starts_with('_'));
                if prefix_ok {
                    Ok(())
                } else {
                    self.refuse(
                        start,
                        format!("`{word}` directly before a quote"),
                        "prefixed literals such as E'…' (escape strings) are decoded differently by the engines and the guard's parser; only N'…', X'…' and B'…' are accepted, and a name must be separated from a quote by a space",
                    )
                }
            }
            Some('@') if self.engine == EngineKind::MySql => self.refuse(
                self.at,
                "`@` directly after a name".to_owned(),
                "the guard's parser reads it as part of the name, MySQL does not",
            ),
            _ => Ok(()),
        }
    }

    /// A numeric literal: digits, a fraction, an exponent, or 0x/0b forms.
    fn number(&mut self) -> Result<(), ScanRefusal> {
        self.token()?;
        let radix = match (self.peek(0), self.peek(1)) {
            (Some('0'), Some('x' | 'X')) => Some(16),
            (Some('0'), Some('b' | 'B')) => Some(2),
            _ => None,
        };
        if let Some(radix) = radix
            && self.peek(2).is_some_and(|d| d.is_digit(radix))
        {
            self.keep(2);
            while self.peek(0).is_some_and(|d| d.is_digit(radix)) {
                self.keep(1);
            }
            return self.after_number();
        }
        while self.peek(0).is_some_and(|d| d.is_ascii_digit()) {
            self.keep(1);
        }
        if self.peek(0) == Some('.') && self.peek(1) != Some('.') {
            self.keep(1);
            while self.peek(0).is_some_and(|d| d.is_ascii_digit()) {
                self.keep(1);
            }
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let digits_at = if matches!(self.peek(1), Some('+' | '-')) {
                2
            } else {
                1
            };
            if self.peek(digits_at).is_some_and(|d| d.is_ascii_digit()) {
                self.keep(digits_at);
                while self.peek(0).is_some_and(|d| d.is_ascii_digit()) {
                    self.keep(1);
                }
            }
        }
        self.after_number()
    }

    fn after_number(&self) -> Result<(), ScanRefusal> {
        match self.peek(0) {
            Some(c) if is_word_char(c) || c == '.' && self.peek(1).is_some_and(is_word_char) => {
                self.refuse(
                    self.at,
                    format!("`{c}` directly after a number"),
                    "engines split a number glued to letters into different tokens (MySQL reads 1e1x as a name); put a space between them",
                )
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoted {
    String,
    Identifier,
}

const NUL_WHY: &str = "a NUL character ends the text early for some engines and drivers";

/// A character for a message: its code point, and its form when printable.
fn describe_char(c: char) -> String {
    if c.is_alphanumeric() || c.is_ascii_graphic() {
        format!("the character U+{:04X} ({c})", c as u32)
    } else {
        format!("the character U+{:04X}", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: EngineKind = EngineKind::Postgres;
    const MY: EngineKind = EngineKind::MySql;
    const LITE: EngineKind = EngineKind::Sqlite;

    fn scanned(engine: EngineKind, sql: &str) -> Scanned {
        match scan(engine, sql, 1_000) {
            Ok(scanned) => scanned,
            Err(refusal) => panic!("{engine:?} {sql:?}: {refusal:?}"),
        }
    }

    fn ambiguous(engine: EngineKind, sql: &str) -> LexicalRefusal {
        match scan(engine, sql, 1_000) {
            Err(ScanRefusal::Ambiguous(refusal)) => refusal,
            other => panic!("{engine:?} {sql:?}: {other:?}"),
        }
    }

    #[test]
    fn text_without_comments_reaches_the_parser_unchanged_with_its_tokens_counted() {
        for (sql, tokens) in [
            ("SELECT 1 - 2 * 3 / 4", 8),
            ("SELECT a-b, c/d FROM t", 10),
            ("SELECT .5, 1.5e3, 0x1F, 'it''s'", 8),
            ("SELECT -1", 3),
            ("SELECT\r\n1", 2),
            ("SELECT x'00', N'y'", 6),
        ] {
            for engine in [PG, MY, LITE] {
                let out = scanned(engine, sql);
                assert_eq!(out.text, sql, "{engine:?}");
                assert_eq!(out.tokens, tokens, "{engine:?} {sql}");
            }
        }
        let out = scanned(PG, "SELECT a[1], \"q\"\"x\", $2 FROM t");
        assert_eq!(out.text, "SELECT a[1], \"q\"\"x\", $2 FROM t");
        assert_eq!(out.tokens, 11);
        // `@` after a name: an operator on PostgreSQL, refused on MySQL only.
        assert_eq!(scanned(PG, "SELECT a@>b FROM t").tokens, 7);
        assert!(ambiguous(MY, "SELECT a@b FROM t").construct.contains('@'));
        let out = scanned(LITE, "SELECT [a b], `c` FROM t");
        assert_eq!(out.tokens, 6);
        let out = scanned(MY, "SELECT `a``b`, \"s\"\"t\" FROM t");
        assert_eq!(out.tokens, 6);
    }

    #[test]
    fn comments_are_blanked_character_for_character_keeping_line_breaks() {
        let out = scanned(PG, "SELECT /* a\nb */ 1 -- c\r\n");
        assert_eq!(out.text, "SELECT     \n     1     \r\n");
        assert_eq!(out.tokens, 2);
        let out = scanned(MY, "SELECT 1 -- c\n");
        assert_eq!(out.text, "SELECT 1     \n");
        let out = scanned(LITE, "SELECT 1 --");
        assert_eq!(out.text, "SELECT 1   ");
    }

    #[test]
    fn brackets_quote_names_only_on_sqlite() {
        // On PostgreSQL `[` is a subscript: what follows is still checked.
        let refusal = ambiguous(PG, "SELECT a[$$x$$]");
        assert!(refusal.construct.contains('$'), "{refusal}");
        assert_eq!(scanned(LITE, "SELECT [$$x$$] FROM t").tokens, 4);
        assert!(ambiguous(MY, "SELECT a[1 # ]").construct.contains('#'));
    }

    #[test]
    fn a_carriage_return_inside_a_comment_is_named_as_such() {
        let refusal = ambiguous(PG, "SELECT 1 -- x\ry");
        assert_eq!(refusal.construct, "a carriage return inside a -- comment");
        assert_eq!((refusal.line, refusal.column), (1, 14));
        let refusal = ambiguous(PG, "SELECT 1\r");
        assert_eq!(
            refusal.construct,
            "a carriage return not followed by a line feed"
        );
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let refusal = ambiguous(PG, "SELECT 'é',\n  ü");
        assert_eq!((refusal.line, refusal.column), (2, 3));
        assert!(
            refusal.construct.contains("U+00FC (ü)"),
            "{}",
            refusal.construct
        );
        let refusal = ambiguous(PG, "SELECT\u{a0}1");
        assert_eq!(refusal.construct, "the character U+00A0");
    }

    #[test]
    fn only_u_glued_to_an_ampersand_and_a_quote_is_a_unicode_escape() {
        for sql in [
            "SELECT a&b FROM t",
            "SELECT u & 'x' FROM t",
            "SELECT ux&'1'::int",
        ] {
            assert_eq!(scanned(PG, sql).text, sql);
        }
        for sql in ["SELECT U&'x'", "SELECT u&\"x\""] {
            assert!(
                ambiguous(PG, sql).construct.contains("Unicode escape"),
                "{sql}"
            );
        }
    }

    #[test]
    fn the_token_bound_is_exact() {
        assert_eq!(scan(PG, "SELECT 1, 2", 4).map(|s| s.tokens), Ok(4));
        assert_eq!(
            scan(PG, "SELECT 1, 2", 3),
            Err(ScanRefusal::TooManyTokens { max_tokens: 3 })
        );
    }

    #[test]
    fn mysql_spacing_after_double_dash_is_checked_at_the_right_character() {
        assert!(scan(MY, "SELECT 1 --\r\nx", 100).is_ok());
        assert!(ambiguous(MY, "SELECT 1 --\rx").construct.contains("--"));
        assert_eq!(ambiguous(MY, "SELECT 1 --x").column, 10);
    }
}
