//! Binds the calls from our `malloc`, `free`, ... to the bundled `mi_*`
//! functions inside the library at link time: the `mi_*` symbols are
//! exported, and without this every call would look them up as
//! interposable symbols (mimalloc's own override build uses aliases).

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic-functions");
    println!("cargo:rerun-if-changed=build.rs");
}
