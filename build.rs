//! Generates `include/f2idiff.h` from `src/capi/` with cbindgen (settings in `cbindgen.toml`),
//! adding the version macros. The header is committed; `scripts/test.sh` fails when the
//! generated one differs from it. The file is only rewritten when its content changes.
//!
//! With the feature `cuda-sim`, also builds the CPU execution harness: the runtime in
//! `kernels/harness/*.cpp` and every `kernels/*.cu` compiled as host C++, twice (f16 and f32
//! storage), with a table of their kernels by name.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src/capi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&dir);
    header(dir);
    #[cfg(feature = "cuda-sim")]
    harness::build(dir);
}

fn header(dir: &Path) {
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

/// The library's parser of kernel declarations, so the harness table and NVRTC see the same
/// kernels.
#[cfg(feature = "cuda-sim")]
#[path = "src/backend/cuda/kernel_names.rs"]
mod kernel_names;

#[cfg(feature = "cuda-sim")]
mod harness {
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};

    use super::kernel_names::declared_ops;

    fn cu_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("readable directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "cu"))
            .collect();
        files.sort();
        files
    }

    pub fn build(dir: &Path) {
        let kernels = dir.join("kernels");
        let harness = kernels.join("harness");
        println!("cargo:rerun-if-changed={}", kernels.display());
        println!("cargo:rerun-if-changed=src/backend/cuda/kernel_names.rs");
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

        // Product kernels, and the harness's own self-test kernels (planted bugs).
        let mut sources = cu_files(&kernels);
        sources.extend(cu_files(&harness));
        let mut units = Vec::new();
        let mut tables = Vec::new();
        for src in &sources {
            let text =
                std::fs::read_to_string(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
            let stem = src
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf-8 name");
            for (suffix, define) in [("f16", "#define F2I_ACT_F16 1\n"), ("f32", "")] {
                let table = format!("f2i_sim_table_{stem}_{suffix}");
                let mut unit = String::new();
                unit.push_str(define);
                writeln!(unit, "#include \"{}\"", src.display()).unwrap();
                writeln!(
                    unit,
                    "#include \"{}\"",
                    harness.join("f2i_sim_launch.h").display()
                )
                .unwrap();
                unit.push_str("static const f2i_sim_kernel kTable[] = {\n");
                let names = declared_ops(&text);
                for op in &names {
                    writeln!(unit, "  F2I_SIM_ENTRY({op}_{suffix}),").unwrap();
                }
                unit.push_str("  {nullptr, nullptr}\n};\n");
                writeln!(
                    unit,
                    "extern \"C\" const f2i_sim_kernel* {table}(void) {{ return kTable; }}"
                )
                .unwrap();
                let path = out.join(format!("sim_{stem}_{suffix}.cpp"));
                std::fs::write(&path, unit).expect("write generated unit");
                units.push(path);
                tables.push(table);
            }
        }
        let mut registry = String::from("#include <string.h>\n");
        writeln!(
            registry,
            "#include \"{}\"",
            harness.join("f2i_sim_launch.h").display()
        )
        .unwrap();
        for t in &tables {
            writeln!(registry, "extern \"C\" const f2i_sim_kernel* {t}(void);").unwrap();
        }
        registry.push_str(
            "extern \"C\" const f2i_sim_kernel* f2i_sim_find_kernel(const char* name) {\n",
        );
        registry.push_str("  typedef const f2i_sim_kernel* (*table_fn)(void);\n");
        registry.push_str("  static const table_fn tables[] = {\n");
        for t in &tables {
            writeln!(registry, "    {t},").unwrap();
        }
        registry.push_str(
            "  };\n  for (table_fn f : tables)\n    for (const f2i_sim_kernel* k = f(); k->name; ++k)\n      \
             if (strcmp(k->name, name) == 0) return k;\n  return nullptr;\n}\n",
        );
        let registry_path = out.join("sim_registry.cpp");
        std::fs::write(&registry_path, registry).expect("write registry");

        let mut b = cc::Build::new();
        b.cpp(true)
            .std("c++17")
            .opt_level(2)
            .include(&kernels)
            .flag_if_supported("-fno-strict-aliasing")
            .flag_if_supported("-Wno-unused-function")
            .flag_if_supported("-Wno-unused-parameter")
            .flag_if_supported("-Wno-unknown-pragmas")
            .warnings(true);
        for f in std::fs::read_dir(&harness).expect("kernels/harness") {
            let p = f.expect("entry").path();
            if p.extension().is_some_and(|x| x == "cpp") {
                b.file(p);
            }
        }
        for u in &units {
            b.file(u);
        }
        b.file(&registry_path);
        b.compile("f2i_sim");
    }
}
