//! The shape of the source tree, checked so it stays as README's architecture section
//! describes it:
//!
//! * no import cycle between the source files of a crate: file A depends on file B when
//!   A names an item B defines, through a `use crate::`/`super::`/`self::` path, a path
//!   into one of its own child modules, or such a path written inline (`crate::x::f()`);
//!   a name reached through an import or a re-export is followed to the file that
//!   defines it, and a re-export alone (`pub use child::Item`, a module's public face) is
//!   no dependency. `mod` lines build the tree that maps module paths to files.
//! * no source file over 600 lines, except tests (the fuzz harnesses included) and the
//!   flash model (`crates/fota-sim/src/flash.rs`), whose power-cut rules read best in one
//!   place.
//!
//! Each failure lists the files, so the message says what to split or untangle.
//!
//! Hand-written rather than a crate: the module graph tools (cargo-modules and the like)
//! are whole-compiler binaries, not libraries a test can call; the lexical rules here
//! (Rust 2018+ paths, `#[path]`, glob and re-exports) cover how this workspace is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest a source file may be.
const MAX_LINES: usize = 600;

/// Files allowed to be longer (workspace-relative).
const LONG_ALLOWED: &[&str] = &["crates/fota-sim/src/flash.rs"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every directory holding a crate's Cargo.toml, below `crates/` and `fuzz/`.
fn crate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("crates"), root.join("fuzz")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
            out.push(dir.clone());
        }
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() && name != "target" && name != "node_modules" && name != ".git" {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Rust files below `dir`, not descending into other crates or build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if e.file_name() != "target" && !p.join("Cargo.toml").is_file() {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Test code: integration tests, and test modules kept in files of their own.
fn is_test_file(rel: &str) -> bool {
    rel.split('/').any(|c| c == "tests") || rel.ends_with("/tests.rs") || rel.ends_with("_tests.rs")
}

fn rel(root: &Path, p: &Path) -> String {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let p = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    p.strip_prefix(&root)
        .unwrap_or(&p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Source files (not tests) over the limit, with their lengths. The fuzz crate is test
/// code too (its harnesses are shared with the property tests).
fn long_files(root: &Path) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for krate in crate_dirs(root) {
        if rel(root, &krate) == "fuzz" {
            continue;
        }
        let mut files = Vec::new();
        for sub in ["src", "examples", "benches", "fuzz_targets"] {
            rust_files(&krate.join(sub), &mut files);
        }
        if krate.join("build.rs").is_file() {
            files.push(krate.join("build.rs"));
        }
        for f in files {
            let r = rel(root, &f);
            if is_test_file(&r) || LONG_ALLOWED.contains(&r.as_str()) {
                continue;
            }
            let lines = std::fs::read_to_string(&f).map_or(0, |s| s.lines().count());
            if lines > MAX_LINES {
                out.push((r, lines));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

// ---- the module graph ------------------------------------------------------------------

/// The text with comments, string and char literals blanked, and `#[cfg(test)]` items
/// removed (test code may use anything).
fn code_of(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3;
            out.push_str("' '");
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            // An escaped char: skip the quote, the backslash and the escaped character.
            i += 3;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            let c = src[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    strip_cfg_test(&out)
}

/// Remove each `#[cfg(test)]` item: the attribute and what follows it up to the end of
/// its block or its `;`.
fn strip_cfg_test(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let b = after.as_bytes();
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, &c) in b.iter().enumerate().skip("#[cfg(test)]".len()) {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// The `mod name;` declarations of a file (not inline modules), with their `#[path]`.
fn mod_decls(code: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut path_attr: Option<String> = None;
    for raw in code.lines() {
        let line = raw.trim();
        if let Some(p) = line.strip_prefix("#[path") {
            path_attr = p.split('"').nth(1).map(str::to_string);
            continue;
        }
        let decl = line
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub ");
        if let Some(rest) = decl.strip_prefix("mod ")
            && let Some(name) = rest.strip_suffix(';')
            && is_ident(name.trim())
        {
            out.push((name.trim().to_string(), path_attr.take()));
        } else if !line.starts_with("#[") && !line.is_empty() {
            path_attr = None;
        }
    }
    out
}

/// Every `use` tree of a file, flattened into paths (`a::b::{c, d::e}` gives `a::b::c`
/// and `a::b::d::e`; `self` inside braces names the prefix; `as` renames are dropped).
fn use_paths(code: &str) -> Vec<Vec<String>> {
    uses(code, true)
}

/// The `use` paths of a file that are its own imports, not re-exports (`pub use`): a
/// module that re-exports a child's item as its public face does not depend on it.
fn import_paths(code: &str) -> Vec<Vec<String>> {
    uses(code, false)
}

fn uses(code: &str, with_reexports: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        let before = rest[..at].trim_end();
        let reexport = before.ends_with("pub")
            || (before.ends_with(')')
                && before
                    .rfind("pub(")
                    .is_some_and(|p| !before[p..].contains('\n')));
        let after = &rest[at + 3..];
        if reexport && !with_reexports {
            rest = after;
            continue;
        }
        let end = after.find(';').unwrap_or(after.len());
        // `as` renames become `@` before the spaces go.
        let spaced: String = after[..end]
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .collect();
        let tree: String = spaced
            .replace(" as ", "@")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        expand(&tree, &mut Vec::new(), &mut out);
        rest = &after[end..];
    }
    out
}

/// The code without its `use` statements and `mod` declarations: what the file does with
/// the names, not how it brings them in.
fn without_uses(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "use").or_else(|| find_word(rest, "mod")) {
        let at = match (find_word(rest, "use"), find_word(rest, "mod")) {
            (Some(u), Some(m)) => u.min(m),
            _ => at,
        };
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // A `mod name { ... }` block stays: only declarations end at a `;` first.
        let semi = after.find(';').unwrap_or(after.len());
        let brace = after.find('{').unwrap_or(after.len());
        if after.starts_with("mod") && brace < semi {
            out.push_str("mod");
            rest = &after[3..];
            continue;
        }
        rest = &after[(semi + 1).min(after.len())..];
    }
    out.push_str(rest);
    out
}

/// How many times `word` occurs as a whole word.
fn word_count(s: &str, word: &str) -> usize {
    let mut n = 0;
    let mut rest = s;
    while let Some(i) = find_word(rest, word) {
        n += 1;
        rest = &rest[i + word.len()..];
    }
    n
}

/// Position of `word` as a whole word.
fn find_word(s: &str, word: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(i) = s[from..].find(word).map(|i| i + from) {
        let before = i.checked_sub(1).map(|j| b[j]);
        let after = b.get(i + word.len());
        let word_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        if !before.is_some_and(word_char) && !after.copied().is_some_and(word_char) {
            return Some(i);
        }
        from = i + word.len();
    }
    None
}

fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head = &tree[..open];
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = prefix.len();
        prefix.extend(
            head.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_one(&inner[start..i], prefix, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_one(&inner[start..], prefix, out);
        prefix.truncate(base);
    } else {
        expand_one(tree, prefix, out);
    }
}

fn expand_one(item: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if item.is_empty() {
        return;
    }
    if item.contains('{') {
        expand(item, prefix, out);
        return;
    }
    let item = item.split('@').next().unwrap_or(item);
    let mut path = prefix.clone();
    for seg in item.split("::").filter(|s| !s.is_empty()) {
        if seg == "self" && !path.is_empty() {
            continue;
        }
        path.push(seg.to_string());
    }
    out.push(path);
}

/// Paths written inline: `crate::a::b`, `super::x`, `self::y`.
fn inline_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start).map(|i| i + from) {
            from = i + start.len();
            let before = i
                .checked_sub(1)
                .and_then(|j| code.as_bytes().get(j))
                .copied();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':') {
                continue;
            }
            let path: String = code[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segments: Vec<String> = path
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            // `crate` or `super` alone names no item.
            if segments.len() > 1 {
                out.push(segments);
            }
        }
    }
    out
}

/// One crate's files as modules.
#[derive(Default)]
struct Tree {
    /// Module path (from a crate root) to its file.
    file_of: BTreeMap<Vec<String>, PathBuf>,
    /// File to its module paths (a file included by several binaries has one per root).
    modules_of: BTreeMap<PathBuf, BTreeSet<Vec<String>>>,
    code: BTreeMap<PathBuf, String>,
}

impl Tree {
    fn add(&mut self, file: &Path, module: Vec<String>, root_tag: &str) {
        let Ok(file) = file.canonicalize() else {
            return;
        };
        let mut tagged = vec![root_tag.to_string()];
        tagged.extend(module.iter().cloned());
        if self.file_of.contains_key(&tagged) {
            return;
        }
        let Ok(src) = std::fs::read_to_string(&file) else {
            return;
        };
        let code = code_of(&src);
        self.file_of.insert(tagged.clone(), file.clone());
        self.modules_of
            .entry(file.clone())
            .or_default()
            .insert(tagged);
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dir = file.parent().unwrap_or(Path::new("."));
        // A mod.rs, lib.rs or main.rs (or a crate root) holds its children beside it;
        // any other file holds them in a folder of its own name.
        let child_dir = if module.is_empty() || matches!(name, "mod.rs" | "lib.rs" | "main.rs") {
            dir.to_path_buf()
        } else {
            dir.join(file.file_stem().unwrap_or_default())
        };
        for (child, path_attr) in mod_decls(&code) {
            let mut m = module.clone();
            m.push(child.clone());
            let target = match path_attr {
                Some(p) => dir.join(p),
                None => {
                    let flat = child_dir.join(format!("{child}.rs"));
                    if flat.is_file() {
                        flat
                    } else {
                        child_dir.join(&child).join("mod.rs")
                    }
                }
            };
            self.add(&target, m, root_tag);
        }
        self.code.insert(file, code);
    }

    /// The file that defines what `path` (absolute, root-tagged) names: the deepest module
    /// it goes through, then, if the next name is only imported there, where it comes from.
    fn resolve(&self, path: &[String], depth: usize) -> Option<PathBuf> {
        let mut n = path.len();
        while n > 0 && !self.file_of.contains_key(&path[..n]) {
            n -= 1;
        }
        if n <= 1 && path.len() > 1 && !self.file_of.contains_key(&path[..1]) {
            return None;
        }
        let module = &path[..n.max(1)];
        let file = self.file_of.get(module)?;
        let Some(name) = path.get(n) else {
            return Some(file.clone());
        };
        if depth > 8 || defines(&self.code[file], name) {
            return Some(file.clone());
        }
        // Imported, not defined here: follow the import.
        for u in use_paths(&self.code[file]) {
            if u.last() == Some(name)
                && let Some(abs) = self.absolute(module, &u)
                && abs != path
                && let Some(f) = self.resolve(&abs, depth + 1)
            {
                return Some(f);
            }
        }
        for u in use_paths(&self.code[file]) {
            if u.last().is_some_and(|s| s == "*")
                && let Some(abs) = self.absolute(module, &u[..u.len() - 1])
            {
                let mut p = abs.clone();
                p.push(name.clone());
                if let Some(f) = self.file_of.get(&abs)
                    && (defines(&self.code[f], name) || reexports(&self.code[f], name))
                {
                    return self.resolve(&p, depth + 1);
                }
            }
        }
        Some(file.clone())
    }

    /// `path` as written in module `module` (root-tagged), made absolute; `None` for a
    /// path into another crate.
    fn absolute(&self, module: &[String], path: &[String]) -> Option<Vec<String>> {
        let first = path.first()?;
        let mut abs: Vec<String>;
        let mut rest = path;
        if first == "crate" {
            abs = module[..1].to_vec();
            rest = &path[1..];
        } else if first == "super" || first == "self" {
            abs = module.to_vec();
            while let Some(seg) = rest.first() {
                match seg.as_str() {
                    "super" if abs.len() > 1 => {
                        abs.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        } else {
            // A 2018 path from here: only if it starts with one of this module's children.
            let mut child = module.to_vec();
            child.push(first.clone());
            if !self.file_of.contains_key(&child) {
                return None;
            }
            abs = module.to_vec();
        }
        abs.extend(rest.iter().filter(|s| *s != "*").cloned());
        Some(abs)
    }

    /// File-to-file dependencies, each with one path that makes it (for the message).
    fn edges(&self) -> BTreeMap<PathBuf, BTreeMap<PathBuf, String>> {
        let mut out: BTreeMap<PathBuf, BTreeMap<PathBuf, String>> = BTreeMap::new();
        for (file, modules) in &self.modules_of {
            let code = &self.code[file];
            // A re-export the file also uses itself is an import too.
            let body = without_uses(code);
            let used_reexports = use_paths(code).into_iter().filter(|u| {
                u.last()
                    .is_some_and(|name| name != "*" && word_count(&body, name) > 0)
            });
            let paths: Vec<_> = import_paths(code)
                .into_iter()
                .chain(used_reexports)
                .chain(inline_paths(&body))
                .collect();
            for module in modules {
                for p in &paths {
                    let Some(abs) = self.absolute(module, p) else {
                        continue;
                    };
                    if let Some(target) = self.resolve(&abs, 0)
                        && &target != file
                    {
                        out.entry(file.clone())
                            .or_default()
                            .entry(target)
                            .or_insert_with(|| p.join("::"));
                    }
                }
            }
        }
        out
    }
}

/// Whether `code` defines an item called `name` at any level (a method does not count:
/// a type's impl blocks may sit anywhere).
fn defines(code: &str, name: &str) -> bool {
    let kinds = [
        "fn", "struct", "enum", "union", "trait", "type", "const", "static", "mod",
    ];
    kinds.iter().any(|k| {
        let pat = format!("{k} {name}");
        let mut from = 0;
        while let Some(i) = code[from..].find(&pat).map(|i| i + from) {
            from = i + pat.len();
            let before = i.checked_sub(1).map(|j| code.as_bytes()[j]);
            let after = code.as_bytes().get(from).copied();
            let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
            if !before.is_some_and(word) && !after.is_some_and(word) {
                return true;
            }
        }
        false
    }) || code.contains(&format!("macro_rules! {name}"))
}

fn reexports(code: &str, name: &str) -> bool {
    use_paths(code)
        .iter()
        .any(|u| u.last().is_some_and(|s| s == name || s == "*"))
}

/// The crate roots: lib.rs, main.rs, src/bin/*.rs, and the fuzz targets.
fn roots(krate: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for r in ["src/lib.rs", "src/main.rs"] {
        if krate.join(r).is_file() {
            out.push(krate.join(r));
        }
    }
    for dir in ["src/bin", "fuzz_targets"] {
        if let Ok(entries) = std::fs::read_dir(krate.join(dir)) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                } else if p.join("main.rs").is_file() {
                    out.push(p.join("main.rs"));
                }
            }
        }
    }
    out.sort();
    out
}

/// The strongly connected groups of more than one file (Tarjan).
fn cycles(edges: &BTreeMap<PathBuf, BTreeMap<PathBuf, String>>) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeMap<PathBuf, String>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(next) = s.edges.get(v) {
            for w in next.keys() {
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w.clone());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// An import cycle: its files (workspace-relative) and the dependencies between them,
/// each with a path that makes it.
#[derive(Debug, PartialEq)]
struct Cycle {
    files: Vec<String>,
    because: Vec<String>,
}

/// The import cycles of the crate in `krate`.
fn crate_cycles(root: &Path, krate: &Path) -> Vec<Cycle> {
    let mut tree = Tree::default();
    for (i, r) in roots(krate).iter().enumerate() {
        tree.add(r, Vec::new(), &format!("root{i}"));
    }
    // Test files may use anything: they are not part of the shape.
    let edges: BTreeMap<PathBuf, BTreeMap<PathBuf, String>> = tree
        .edges()
        .into_iter()
        .filter(|(f, _)| !is_test_file(&rel(root, f)))
        .map(|(f, to)| {
            let to = to
                .into_iter()
                .filter(|(t, _)| !is_test_file(&rel(root, t)))
                .collect();
            (f, to)
        })
        .collect();
    cycles(&edges)
        .into_iter()
        .map(|group| {
            let mut because = Vec::new();
            for a in &group {
                for (b, path) in edges.get(a).into_iter().flatten() {
                    if group.contains(b) {
                        because.push(format!("{} -> {} ({path})", rel(root, a), rel(root, b)));
                    }
                }
            }
            Cycle {
                files: group.iter().map(|f| rel(root, f)).collect(),
                because,
            }
        })
        .collect()
}

fn all_cycles(root: &Path) -> Vec<Cycle> {
    crate_dirs(root)
        .iter()
        .flat_map(|k| crate_cycles(root, k))
        .collect()
}

/// Only the files of each cycle, for the checker's own tests.
fn cycle_files(root: &Path) -> Vec<Vec<String>> {
    all_cycles(root).into_iter().map(|c| c.files).collect()
}

// ---- the checks ------------------------------------------------------------------------

#[test]
fn no_source_file_is_over_600_lines() {
    let long = long_files(&workspace());
    for (f, n) in &long {
        eprintln!("over {MAX_LINES} lines: {f} ({n})");
    }
    assert!(
        long.is_empty(),
        "{} source files are over {MAX_LINES} lines (split them along their seams): {}",
        long.len(),
        long.iter()
            .map(|(f, n)| format!("{f} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

#[test]
fn no_import_cycle_between_source_files() {
    let found = all_cycles(&workspace());
    for c in &found {
        eprintln!("import cycle: {}", c.files.join(" <-> "));
        for b in &c.because {
            eprintln!("  {b}");
        }
    }
    assert!(
        found.is_empty(),
        "{} import cycles between source files: {}",
        found.len(),
        found
            .iter()
            .map(|c| c.files.join(" <-> "))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

// ---- the checker itself, on small made-up crates ---------------------------------------

/// Write `files` (path, text) as a crate in a temporary directory.
fn made_up(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let krate = dir.path().join("crates/k");
    for (path, text) in files {
        let p = krate.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
    std::fs::write(krate.join("Cargo.toml"), "[package]\nname = \"k\"\n").expect("write");
    dir
}

#[test]
fn the_checker_finds_a_cycle_through_use_super_and_inline_paths() {
    let dir = made_up(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        ("src/a.rs", "use crate::b::Bee;\npub struct Ay;\n"),
        (
            "src/b.rs",
            "pub struct Bee;\nfn f() -> super::a::Ay { crate::a::Ay }\n",
        ),
    ]);
    assert_eq!(
        cycle_files(dir.path()),
        vec![vec![
            "crates/k/src/a.rs".to_string(),
            "crates/k/src/b.rs".into()
        ]]
    );
}

#[test]
fn the_checker_follows_a_reexport_to_the_file_that_defines_it() {
    // mod.rs re-exports its children and a child uses a sibling through the parent:
    // no cycle, since the item is defined in the sibling.
    let dir = made_up(&[
        ("src/lib.rs", "pub mod dev;\n"),
        (
            "src/dev/mod.rs",
            "mod config;\nmod uart;\npub use config::*;\npub use uart::Uart;\npub struct Dev(Uart, Config);\n",
        ),
        ("src/dev/config.rs", "pub struct Config;\n"),
        (
            "src/dev/uart.rs",
            "use super::Config;\npub struct Uart(Config);\n",
        ),
    ]);
    assert_eq!(cycle_files(dir.path()), Vec::<Vec<String>>::new());
    // Nor when the parent only re-exports a child that uses what the parent defines; but
    // a re-export the parent uses itself is an import.
    let dir = made_up(&[
        ("src/lib.rs", "pub mod dev;\n"),
        (
            "src/dev/mod.rs",
            "mod uart;\npub use uart::Uart;\npub struct Dev(Uart);\n",
        ),
        (
            "src/dev/uart.rs",
            "use super::Dev;\npub struct Uart;\nfn f(_: &Dev) {}\n",
        ),
    ]);
    assert_eq!(cycle_files(dir.path()).len(), 1);
    let dir = made_up(&[
        ("src/lib.rs", "pub mod dev;\n"),
        (
            "src/dev/mod.rs",
            "mod uart;\npub use uart::Uart;\npub struct Dev;\n",
        ),
        (
            "src/dev/uart.rs",
            "use super::Dev;\npub struct Uart;\nfn f(_: &Dev) {}\n",
        ),
    ]);
    assert_eq!(cycle_files(dir.path()), Vec::<Vec<String>>::new());
    // But a child that uses what the parent defines, while the parent uses the child,
    // is a cycle.
    let dir = made_up(&[
        ("src/lib.rs", "pub mod dev;\n"),
        (
            "src/dev/mod.rs",
            "mod uart;\nuse uart::Uart;\npub struct Dev(Uart);\n",
        ),
        (
            "src/dev/uart.rs",
            "use super::Dev;\npub struct Uart;\nfn f(_: &Dev) {}\n",
        ),
    ]);
    assert_eq!(
        cycle_files(dir.path()),
        vec![vec![
            "crates/k/src/dev/mod.rs".to_string(),
            "crates/k/src/dev/uart.rs".into()
        ]]
    );
}

#[test]
fn the_checker_ignores_comments_strings_and_test_modules() {
    let dir = made_up(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        (
            "src/a.rs",
            "use crate::b::Bee;\npub struct Ay;\n#[cfg(test)]\nmod tests {\n    use crate::b::Bee;\n}\n",
        ),
        (
            "src/b.rs",
            "//! See [`crate::a::Ay`].\npub struct Bee;\nconst S: &str = \"crate::a::Ay\";\n#[cfg(test)]\nmod tests {\n    use crate::a::Ay;\n}\n",
        ),
    ]);
    assert_eq!(cycle_files(dir.path()), Vec::<Vec<String>>::new());
}

#[test]
fn the_checker_counts_lines_of_sources_but_not_of_tests() {
    let long = "fn f() {}\n".repeat(MAX_LINES + 1);
    let dir = made_up(&[
        ("src/lib.rs", "mod big;\n"),
        ("src/big.rs", &long),
        ("src/state/tests.rs", &long),
        ("tests/huge.rs", &long),
    ]);
    assert_eq!(
        long_files(dir.path()),
        vec![("crates/k/src/big.rs".to_string(), MAX_LINES + 1)]
    );
}
