//! The security rules, as data: every rule's query, language family, CWE,
//! severity and message, and the patterns the credential checks use (key
//! formats, names of secrets). Adding or tuning a rule changes this file only;
//! how the rules are compiled and matched is in [`super`].

use std::sync::LazyLock;

use big_code_analysis::LANG;
use regex::Regex;
use switchboard_proto::code_analysis::v1::Severity;

/// Language families that share node kinds (TypeScript extends JavaScript's
/// grammar, C++ extends C's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Python,
    JavaScript,
    Go,
    Java,
    C,
    Rust,
}

pub(super) fn family(lang: LANG) -> Option<Family> {
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
pub(super) enum Check {
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

/// One rule: where it applies, what it reports, and the query that finds it.
#[derive(Debug)]
pub(super) struct Rule {
    /// Stable id, reported with every finding (`python.eval-exec`).
    pub(super) id: &'static str,
    /// The languages whose grammar the query is written for.
    pub(super) family: Family,
    /// The weakness, as a CWE id.
    pub(super) cwe: &'static str,
    pub(super) severity: Severity,
    /// What is wrong and what to do; `{fn}` is replaced by the `@fn` capture,
    /// `{format}` by the key format found.
    pub(super) message: &'static str,
    pub(super) check: Check,
    /// The tree-sitter query, with an `@finding` capture.
    pub(super) query: &'static str,
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

pub(super) const RULES: &[Rule] = &[
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
pub(super) static KEY_FORMATS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
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

pub(super) static SECRET_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)(passw(or)?d|passwd|pwd|passphrase|secret|token|api_?key|apikey|access_?key|private_?key|auth_?key|client_?secret|credential|signing_?key)").ok()
});

/// Names that mention a secret but hold something else (a field name, a path, ...).
pub(super) static NOT_SECRET_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)(_|\b)(url|uri|path|file|filename|name|field|env|var|header|type|len|length|prompt|label|id|hint|regex|pattern|dir|format|placeholder|param|key_name|endpoint|prefix|count|mode)$").ok()
});
