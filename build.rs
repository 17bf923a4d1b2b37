//! Compiles the weak-reference shim for SQLite's snapshot functions
//! (`src/source/snapshot.c`): snap links against any SQLite build, and
//! uses those functions when the build has them.

fn main() {
    println!("cargo:rerun-if-changed=src/source/snapshot.c");
    cc::Build::new()
        .file("src/source/snapshot.c")
        .warnings(false)
        .compile("snap_sqlite_snapshot");
}
