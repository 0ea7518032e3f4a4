//! Computes the kernel state's layout hash (src/state.rs): FNV-1a over the field lists of every
//! struct that derives serde's traits, comments and whitespace removed, in file and source order.
//! A change to a stored field changes it; a change to code does not.

use std::fs;
use std::path::Path;

fn fnv(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= b as u64;
        *hash = hash.wrapping_mul(0x100_0000_01b3);
    }
}

fn strip(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        out.extend(code.chars().filter(|c| !c.is_whitespace()));
    }
    out
}

/// Every `.rs` file under `dir`, at any depth.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

fn main() {
    let marker = "#[derive(serde::Serialize, serde::Deserialize)]";
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(marker) {
            let item = &rest[at + marker.len()..];
            // the struct up to its closing brace (or `;` for a tuple struct)
            let mut depth = 0i32;
            let mut end = item.len();
            for (i, c) in item.char_indices() {
                match c {
                    '{' | '(' => depth += 1,
                    '}' | ')' => {
                        depth -= 1;
                        if depth == 0 && c == '}' {
                            end = i + 1;
                            break;
                        }
                    }
                    ';' if depth == 0 => {
                        end = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            fnv(&mut hash, strip(&item[..end]).as_bytes());
            rest = &item[end..];
        }
    }
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("layout.rs");
    fs::write(out, format!("pub const LAYOUT: u64 = 0x{hash:016x};\n")).unwrap();
}
