//! Extracts the ```rust blocks of the README's "## Library" section into
//! `$OUT_DIR/snippets.rs`, one function per block, so the crate compiles exactly what
//! the README shows.

use std::fmt::Write as _;

fn main() {
    // read at run time, not baked in with env!: a build directory shared by checkouts at
    // different paths (CI's clean checkout and a working copy) reuses this script's binary
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let readme = format!("{dir}/../../README.md");
    println!("cargo:rerun-if-changed={readme}");
    let text = std::fs::read_to_string(readme).expect("README.md beside the workspace manifest");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Library"))
        .expect("README.md has a '## Library' section");
    let mut out = String::new();
    let mut n = 0;
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```rust" {
            continue;
        }
        n += 1;
        writeln!(out, "/// README snippet {n}.").unwrap();
        writeln!(out, "#[allow(unused_variables)]").unwrap();
        writeln!(
            out,
            "pub fn snippet_{n}() -> Result<(), Box<dyn std::error::Error>> {{"
        )
        .unwrap();
        for code in lines.by_ref() {
            if code.trim() == "```" {
                break;
            }
            writeln!(out, "    {code}").unwrap();
        }
        writeln!(out, "    Ok(())\n}}\n").unwrap();
    }
    assert!(n > 0, "no ```rust block in the README's Library section");
    writeln!(out, "/// A snippet as a function.").unwrap();
    writeln!(
        out,
        "pub type Snippet = fn() -> Result<(), Box<dyn std::error::Error>>;"
    )
    .unwrap();
    writeln!(out, "/// Every snippet, in the README's order.").unwrap();
    write!(out, "pub const SNIPPETS: [Snippet; {n}] = [").unwrap();
    for i in 1..=n {
        write!(out, "snippet_{i}, ").unwrap();
    }
    writeln!(out, "];").unwrap();
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("snippets.rs");
    std::fs::write(dest, out).unwrap();
}
