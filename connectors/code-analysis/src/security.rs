//! Security rules written as tree-sitter queries over the same syntax trees the
//! metrics use, so text inside comments (and, except for the credential rules,
//! string literals) never matches.
//!
//! A rule is a query with an `@finding` capture (the reported range) plus an
//! optional check in Rust for what a query cannot say: "this argument is not a
//! constant string" (`@dynamic`), "this name looks like a secret and this literal
//! looks random" (`@name`, `@secret`), "this literal has a known key format"
//! (`@secret`), "this yaml.load has no safe loader" (`@fn`, `@args`). `{fn}` in a
//! message is replaced by the text of the `@fn` capture.

use std::collections::HashMap;
use std::sync::LazyLock;

use big_code_analysis::LANG;
use big_code_analysis::tree_sitter::{Node, Query, QueryCursor, StreamingIterator, Tree};
use pb::Severity;
use regex::Regex;
use switchboard_proto::code_analysis::v1 as pb;

/// Language families that share node kinds (TypeScript extends JavaScript's
/// grammar, C++ extends C's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Python,
    JavaScript,
    Go,
    Java,
    C,
    Rust,
}

fn family(lang: LANG) -> Option<Family> {
    match lang {
        LANG::Python => Some(Family::Python),
        LANG::Javascript | LANG::Typescript | LANG::Tsx => Some(Family::JavaScript),
        LANG::Go => Some(Family::Go),
        LANG::Java => Some(Family::Java),
        LANG::C | LANG::Cpp => Some(Family::C),
        LANG::Rust => Some(Family::Rust),
        _ => None,
    }
}

/// What a match must also satisfy, beyond the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The query says it all.
    None,
    /// `@dynamic`, when captured, must not be a constant string literal.
    Dynamic,
    /// `@name` looks like a secret's name and `@secret` like a real secret.
    Credential,
    /// `@secret` contains a known credential format.
    KeyFormat,
    /// yaml.load/load_all without SafeLoader/CSafeLoader/BaseLoader (`@fn`, `@args`).
    YamlUnsafe,
}

#[derive(Debug)]
struct Rule {
    id: &'static str,
    family: Family,
    cwe: &'static str,
    severity: Severity,
    message: &'static str,
    check: Check,
    query: &'static str,
}

/// SQL keywords, for rules about SQL built from strings.
macro_rules! sql {
    ($capture:literal) => {
        concat!(
            "(#match? @",
            $capture,
            " \"(?i)\\\\b(select|insert|update|delete|drop|create|alter|replace|merge)\\\\b\")"
        )
    };
}

