//! Deeply nested source in every supported language, built from each language's
//! own nesting constructs: lambdas and closures, blocks, parentheses, arrays,
//! nested functions and nested classes. Shared by the nesting tests and the fuzzing
//! properties.

/// One way to nest code in one language: `prefix`, then `open` repeated once per
/// level, the `leaf`, `close` once per level, and the `suffix`.
#[derive(Debug, Clone, Copy)]
pub struct Construct {
    /// The `language` of an AnalyzeCode request.
    pub language: &'static str,
    /// What nests, for messages.
    pub name: &'static str,
    pub prefix: &'static str,
    pub open: &'static str,
    pub leaf: &'static str,
    pub close: &'static str,
    pub suffix: &'static str,
    /// Whether each level is indented one more space on a line of its own (Python).
    pub indented: bool,
}

const fn c(
    language: &'static str,
    name: &'static str,
    [prefix, open, leaf, close, suffix]: [&'static str; 5],
) -> Construct {
    Construct {
        language,
        name,
        prefix,
        open,
        leaf,
        close,
        suffix,
        indented: false,
    }
}

const fn py(name: &'static str, open: &'static str, leaf: &'static str) -> Construct {
    Construct {
        language: "python",
        name,
        prefix: "",
        open,
        leaf,
        close: "",
        suffix: "\n",
        indented: true,
    }
}

/// The constructs of the JavaScript family, for one of its languages.
macro_rules! javascript_family {
    ($lang:literal) => {
        [
            c(
                $lang,
                "arrow functions",
                ["const f = ", "() => ", "0", "", ";\n"],
            ),
            c(
                $lang,
                "function expressions",
                ["const f = ", "function () { return ", "0", "; }", ";\n"],
            ),
            c(
                $lang,
                "nested functions",
                ["", "function f(a) { ", "return a;", " }", "\n"],
            ),
            c(
                $lang,
                "nested classes",
                ["", "class A { m() { ", "return 1;", " } }", "\n"],
            ),
            c($lang, "blocks", ["function f() ", "{ ", "", "} ", "\n"]),
            c(
                $lang,
                "if statements",
                ["function f(a) { ", "if (a) { ", "a++;", "} ", "}\n"],
            ),
            c($lang, "parentheses", ["const x = ", "(", "1", ")", ";\n"]),
            c($lang, "arrays", ["const x = ", "[", "1", "]", ";\n"]),
            c($lang, "objects", ["const x = ", "{a: ", "1", "}", ";\n"]),
            c($lang, "calls", ["const x = ", "f(", "1", ")", ";\n"]),
            c(
                $lang,
                "unary operators",
                ["const x = ", "-", "1", "", ";\n"],
            ),
        ]
    };
}

const JAVASCRIPT: [Construct; 11] = javascript_family!("javascript");
const TYPESCRIPT: [Construct; 11] = javascript_family!("typescript");
const TSX: [Construct; 11] = javascript_family!("tsx");

const PYTHON: [Construct; 9] = [
    c("python", "lambdas", ["f = ", "lambda: ", "0", "", "\n"]),
    c("python", "parentheses", ["x = ", "(", "1", ")", "\n"]),
    c("python", "lists", ["x = ", "[", "1", "]", "\n"]),
    c("python", "dicts", ["x = ", "{1: ", "1", "}", "\n"]),
    c("python", "calls", ["x = ", "f(", "1", ")", "\n"]),
    c("python", "unary operators", ["x = ", "not ", "1", "", "\n"]),
    py("nested functions", "def f(a):", "return a"),
    py("nested classes", "class A:", "pass"),
    py("if statements", "if a:", "pass"),
];

const RUST: [Construct; 9] = [
    c(
        "rust",
        "closures",
        ["fn main() { let f = ", "|| ", "0", "", "; }\n"],
    ),
    c("rust", "blocks", ["fn main() ", "{ ", "", "} ", "\n"]),
    c(
        "rust",
        "nested functions",
        ["", "fn f() { ", "", "} ", "\n"],
    ),
    c(
        "rust",
        "nested modules",
        ["", "mod m { ", "fn f() {}", " } ", "\n"],
    ),
    c(
        "rust",
        "if expressions",
        ["fn f(a: bool) { ", "if a { ", "", "} ", "}\n"],
    ),
    c(
        "rust",
        "parentheses",
        ["fn main() { let x = ", "(", "1", ")", "; }\n"],
    ),
    c(
        "rust",
        "arrays",
        ["fn main() { let x = ", "[", "1", "]", "; }\n"],
    ),
    c(
        "rust",
        "references",
        ["fn main() { let x = ", "&", "1", "", "; }\n"],
    ),
    c(
        "rust",
        "generic types",
        ["type T = ", "Vec<", "u8", ">", ";\n"],
    ),
];

const GO: [Construct; 8] = [
    c(
        "go",
        "function literals",
        ["package p\nfunc main() { ", "func() { ", "", "}() ", "}\n"],
    ),
    c(
        "go",
        "blocks",
        ["package p\nfunc main() ", "{ ", "", "} ", "\n"],
    ),
    c(
        "go",
        "if statements",
        ["package p\nfunc f(a bool) { ", "if a { ", "", "} ", "}\n"],
    ),
    c(
        "go",
        "parentheses",
        ["package p\nvar x = ", "(", "1", ")", "\n"],
    ),
    c(
        "go",
        "composite literals",
        ["package p\nvar x = ", "[]any{", "1", "}", "\n"],
    ),
    c(
        "go",
        "nested structs",
        ["package p\ntype T ", "struct { a ", "int", " }", "\n"],
    ),
    c("go", "calls", ["package p\nvar x = ", "f(", "1", ")", "\n"]),
    c(
        "go",
        "unary operators",
        ["package p\nvar x = ", "-", "1", "", "\n"],
    ),
];

const JAVA: [Construct; 8] = [
    c(
        "java",
        "lambdas",
        ["class A { Object f = ", "() -> ", "0", "", "; }\n"],
    ),
    c(
        "java",
        "nested classes",
        ["", "class A { ", "int x;", " } ", "\n"],
    ),
    c(
        "java",
        "anonymous classes",
        [
            "class A { Object f = ",
            "new Object() { Object g = ",
            "null",
            "; }",
            "; }\n",
        ],
    ),
    c(
        "java",
        "blocks",
        ["class A { void m() ", "{ ", "", "} ", "}\n"],
    ),
    c(
        "java",
        "if statements",
        [
            "class A { void m(boolean a) { ",
            "if (a) { ",
            "",
            "} ",
            "} }\n",
        ],
    ),
    c(
        "java",
        "parentheses",
        ["class A { int x = ", "(", "1", ")", "; }\n"],
    ),
    c(
        "java",
        "array initializers",
        ["class A { Object[] x = ", "{", "1", "}", "; }\n"],
    ),
    c(
        "java",
        "calls",
        ["class A { int x = ", "f(", "1", ")", "; }\n"],
    ),
];

const C: [Construct; 7] = [
    c("c", "blocks", ["void f(void) ", "{ ", "", "} ", "\n"]),
    c(
        "c",
        "if statements",
        ["void f(int a) { ", "if (a) { ", "", "} ", "}\n"],
    ),
    c("c", "parentheses", ["int x = ", "(", "1", ")", ";\n"]),
    c(
        "c",
        "initializer lists",
        ["int x[] = ", "{", "1", "}", ";\n"],
    ),
    c(
        "c",
        "nested structs",
        ["", "struct s { ", "int x; ", "} f; ", "\n"],
    ),
    c("c", "calls", ["int x = ", "f(", "1", ")", ";\n"]),
    c(
        "c",
        "preprocessor conditionals",
        ["", "#if A\n", "int x;\n", "#endif\n", ""],
    ),
];

const CPP: [Construct; 8] = [
    c(
        "cpp",
        "lambdas",
        ["auto f = ", "[]() { return ", "0", "; }", ";\n"],
    ),
    c(
        "cpp",
        "nested classes",
        ["", "class A { ", "int x; ", "}; ", "\n"],
    ),
    c(
        "cpp",
        "namespaces",
        ["", "namespace a { ", "int x; ", "} ", "\n"],
    ),
    c("cpp", "blocks", ["void f() ", "{ ", "", "} ", "\n"]),
    c("cpp", "parentheses", ["int x = ", "(", "1", ")", ";\n"]),
    c(
        "cpp",
        "initializer lists",
        ["int x[] = ", "{", "1", "}", ";\n"],
    ),
    c(
        "cpp",
        "templates",
        ["using T = ", "std::vector<", "int", ">", ";\n"],
    ),
    c("cpp", "calls", ["int x = ", "f(", "1", ")", ";\n"]),
];

/// Every construct of every supported language.
pub fn all() -> Vec<Construct> {
    [
        &JAVASCRIPT[..],
        &TYPESCRIPT,
        &TSX,
        &PYTHON,
        &RUST,
        &GO,
        &JAVA,
        &C,
        &CPP,
    ]
    .concat()
}

impl Construct {
    /// The construct nested `depth` levels deep.
    pub fn nested(&self, depth: usize) -> String {
        let mut code = String::from(self.prefix);
        if self.indented {
            // Python: one statement per line, each level one space deeper.
            for level in 0..depth {
                code.extend(std::iter::repeat_n(' ', level));
                code.push_str(self.open);
                code.push('\n');
            }
            code.extend(std::iter::repeat_n(' ', depth));
            code.push_str(self.leaf);
        } else {
            code.push_str(&self.open.repeat(depth));
            code.push_str(self.leaf);
            code.push_str(&self.close.repeat(depth));
        }
        code.push_str(self.suffix);
        code
    }

    /// The construct nested as deep as fits in about `bytes` of source.
    pub fn nested_to_size(&self, bytes: usize) -> String {
        let depth = if self.indented {
            // Indentation grows with depth: d levels take about d²/2 bytes.
            (2.0 * bytes as f64).sqrt() as usize
        } else {
            bytes / (self.open.len() + self.close.len()).max(1)
        };
        self.nested(depth)
    }
}
