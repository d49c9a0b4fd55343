//! Generates `include/f2idiff.h` from `src/capi/` with cbindgen (settings in `cbindgen.toml`),
//! adding the version macros. The header is committed; `scripts/test.sh` fails when the
//! generated one differs from it. The file is only rewritten when its content changes.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src/capi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&dir);
    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cbindgen.toml: {e}"));
    let v = |k: &str| std::env::var(k).expect("cargo sets the package version");
    config.after_includes = Some(format!(
        "\n#define F2I_VERSION_MAJOR {}\n#define F2I_VERSION_MINOR {}\n#define F2I_VERSION_PATCH {}\n\
         #define F2I_VERSION_STRING \"{}\"\n",
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH"),
        v("CARGO_PKG_VERSION"),
    ));
    let header = cbindgen::Builder::new()
        .with_src(dir.join("src").join("capi").join("mod.rs"))
        .with_config(config)
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen: {e}"));
    let mut text = Vec::new();
    header.write(&mut text);
    let path = dir.join("include").join("f2idiff.h");
    if std::fs::read(&path).ok().as_deref() != Some(&text[..]) {
        std::fs::create_dir_all(path.parent().expect("has a parent"))
            .unwrap_or_else(|e| panic!("include/: {e}"));
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