const RULES: &[Rule] = &[
    // ---------------------------------------------------------------- Python
    Rule {
        id: "python.eval-exec",
        family: Family::Python,
        cwe: "CWE-95",
        severity: Severity::High,
        message: "{fn}() runs code built at run time; if any part comes from input this is code injection. Parse the data instead (ast.literal_eval, json.loads) or dispatch on known values",
        check: Check::Dynamic,
        query: r#"(call function: (identifier) @fn (#any-of? @fn "eval" "exec") arguments: (argument_list . (_) @dynamic)) @finding"#,
    },
    Rule {
        id: "python.subprocess-shell-true",
        family: Family::Python,
        cwe: "CWE-78",
        severity: Severity::High,
        message: "subprocess call with shell=True: the command line is interpreted by a shell, so input in it can inject commands. Pass a list of arguments without shell=True",
        check: Check::None,
        query: r#"(call function: (attribute object: (identifier) @mod (#eq? @mod "subprocess")) arguments: (argument_list (keyword_argument name: (identifier) @kw (#eq? @kw "shell") value: (true)))) @finding"#,
    },
    Rule {
        id: "python.os-system",
        family: Family::Python,
        cwe: "CWE-78",
        severity: Severity::High,
        message: "os.{fn}() with a command built at run time runs it through a shell (command injection). Use subprocess.run([...]) with a list of arguments",
        check: Check::Dynamic,
        query: r#"(call function: (attribute object: (identifier) @mod (#eq? @mod "os") attribute: (identifier) @fn (#any-of? @fn "system" "popen")) arguments: (argument_list . (_) @dynamic)) @finding"#,
    },
    Rule {
        id: "python.sql-injection",
        family: Family::Python,
        cwe: "CWE-89",
        severity: Severity::High,
        message: "SQL built by concatenation or formatting is passed to {fn}(): values in it can inject SQL. Use placeholders and pass the values as parameters",
        check: Check::Dynamic,
        query: concat!(
            r#"(call function: (attribute attribute: (identifier) @fn (#any-of? @fn "execute" "executemany" "executescript" "raw" "read_sql" "read_sql_query" "text"))
                 arguments: (argument_list . [(binary_operator) (string) (call function: (attribute attribute: (identifier) @fmt (#eq? @fmt "format")))] @dynamic "#,
            sql!("dynamic"),
            ")) @finding"
        ),
    },
    Rule {
        id: "python.unsafe-deserialization",
        family: Family::Python,
        cwe: "CWE-502",
        severity: Severity::High,
        message: "{fn}() on untrusted data executes arbitrary code during deserialisation. Use a data-only format such as JSON",
        check: Check::None,
        query: r#"(call function: (attribute object: (identifier) @mod (#any-of? @mod "pickle" "cPickle" "_pickle" "dill" "shelve" "marshal" "jsonpickle") attribute: (identifier) @fn (#any-of? @fn "load" "loads" "Unpickler" "open" "decode"))) @finding"#,
    },
    Rule {
        id: "python.yaml-unsafe-load",
        family: Family::Python,
        cwe: "CWE-502",
        severity: Severity::High,
        message: "yaml.{fn}() without a safe loader can construct arbitrary Python objects from the document. Use yaml.safe_load() or Loader=yaml.SafeLoader",
        check: Check::YamlUnsafe,
        query: r#"(call function: (attribute object: (identifier) @mod (#eq? @mod "yaml") attribute: (identifier) @fn (#any-of? @fn "load" "load_all" "unsafe_load" "unsafe_load_all" "full_load" "full_load_all")) arguments: (argument_list) @args) @finding"#,
    },
    Rule {
        id: "python.weak-hash",
        family: Family::Python,
        cwe: "CWE-328",
        severity: Severity::Medium,
        message: "MD5/SHA-1 are broken for security uses (collisions). Use hashlib.sha256 or, for passwords, hashlib.scrypt/argon2; pass usedforsecurity=False if this is not a security use",
        check: Check::None,
        query: r#"
            (call function: (attribute object: (identifier) @mod (#eq? @mod "hashlib") attribute: (identifier) @fn (#any-of? @fn "md5" "sha1" "md4"))) @finding
            (call function: (attribute object: (identifier) @mod (#eq? @mod "hashlib") attribute: (identifier) @fn (#eq? @fn "new")) arguments: (argument_list . (string) @alg (#match? @alg "(?i)^[a-z]*[\"'](md5|md4|sha1|sha-1)[\"']$"))) @finding
        "#,
    },
    Rule {
        id: "python.weak-cipher",
        family: Family::Python,
        cwe: "CWE-327",
        severity: Severity::Medium,
        message: "weak cipher or ECB mode: DES, 3DES, RC2, RC4, Blowfish and ECB do not protect confidentiality. Use AES-GCM or ChaCha20-Poly1305",
        check: Check::None,
        query: r#"
            (call function: (attribute object: (identifier) @mod (#any-of? @mod "DES" "DES3" "ARC2" "ARC4" "Blowfish" "XOR") attribute: (identifier) @fn (#eq? @fn "new"))) @finding
            (attribute object: (identifier) @mod (#any-of? @mod "AES" "DES" "DES3" "Blowfish") attribute: (identifier) @mode (#eq? @mode "MODE_ECB")) @finding
        "#,
    },
    Rule {
        id: "python.hardcoded-credential",
        family: Family::Python,
        cwe: "CWE-798",
        severity: Severity::High,
        message: "a secret-looking value is hard-coded; anyone with the source has it. Read it from the environment or a secret store, and rotate it",
        check: Check::Credential,
        query: r#"
            (assignment left: (identifier) @name right: (string) @secret) @finding
            (assignment left: (attribute attribute: (identifier) @name) right: (string) @secret) @finding
            (keyword_argument name: (identifier) @name value: (string) @secret) @finding
            (pair key: (string) @name value: (string) @secret) @finding
        "#,
    },
    Rule {
        id: "python.secret-key-format",
        family: Family::Python,
        cwe: "CWE-798",
        severity: Severity::Critical,
        message: "{format} in the source: a leaked credential. Revoke it, remove it from history and load it from a secret store",
        check: Check::KeyFormat,
        query: r#"(string) @secret @finding"#,
    },
    // ---------------------------------------------------- JavaScript / TypeScript
    Rule {
        id: "javascript.eval",
        family: Family::JavaScript,
        cwe: "CWE-95",
        severity: Severity::High,
        message: "{fn} runs a string as code; with any input in it this is code injection. Use JSON.parse or a dispatch table",
        check: Check::Dynamic,
        query: r#"
            (call_expression function: (identifier) @fn (#eq? @fn "eval") arguments: (arguments . (_) @dynamic)) @finding
            (new_expression constructor: (identifier) @fn (#eq? @fn "Function")) @finding
            (call_expression function: (identifier) @fn (#any-of? @fn "setTimeout" "setInterval") arguments: (arguments . [(string) (template_string) (binary_expression)] @code)) @finding
        "#,
    },
    Rule {
        id: "javascript.command-injection",
        family: Family::JavaScript,
        cwe: "CWE-78",
        severity: Severity::High,
        message: "{fn}() runs a command line built at run time through a shell (command injection). Use execFile/spawn with an argument array and no shell",
        check: Check::Dynamic,
        query: r#"
            (call_expression function: [(identifier) @fn (member_expression property: (property_identifier) @fn)] (#any-of? @fn "exec" "execSync") arguments: (arguments . [(binary_expression) (template_string)] @dynamic)) @finding
            (call_expression function: [(identifier) @fn (member_expression property: (property_identifier) @fn)] (#any-of? @fn "spawn" "spawnSync" "execFile" "execFileSync") arguments: (arguments (object (pair key: (property_identifier) @k (#eq? @k "shell") value: (true))))) @finding
        "#,
    },
    Rule {
        id: "javascript.sql-injection",
        family: Family::JavaScript,
        cwe: "CWE-89",
        severity: Severity::High,
        message: "SQL built by concatenation or a template literal is passed to {fn}(): values in it can inject SQL. Use placeholders ($1, ?) and pass the values separately",
        check: Check::Dynamic,
        query: concat!(
            r#"(call_expression function: (member_expression property: (property_identifier) @fn (#any-of? @fn "query" "execute" "raw" "$queryRawUnsafe" "$executeRawUnsafe" "run" "all" "get" "prepare" "exec"))
                 arguments: (arguments . [(binary_expression) (template_string)] @dynamic "#,
            sql!("dynamic"),
            ")) @finding"
        ),
    },
    Rule {
        id: "javascript.weak-hash",
        family: Family::JavaScript,
        cwe: "CWE-328",
        severity: Severity::Medium,
        message: "MD5/SHA-1 are broken for security uses. Use sha256 or, for passwords, scrypt/argon2",
        check: Check::None,
        query: r#"(call_expression function: (member_expression property: (property_identifier) @fn (#any-of? @fn "createHash" "createHmac")) arguments: (arguments . (string) @alg (#match? @alg "(?i)^['\"](md5|md4|sha1|sha-1|ripemd160)['\"]$"))) @finding"#,
    },
    Rule {
        id: "javascript.weak-cipher",
        family: Family::JavaScript,
        cwe: "CWE-327",
        severity: Severity::Medium,
        message: "weak cipher or ECB mode (DES, RC4, RC2, Blowfish, ECB), or createCipher without an IV. Use aes-256-gcm with createCipheriv",
        check: Check::None,
        query: r#"
            (call_expression function: (member_expression property: (property_identifier) @fn (#any-of? @fn "createCipheriv" "createDecipheriv")) arguments: (arguments . (string) @alg (#match? @alg "(?i)(des|rc4|rc2|blowfish|bf-|ecb)"))) @finding
            (call_expression function: (member_expression property: (property_identifier) @fn (#any-of? @fn "createCipher" "createDecipher"))) @finding
        "#,
    },
    Rule {
        id: "javascript.unsafe-deserialization",
        family: Family::JavaScript,
        cwe: "CWE-502",
        severity: Severity::High,
        message: "unserialize() (node-serialize) can execute functions embedded in the data. Use JSON.parse",
        check: Check::None,
        query: r#"(call_expression function: (member_expression property: (property_identifier) @fn (#eq? @fn "unserialize"))) @finding"#,
    },
    Rule {
        id: "javascript.hardcoded-credential",
        family: Family::JavaScript,
        cwe: "CWE-798",
        severity: Severity::High,
        message: "a secret-looking value is hard-coded; anyone with the source has it. Read it from process.env or a secret store, and rotate it",
        check: Check::Credential,
        query: r#"
            (variable_declarator name: (identifier) @name value: (string) @secret) @finding
            (assignment_expression left: (identifier) @name right: (string) @secret) @finding
            (assignment_expression left: (member_expression property: (property_identifier) @name) right: (string) @secret) @finding
            (pair key: [(property_identifier) (string)] @name value: (string) @secret) @finding
        "#,
    },
    Rule {
        id: "javascript.secret-key-format",
        family: Family::JavaScript,
        cwe: "CWE-798",
        severity: Severity::Critical,
        message: "{format} in the source: a leaked credential. Revoke it, remove it from history and load it from a secret store",
        check: Check::KeyFormat,
        query: r#"[(string) (template_string)] @secret @finding"#,
    },
    // -------------------------------------------------------------------- Go
    Rule {
        id: "go.command-injection",
        family: Family::Go,
        cwe: "CWE-78",
        severity: Severity::High,
        message: "exec.{fn} with an argument built by concatenation or Sprintf, or a shell with -c and a variable script: input can inject commands. Pass fixed program names and separate arguments",
        check: Check::None,
        query: r#"
            (call_expression function: (selector_expression operand: (identifier) @pkg (#eq? @pkg "exec") field: (field_identifier) @fn (#any-of? @fn "Command" "CommandContext"))
               arguments: (argument_list [(binary_expression) (call_expression function: (selector_expression operand: (identifier) @fmt (#eq? @fmt "fmt") field: (field_identifier) @sp (#eq? @sp "Sprintf")))] @dynamic)) @finding
            (call_expression function: (selector_expression operand: (identifier) @pkg (#eq? @pkg "exec") field: (field_identifier) @fn (#eq? @fn "Command"))
               arguments: (argument_list . (interpreted_string_literal) @sh (#match? @sh "^\"(/bin/)?(sh|bash|zsh)\"$") . (interpreted_string_literal) @c (#eq? @c "\"-c\"") . (identifier) @dynamic)) @finding
        "#,
    },
    Rule {
        id: "go.sql-injection",
        family: Family::Go,
        cwe: "CWE-89",
        severity: Severity::High,
        message: "SQL built by concatenation or fmt.Sprintf is passed to {fn}(): values in it can inject SQL. Use placeholders ($1, ?) and pass the values as arguments",
        check: Check::None,
        query: concat!(
            r#"(call_expression function: (selector_expression field: (field_identifier) @fn (#any-of? @fn "Query" "QueryRow" "Exec" "QueryContext" "QueryRowContext" "ExecContext" "Prepare" "PrepareContext" "Raw" "Select" "Get"))
                 arguments: (argument_list [(binary_expression) (call_expression function: (selector_expression field: (field_identifier) @sp (#eq? @sp "Sprintf")))] @dynamic "#,
            sql!("dynamic"),
            ")) @finding"
        ),
    },
    Rule {
        id: "go.weak-hash",
        family: Family::Go,
        cwe: "CWE-328",
        severity: Severity::Medium,
        message: "MD5/SHA-1 are broken for security uses. Use crypto/sha256 or, for passwords, golang.org/x/crypto/argon2",
        check: Check::None,
        query: r#"(call_expression function: (selector_expression operand: (identifier) @pkg (#any-of? @pkg "md5" "sha1" "md4") field: (field_identifier) @fn (#any-of? @fn "New" "Sum"))) @finding"#,
    },
    Rule {
        id: "go.weak-cipher",
        family: Family::Go,
        cwe: "CWE-327",
        severity: Severity::Medium,
        message: "DES, 3DES, RC4 and Blowfish do not protect confidentiality. Use AES-GCM (crypto/cipher.NewGCM) or chacha20poly1305",
        check: Check::None,
        query: r#"(call_expression function: (selector_expression operand: (identifier) @pkg (#any-of? @pkg "des" "rc4" "blowfish") field: (field_identifier) @fn (#any-of? @fn "NewCipher" "NewTripleDESCipher"))) @finding"#,
    },
    Rule {
        id: "go.insecure-tls",
        family: Family::Go,
        cwe: "CWE-295",
        severity: Severity::Medium,
        message: "InsecureSkipVerify: true accepts any TLS certificate, so connections can be intercepted. Verify certificates (configure RootCAs if needed)",
        check: Check::None,
        query: r#"(keyed_element (literal_element (identifier) @k (#eq? @k "InsecureSkipVerify")) (literal_element (true))) @finding"#,
    },
    Rule {
        id: "go.hardcoded-credential",
        family: Family::Go,
        cwe: "CWE-798",
        severity: Severity::High,
        message: "a secret-looking value is hard-coded; anyone with the source has it. Read it from the environment or a secret store, and rotate it",
        check: Check::Credential,
        query: r#"
            (const_spec name: (identifier) @name value: (expression_list (interpreted_string_literal) @secret)) @finding
            (var_spec name: (identifier) @name value: (expression_list (interpreted_string_literal) @secret)) @finding
            (short_var_declaration left: (expression_list (identifier) @name) right: (expression_list (interpreted_string_literal) @secret)) @finding
            (assignment_statement left: (expression_list [(identifier) (selector_expression)] @name) right: (expression_list (interpreted_string_literal) @secret)) @finding
            (keyed_element (literal_element (identifier) @name) (literal_element (interpreted_string_literal) @secret)) @finding
        "#,
    },
    Rule {
        id: "go.secret-key-format",
        family: Family::Go,
        cwe: "CWE-798",
        severity: Severity::Critical,
        message: "{format} in the source: a leaked credential. Revoke it, remove it from history and load it from a secret store",
        check: Check::KeyFormat,
        query: r#"[(interpreted_string_literal) (raw_string_literal)] @secret @finding"#,
    },
    // ------------------------------------------------------------------ Java
    Rule {
        id: "java.command-injection",
        family: Family::Java,
        cwe: "CWE-78",
        severity: Severity::High,
        message: "a command built at run time is executed; input in it can inject commands or arguments. Use ProcessBuilder with a fixed program and separate, validated arguments",
        check: Check::None,
        query: r#"
            (method_invocation name: (identifier) @fn (#eq? @fn "exec") arguments: (argument_list . [(binary_expression) (identifier) (method_invocation)] @dynamic)) @finding
            (object_creation_expression type: (type_identifier) @t (#eq? @t "ProcessBuilder") arguments: (argument_list (binary_expression) @dynamic)) @finding
        "#,
    },
    Rule {
        id: "java.sql-injection",
        family: Family::Java,
        cwe: "CWE-89",
        severity: Severity::High,
        message: "SQL built by concatenation or String.format is passed to {fn}(): values in it can inject SQL. Use a PreparedStatement with ? placeholders",
        check: Check::None,
        query: concat!(
            r#"(method_invocation name: (identifier) @fn (#any-of? @fn "executeQuery" "executeUpdate" "execute" "executeLargeUpdate" "addBatch" "prepareStatement" "prepareCall" "createQuery" "createNativeQuery" "createSQLQuery" "queryForObject" "queryForList" "queryForMap" "query" "update")
                 arguments: (argument_list . [(binary_expression) (method_invocation name: (identifier) @f2 (#any-of? @f2 "format" "formatted" "concat"))] @dynamic "#,
            sql!("dynamic"),
            ")) @finding"
        ),
    },
    Rule {
        id: "java.unsafe-deserialization",
        family: Family::Java,
        cwe: "CWE-502",
        severity: Severity::High,
        message: "{fn} deserialises arbitrary object graphs; untrusted data can run code through gadget chains. Use a data format (JSON) or an ObjectInputFilter allow-list",
        check: Check::None,
        query: r#"(object_creation_expression type: (type_identifier) @fn (#any-of? @fn "ObjectInputStream" "XMLDecoder")) @finding"#,
    },
    Rule {
        id: "java.weak-hash",
        family: Family::Java,
        cwe: "CWE-328",
        severity: Severity::Medium,
        message: "MD2/MD4/MD5/SHA-1 are broken for security uses. Use SHA-256 or, for passwords, PBKDF2/bcrypt/argon2",
        check: Check::None,
        query: r#"(method_invocation object: (identifier) @cls (#eq? @cls "MessageDigest") name: (identifier) @fn (#eq? @fn "getInstance") arguments: (argument_list . (string_literal) @alg (#match? @alg "(?i)^\"(md2|md4|md5|sha-?1|sha)\"$"))) @finding"#,
    },
    Rule {
        id: "java.weak-cipher",
        family: Family::Java,
        cwe: "CWE-327",
        severity: Severity::Medium,
        message: "weak cipher or ECB mode (a bare \"AES\" means AES/ECB). Use AES/GCM/NoPadding",
        check: Check::None,
        query: r#"(method_invocation object: (identifier) @cls (#eq? @cls "Cipher") name: (identifier) @fn (#eq? @fn "getInstance") arguments: (argument_list . (string_literal) @alg (#match? @alg "(?i)^\"(des|desede|tripledes|rc2|rc4|arcfour|blowfish)(/|\")|/ecb/|^\"aes\"$"))) @finding"#,
    },
    Rule {
        id: "java.script-eval",
        family: Family::Java,
        cwe: "CWE-95",
        severity: Severity::High,
        message: "ScriptEngine.eval() of a string built at run time runs it as code (code injection). Do not evaluate input",
        check: Check::None,
        query: r#"(method_invocation name: (identifier) @fn (#eq? @fn "eval") arguments: (argument_list . [(binary_expression) (identifier)] @dynamic)) @finding"#,
    },
    Rule {
        id: "java.hardcoded-credential",
        family: Family::Java,
        cwe: "CWE-798",
        severity: Severity::High,
        message: "a secret-looking value is hard-coded; anyone with the source or the class files has it. Read it from the environment or a secret store, and rotate it",
        check: Check::Credential,
        query: r#"
            (variable_declarator name: (identifier) @name value: (string_literal) @secret) @finding
            (assignment_expression left: [(identifier) (field_access)] @name right: (string_literal) @secret) @finding
        "#,
    },
    Rule {
        id: "java.secret-key-format",
        family: Family::Java,
        cwe: "CWE-798",
        severity: Severity::Critical,
        message: "{format} in the source: a leaked credential. Revoke it, remove it from history and load it from a secret store",
        check: Check::KeyFormat,
        query: r#"(string_literal) @secret @finding"#,
    },
    // --------------------------------------------------------------- C / C++
    Rule {
        id: "c.gets",
        family: Family::C,
        cwe: "CWE-242",
        severity: Severity::Critical,
        message: "gets() cannot limit its input and always allows a buffer overflow. Use fgets(buf, sizeof buf, stdin)",
        check: Check::None,
        query: r#"(call_expression function: (identifier) @fn (#eq? @fn "gets")) @finding"#,
    },
    Rule {
        id: "c.unbounded-copy",
        family: Family::C,
        cwe: "CWE-120",
        severity: Severity::Medium,
        message: "{fn}() does not check the destination size (buffer overflow). Use a bounded variant (snprintf, strlcpy/strlcat, or explicit length checks)",
        check: Check::None,
        query: r#"(call_expression function: (identifier) @fn (#any-of? @fn "strcpy" "strcat" "sprintf" "vsprintf" "stpcpy" "wcscpy" "wcscat" "lstrcpy" "lstrcat")) @finding"#,
    },
    Rule {
        id: "c.command-injection",
        family: Family::C,
        cwe: "CWE-78",
        severity: Severity::High,
        message: "{fn}() runs a command line built at run time through the shell (command injection). Use execve/posix_spawn with a fixed program and argument vector",
        check: Check::Dynamic,
        query: r#"(call_expression function: (identifier) @fn (#any-of? @fn "system" "popen") arguments: (argument_list . (_) @dynamic)) @finding"#,
    },
    Rule {
        id: "c.format-string",
        family: Family::C,
        cwe: "CWE-134",
        severity: Severity::Medium,
        message: "{fn}() with a variable as the format string: % directives in it read or write memory. Use a literal format, e.g. printf(\"%s\", s)",
        check: Check::None,
        query: r#"
            (call_expression function: (identifier) @fn (#any-of? @fn "printf" "vprintf") arguments: (argument_list . (identifier) @dynamic .)) @finding
            (call_expression function: (identifier) @fn (#any-of? @fn "fprintf" "dprintf" "syslog") arguments: (argument_list . (_) . (identifier) @dynamic .)) @finding
        "#,
    },
    Rule {
        id: "c.weak-crypto",
        family: Family::C,
        cwe: "CWE-327",
        severity: Severity::Medium,
        message: "{fn}: MD4/MD5/SHA-1, DES, RC4, Blowfish and ECB mode are broken for security uses. Use SHA-256 and AES-GCM (EVP_sha256, EVP_aes_256_gcm)",
        check: Check::None,
        query: r#"(call_expression function: (identifier) @fn (#match? @fn "^(MD2|MD4|MD5|SHA1|MD5_Init|MD4_Init|SHA1_Init|EVP_md2|EVP_md4|EVP_md5|EVP_sha1|DES_.+|EVP_des_.+|EVP_rc4.*|EVP_rc2_.+|EVP_bf_.+|EVP_aes_(128|192|256)_ecb|RC4|RC4_set_key|BF_set_key)$")) @finding"#,
    },
    Rule {
        id: "c.hardcoded-credential",
        family: Family::C,
        cwe: "CWE-798",
        severity: Severity::High,
        message: "a secret-looking value is hard-coded; anyone with the binary can read it with `strings`. Load it at run time from configuration or a secret store",
        check: Check::Credential,
        query: r#"
            (init_declarator declarator: (_) @name value: (string_literal) @secret) @finding
            (assignment_expression left: (_) @name right: (string_literal) @secret) @finding
        "#,
    },
    Rule {
        id: "c.secret-key-format",
        family: Family::C,
        cwe: "CWE-798",
        severity: Severity::Critical,
        message: "{format} in the source: a leaked credential. Revoke it, remove it from history and load it from a secret store",
        check: Check::KeyFormat,
        query: r#"(string_literal) @secret @finding"#,
    },
    // ------------------------------------------------------------------ Rust
    Rule {
        id: "rust.unsafe-block",
        family: Family::Rust,
        cwe: "CWE-676",
        severity: Severity::Low,
        message: "unsafe block: the compiler does not check memory safety here. Keep it minimal and state the invariants in a // SAFETY: comment",
        check: Check::None,
        query: r#"(unsafe_block) @finding"#,
    },
    Rule {
        id: "rust.unsafe-fn-or-impl",
        family: Family::Rust,
        cwe: "CWE-676",
        severity: Severity::Low,
        message: "unsafe function or impl: callers must uphold invariants the compiler cannot check. Document them in a # Safety section",
        check: Check::None,
        query: r#"
            (function_item (function_modifiers "unsafe")) @finding
            (impl_item "unsafe") @finding
        "#,
    },
    Rule {
        id: "rust.command-shell",
        family: Family::Rust,
        cwe: "CWE-78",
        severity: Severity::Medium,
        message: "Command runs a shell or a program name built at run time: any input in the script or name can inject commands. Run the program directly with .arg() for each argument",
        check: Check::None,
        query: r#"
            (call_expression function: (scoped_identifier path: (_) @t (#match? @t "Command$") name: (identifier) @n (#eq? @n "new")) arguments: (arguments . (string_literal) @sh (#match? @sh "^\"(/bin/)?(sh|bash|zsh|cmd|cmd\\.exe|powershell|pwsh)\"$"))) @finding
            (call_expression function: (scoped_identifier path: (_) @t (#match? @t "Command$") name: (identifier) @n (#eq? @n "new")) arguments: (arguments . (macro_invocation macro: (identifier) @m (#eq? @m "format")) @dynamic)) @finding
        "#,
    },
    Rule {
        id: "rust.sql-injection",
        family: Family::Rust,
        cwe: "CWE-89",
        severity: Severity::High,
        message: "SQL built with format! is passed to {fn}(): values in it can inject SQL. Use bind parameters ($1, ?) instead",
        check: Check::None,
        query: concat!(
            r#"(call_expression function: [(field_expression field: (field_identifier) @fn) (scoped_identifier name: (identifier) @fn) (identifier) @fn] (#any-of? @fn "execute" "query" "query_as" "query_scalar" "batch_execute" "prepare" "query_row" "query_one" "query_opt" "simple_query" "raw_sql" "sql_query")
                 arguments: (arguments [(macro_invocation macro: (identifier) @m (#eq? @m "format")) (reference_expression value: (macro_invocation macro: (identifier) @m2 (#eq? @m2 "format")))] @dynamic "#,
            sql!("dynamic"),
            ")) @finding"
        ),
    },
    Rule {
        id: "rust.weak-hash",
        family: Family::Rust,
        cwe: "CWE-328",
        severity: Severity::Medium,
        message: "MD4/MD5/SHA-1 are broken for security uses. Use sha2::Sha256 or, for passwords, argon2",
        check: Check::None,
        query: r#"(call_expression function: (scoped_identifier path: (identifier) @p (#any-of? @p "Md5" "Md4" "Sha1" "md5" "sha1" "md4") name: (identifier) @n (#any-of? @n "new" "compute" "digest" "new_with_prefix"))) @finding"#,
    },
    Rule {
        id: "rust.hardcoded-credential",
        family: Family::Rust,
        cwe: "CWE-798",
        severity: Severity::High,
        message: "a secret-looking value is hard-coded; anyone with the source or binary has it. Read it from the environment (into a secrecy::SecretString) and rotate it",
        check: Check::Credential,
        query: r#"
            (let_declaration pattern: (identifier) @name value: (string_literal) @secret) @finding
            (const_item name: (identifier) @name value: (string_literal) @secret) @finding
            (static_item name: (identifier) @name value: (string_literal) @secret) @finding
            (field_initializer field: (field_identifier) @name value: (string_literal) @secret) @finding
        "#,
    },
    Rule {
        id: "rust.secret-key-format",
        family: Family::Rust,
        cwe: "CWE-798",
        severity: Severity::Critical,
        message: "{format} in the source: a leaked credential. Revoke it, remove it from history and load it from a secret store",
        check: Check::KeyFormat,
        query: r#"[(string_literal) (raw_string_literal)] @secret @finding"#,
    },
];

/// Known credential formats, matched inside string literals.
static KEY_FORMATS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        (
            "a private key",
            r"-----BEGIN ((RSA|EC|DSA|OPENSSH|PGP|ENCRYPTED) )?PRIVATE KEY( BLOCK)?-----",
        ),
        ("an AWS access key id", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
        (
            "a GitHub token",
            r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b",
        ),
        ("a Slack token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
        ("a Stripe live key", r"\b[sr]k_live_[0-9A-Za-z]{20,}"),
        (
            "an API secret key (sk-...)",
            r"\bsk-(ant-|proj-)?[A-Za-z0-9_-]{32,}",
        ),
    ]
    .into_iter()
    .filter_map(|(name, pattern)| Regex::new(pattern).ok().map(|re| (name, re)))
    .collect()
});

static SECRET_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)(passw(or)?d|passwd|pwd|passphrase|secret|token|api_?key|apikey|access_?key|private_?key|auth_?key|client_?secret|credential|signing_?key)").ok()
});

/// Names that mention a secret but hold something else (a field name, a path, ...).
static NOT_SECRET_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)(_|\b)(url|uri|path|file|filename|name|field|env|var|header|type|len|length|prompt|label|id|hint|regex|pattern|dir|format|placeholder|param|key_name|endpoint|prefix|count|mode)$").ok()
});

/// A rule compiled for one language's grammar.
struct CompiledRule {
    rule: &'static Rule,
    query: Query,
    finding: u32,
    name: Option<u32>,
    secret: Option<u32>,
    dynamic: Option<u32>,
    function: Option<u32>,
    args: Option<u32>,
}

/// All rules, compiled for every supported language.
pub struct RuleSet {
    per_language: HashMap<LANG, Vec<CompiledRule>>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("languages", &self.per_language.len())
            .finish_non_exhaustive()
    }
}

impl RuleSet {
    /// Compiles every rule for every language of its family; an error names the
    /// rule and language (a bug in a query, caught at start and by the tests).
    pub fn load(languages: &[LANG]) -> Result<Self, String> {
        let mut per_language = HashMap::new();
        for &lang in languages {
            let grammar = lang
                .tree_sitter_language()
                .map_err(|e| format!("grammar {}: {e}", lang.name()))?;
            let mut compiled = Vec::new();
            for rule in RULES.iter().filter(|r| Some(r.family) == family(lang)) {
                let query = Query::new(&grammar, rule.query)
                    .map_err(|e| format!("rule {} for {}: {e}", rule.id, lang.name()))?;
                let finding = query
                    .capture_index_for_name("finding")
                    .ok_or_else(|| format!("rule {} has no @finding capture", rule.id))?;
                compiled.push(CompiledRule {
                    rule,
                    finding,
                    name: query.capture_index_for_name("name"),
                    secret: query.capture_index_for_name("secret"),
                    dynamic: query.capture_index_for_name("dynamic"),
                    function: query.capture_index_for_name("fn"),
                    args: query.capture_index_for_name("args"),
                    query,
                });
            }
            per_language.insert(lang, compiled);
        }
        LazyLock::force(&KEY_FORMATS);
        Ok(Self { per_language })
    }

    /// How many rules apply to `lang`.
    pub fn rule_count(&self, lang: LANG) -> usize {
        self.per_language.get(&lang).map_or(0, Vec::len)
    }

    /// The findings in one parsed file (paths left empty), in source order.
    pub fn scan(&self, lang: LANG, tree: &Tree, source: &[u8]) -> Vec<pb::Finding> {
        let Some(rules) = self.per_language.get(&lang) else {
            return Vec::new();
        };
        let mut findings: Vec<(usize, pb::Finding)> = Vec::new();
        // (dedup group, byte offset): one finding per place, e.g. a key that is both
        // in a known format and assigned to `api_key` is reported once.
        let mut seen: HashMap<(&'static str, usize), usize> = HashMap::new();
        let mut cursor = QueryCursor::new();
        for compiled in rules {
            let mut matches = cursor.matches(&compiled.query, tree.root_node(), source);
            while let Some(m) = matches.next() {
                let capture = |index: Option<u32>| -> Option<Node<'_>> {
                    let index = index?;
                    m.captures.iter().find(|c| c.index == index).map(|c| c.node)
                };
                let Some(node) = capture(Some(compiled.finding)) else {
                    continue;
                };
                let secret = capture(compiled.secret);
                let mut message = compiled.rule.message.to_owned();
                let passes = match compiled.rule.check {
                    Check::None => true,
                    Check::Dynamic => {
                        capture(compiled.dynamic).is_none_or(|n| !is_constant_string(n))
                    }
                    Check::Credential => match (capture(compiled.name), secret) {
                        (Some(name), Some(secret)) => {
                            is_secret_name(text(name, source))
                                && looks_like_secret(literal_content(text(secret, source)))
                        }
                        _ => false,
                    },
                    Check::KeyFormat => match secret.and_then(|s| key_format(text(s, source))) {
                        Some(format) => {
                            message = message.replace("{format}", format);
                            if let Some(first) = message.get(..1) {
                                message =
                                    first.to_uppercase() + message.get(1..).unwrap_or_default();
                            }
                            true
                        }
                        None => false,
                    },
                    Check::YamlUnsafe => {
                        let function = capture(compiled.function).map_or("", |n| text(n, source));
                        let args = capture(compiled.args).map_or("", |n| text(n, source));
                        !matches!(function, "load" | "load_all")
                            || !["SafeLoader", "CSafeLoader", "BaseLoader"]
                                .iter()
                                .any(|l| args.contains(l))
                    }
                };
                if !passes {
                    continue;
                }
                if let Some(function) = capture(compiled.function) {
                    // Some rules match callee names by prefix (`DES_.+`): a name can be
                    // as long as the file, so the message quotes only its start.
                    let name = text(function, source);
                    let quoted: String = name.chars().take(MAX_QUOTED_NAME_CHARS).collect();
                    let cut = if quoted.len() < name.len() { "…" } else { "" };
                    message = message.replace("{fn}", &format!("{quoted}{cut}"));
                }
                let credential =
                    matches!(compiled.rule.check, Check::Credential | Check::KeyFormat);
                let (group, offset) = if credential {
                    (
                        "secret",
                        secret.map_or(node.start_byte(), |s| s.start_byte()),
                    )
                } else {
                    (compiled.rule.id, node.start_byte())
                };
                let finding = pb::Finding {
                    rule_id: compiled.rule.id.to_owned(),
                    cwe: compiled.rule.cwe.to_owned(),
                    severity: compiled.rule.severity as i32,
                    message,
                    path: String::new(),
                    start_line: line(node.start_position().row),
                    end_line: line(node.end_position().row),
                    start_column: line(node.start_position().column),
                    snippet: snippet(node, if credential { secret } else { None }, source),
                };
                match seen.get(&(group, offset)) {
                    Some(&i) if findings[i].1.severity >= finding.severity => {}
                    Some(&i) => findings[i] = (node.start_byte(), finding),
                    None => {
                        seen.insert((group, offset), findings.len());
                        findings.push((node.start_byte(), finding));
                    }
                }
            }
        }
        findings.sort_by_key(|(offset, f)| (*offset, f.rule_id.clone()));
        findings.into_iter().map(|(_, f)| f).collect()
    }
}

/// Longest callee name quoted in a finding's message, in characters.
const MAX_QUOTED_NAME_CHARS: usize = 100;

fn line(row: usize) -> u32 {
    u32::try_from(row + 1).unwrap_or(u32::MAX)
}

fn text<'a>(node: Node<'_>, source: &'a [u8]) -> &'a str {
    node.utf8_text(source).unwrap_or("")
}

/// A string literal with nothing computed in it (no interpolation or substitution).
fn is_constant_string(node: Node<'_>) -> bool {
    const STRING_KINDS: &[&str] = &[
        "string",
        "string_literal",
        "raw_string_literal",
        "interpreted_string_literal",
        "concatenated_string",
        "template_string",
        "text_block",
    ];
    if !STRING_KINDS.contains(&node.kind()) {
        return false;
    }
    let mut cursor = node.walk();
    let dynamic = node
        .children(&mut cursor)
        .any(|c| matches!(c.kind(), "interpolation" | "template_substitution"));
    !dynamic
}

fn is_secret_name(name: &str) -> bool {
    // The last identifier in `self.api_key`, `*password`, `"token"`, `key[32]`.
    let last = name
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .rfind(|w| w.starts_with(|c: char| c.is_alphabetic() || c == '_'))
        .unwrap_or("");
    let secretish = SECRET_NAME.as_ref().is_some_and(|re| re.is_match(last));
    let excluded = NOT_SECRET_NAME.as_ref().is_some_and(|re| re.is_match(last));
    secretish && !excluded
}

/// The text between a literal's quotes (prefixes such as r, b, f, L dropped).
fn literal_content(literal: &str) -> &str {
    let trimmed = literal.trim_start_matches(|c: char| c.is_ascii_alphabetic() || c == '#');
    let Some(quote) = trimmed
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\'' | '`'))
    else {
        return literal;
    };
    let inner = trimmed.trim_start_matches(quote);
    inner.trim_end_matches('#').trim_end_matches(quote)
}

/// Bits of Shannon entropy per character.
fn entropy(value: &str) -> f64 {
    let mut counts: HashMap<char, usize> = HashMap::new();
    let mut total = 0usize;
    for c in value.chars() {
        *counts.entry(c).or_insert(0) += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let total = total as f64;
    counts
        .values()
        .map(|&n| {
            let p = n as f64 / total;
            -p * p.log2()
        })
        .sum()
}

/// Long enough, no spaces or templating, not a placeholder, and random-looking.
fn looks_like_secret(value: &str) -> bool {
    const PLACEHOLDERS: &[&str] = &[
        "changeme",
        "change_me",
        "example",
        "placeholder",
        "dummy",
        "your",
        "xxxx",
        "****",
        "redacted",
        "todo",
        "secret_here",
        "<",
        "${",
        "{{",
        "%s",
        "process.env",
    ];
    let lower = value.to_ascii_lowercase();
    value.chars().count() >= 8
        && !value.chars().any(char::is_whitespace)
        && !PLACEHOLDERS.iter().any(|p| lower.contains(p))
        && entropy(value) >= 3.0
}

fn key_format(literal: &str) -> Option<&'static str> {
    KEY_FORMATS
        .iter()
        .find(|(_, re)| re.is_match(literal))
        .map(|(name, _)| *name)
}

/// The first line of the finding, trimmed, at most 200 characters, with the secret
/// literal (when given) replaced by "***".
fn snippet(node: Node<'_>, secret: Option<Node<'_>>, source: &[u8]) -> String {
    let line_start = source[..node.start_byte()]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line_end = source[node.start_byte()..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(source.len(), |i| node.start_byte() + i);
    let mut line = String::from_utf8_lossy(&source[line_start..line_end]).into_owned();
    if let Some(secret) = secret {
        let start = secret.start_byte();
        if (line_start..line_end).contains(&start) {
            let end = secret.end_byte().min(line_end);
            line = format!(
                "{}\"***\"{}",
                String::from_utf8_lossy(&source[line_start..start]),
                String::from_utf8_lossy(&source[end..line_end])
            );
        } else {
            line = "***".to_owned();
        }
    }
    let trimmed = line.trim();
    trimmed.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_compiles_for_every_language_of_its_family() {
        let rules = RuleSet::load(&crate::languages::SUPPORTED).expect("all queries compile");
        for lang in crate::languages::SUPPORTED {
            let written = RULES
                .iter()
                .filter(|r| Some(r.family) == family(lang))
                .count();
            assert!(written >= 5, "{} has only {written} rules", lang.name());
            assert_eq!(rules.rule_count(lang), written, "{}", lang.name());
        }
        assert_eq!(KEY_FORMATS.len(), 7, "a key-format regex failed to compile");
        assert!(SECRET_NAME.is_some() && NOT_SECRET_NAME.is_some());
    }

    #[test]
    fn secret_names_exclude_names_of_other_things() {
        assert!(is_secret_name("db_password"));
        assert!(is_secret_name("self.apiKey"));
        assert!(is_secret_name("*auth_token"));
        assert!(!is_secret_name("password_field"));
        assert!(!is_secret_name("TOKEN_URL"));
        assert!(!is_secret_name("username"));
    }

    #[test]
    fn random_values_look_secret_and_placeholders_do_not() {
        assert!(looks_like_secret("q8Zr!2vLp0#xT7m"));
        assert!(!looks_like_secret("changeme123"));
        assert!(!looks_like_secret("aaaaaaaaaaaa"));
        assert!(!looks_like_secret("short"));
        assert!(!looks_like_secret("Enter your password"));
        assert_eq!(literal_content("r#\"abc\"#"), "abc");
        assert_eq!(literal_content("f'abc'"), "abc");
    }
}
