//! The allocators compared, and how each is found, built or installed.
//!
//! | name | what | from |
//! |---|---|---|
//! | `hakmem` | ours, `libhakmem.so` | `--hakmem PATH`, else built from the workspace package `hakmem-preload`, else `target/release/libhakmem.so` |
//! | `glibc` | the system allocator | no preload |
//! | `mimalloc` | Debian's mimalloc 2.0 | `libmimalloc.so.2` (apt `libmimalloc2.0`) |
//! | `jemalloc` | Debian's jemalloc 5 | `libjemalloc.so.2` (apt `libjemalloc2`) |
//! | `tcmalloc` | gperftools tcmalloc | `libtcmalloc_minimal.so.4` (apt `libtcmalloc-minimal4`) |
//! | `mimalloc-current` | current mimalloc (3.x) | built from `bench/mimalloc-preload` |
//! | `mimalloc-v2` | latest mimalloc 2.x (opt-in) | built from `bench/mimalloc-preload --features v2` |
//! | `hakmem-unchecked` | hakmem without its free-path misuse checks (opt-in: measures their cost) | built from `hakmem-preload --features unchecked` into `target/unchecked` |
//!
//! To add one: a row in [`NAMES`] (and [`DEFAULT_NAMES`]) and a branch in
//! [`find`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Every candidate, in table order.
pub const NAMES: &[&str] = &[
    "hakmem",
    "hakmem-unchecked",
    "glibc",
    "mimalloc",
    "jemalloc",
    "tcmalloc",
    "mimalloc-v2",
    "mimalloc-current",
];

/// The candidates compared when `--allocators` is not given.
pub const DEFAULT_NAMES: &[&str] = &[
    "hakmem",
    "glibc",
    "mimalloc",
    "jemalloc",
    "tcmalloc",
    "mimalloc-current",
];

/// Debian peers: name, library file, Debian package.
const DEBIAN_PEERS: &[(&str, &str, &str)] = &[
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    (
        "tcmalloc",
        "libtcmalloc_minimal.so.4",
        "libtcmalloc-minimal4",
    ),
];

/// Where system libraries live.
const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
];

/// An allocator ready to run under.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// its column name
    pub name: &'static str,
    /// the library to preload; None for glibc
    pub preload: Option<PathBuf>,
    /// where it came from, for the report
    pub origin: String,
}

/// How to look for candidates.
pub struct Search<'a> {
    /// the workspace root
    pub root: &'a Path,
    /// `--hakmem PATH`
    pub hakmem: Option<PathBuf>,
    /// never run apt-get
    pub no_install: bool,
    /// never run cargo build
    pub no_build: bool,
}

/// Finds the requested candidates, installing or building what is missing
/// when allowed; each one left out gets a note saying why and how to add it.
pub fn discover(
    search: &Search,
    wanted: &[&'static str],
    notes: &mut Vec<String>,
) -> Vec<Candidate> {
    install_missing_debian_peers(search, wanted, notes);
    wanted
        .iter()
        .filter_map(|name| match find(name, search) {
            Ok(candidate) => Some(candidate),
            Err(why) => {
                notes.push(format!("{name}: skipped: {why}"));
                None
            }
        })
        .collect()
}

/// One candidate, or why it is missing.
fn find(name: &'static str, search: &Search) -> Result<Candidate, String> {
    let found = |path: PathBuf, origin: String| Candidate {
        name,
        preload: Some(path),
        origin,
    };
    match name {
        "glibc" => Ok(Candidate {
            name,
            preload: None,
            origin: "system malloc (no preload)".into(),
        }),
        "hakmem" => find_hakmem(search).map(|(path, origin)| found(path, origin)),
        "hakmem-unchecked" => {
            let target = search.root.join("target").join("unchecked");
            let target = target.to_string_lossy().to_string();
            cargo_build(
                search.root,
                &["-p", "hakmem-preload", "--features", "unchecked", "--target-dir", &target],
                "libhakmem.so",
            )
            .map(|path| {
                found(
                    path,
                    "hakmem-preload --features unchecked: the free path's misuse checks compiled out (a baseline to measure their cost, not for use)".into(),
                )
            })
        }
        "mimalloc-current" => find_mimalloc_wrapper(search, false).map(|path| {
            found(
                path,
                "libmimalloc-sys (bundled mimalloc 3.x) via bench/mimalloc-preload".into(),
            )
        }),
        "mimalloc-v2" => find_mimalloc_wrapper(search, true).map(|path| {
            found(
                path,
                "libmimalloc-sys (bundled mimalloc 2.x) via bench/mimalloc-preload --features v2"
                    .into(),
            )
        }),
        _ => {
            let &(_, file, package) = DEBIAN_PEERS
                .iter()
                .find(|(n, _, _)| *n == name)
                .ok_or_else(|| format!("unknown candidate `{name}`"))?;
            let path = system_lib(file).ok_or_else(|| {
                format!("{file} not found; `apt-get update && apt-get install -y {package}` would add it")
            })?;
            Ok(found(path, format!("Debian package {package}")))
        }
    }
}

/// Builds (or, with `--no-build`, finds) the mimalloc wrapper. The 2.x
/// build is copied to its own file name, so both builds can sit in one
/// target directory and each names itself in `malloc_from`.
fn find_mimalloc_wrapper(search: &Search, v2: bool) -> Result<PathBuf, String> {
    const LIB: &str = "libmimalloc_preload.so";
    const LIB_V2: &str = "libmimalloc_v2_preload.so";
    let manifest = search.root.join("bench/mimalloc-preload/Cargo.toml");
    let wanted = if v2 { LIB_V2 } else { LIB };
    if search.no_build {
        let dir = manifest.parent().unwrap_or(search.root);
        return existing_build(&[dir], wanted)
            .ok_or_else(|| format!("{wanted} not built and --no-build given"));
    }
    let manifest_arg = manifest.display().to_string();
    let mut args = vec!["--manifest-path", manifest_arg.as_str()];
    if v2 {
        args.extend(["--features", "v2"]);
    }
    let built = cargo_build(search.root, &args, LIB)?;
    if !v2 {
        return Ok(built);
    }
    let copy = built.with_file_name(LIB_V2);
    std::fs::copy(&built, &copy)
        .map_err(|e| format!("cannot copy {} to {}: {e}", built.display(), copy.display()))?;
    Ok(copy)
}

/// `--hakmem PATH`, else a fresh build of `hakmem-preload`, else a
/// `libhakmem.so` already built.
fn find_hakmem(search: &Search) -> Result<(PathBuf, String), String> {
    const LIB: &str = "libhakmem.so";
    if let Some(path) = &search.hakmem {
        return if path.is_file() {
            Ok((path.clone(), "--hakmem".into()))
        } else {
            Err(format!("--hakmem {} does not exist", path.display()))
        };
    }
    if !search.no_build && workspace_has_package(search.root, "hakmem-preload") {
        let path = cargo_build(search.root, &["-p", "hakmem-preload"], LIB)?;
        return Ok((path, "built from package hakmem-preload".into()));
    }
    existing_build(&[search.root], LIB)
        .map(|path| (path, "prebuilt (not rebuilt)".into()))
        .ok_or_else(|| {
            format!(
                "no {} and no package hakmem-preload in the workspace (pass --hakmem PATH)",
                search.root.join("target/release").join(LIB).display()
            )
        })
}

/// The cargo to run: the one running us, if any.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// True if the workspace at `root` has a package called `name`.
fn workspace_has_package(root: &Path, name: &str) -> bool {
    let output = Command::new(cargo())
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .stderr(Stdio::null())
        .output();
    match output {
        Ok(out) if out.status.success() => {
            String::from_utf8_lossy(&out.stdout).contains(&format!("\"name\":\"{name}\""))
        }
        _ => false,
    }
}

/// `cargo build --release ARGS` in `root`; returns the built file whose
/// name is `lib`, read from cargo's JSON artifact messages.
fn cargo_build(root: &Path, args: &[&str], lib: &str) -> Result<PathBuf, String> {
    println!("building {lib}: cargo build --release {}", args.join(" "));
    let output = Command::new(cargo())
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo build --release {} failed", args.join(" ")));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    artifact_path(&stdout, lib)
        .map(PathBuf::from)
        .ok_or_else(|| format!("cargo built no {lib}"))
}

/// The last path ending in `/lib` among cargo's compiler-artifact messages.
fn artifact_path(json_lines: &str, lib: &str) -> Option<String> {
    let suffix = format!("/{lib}");
    json_lines
        .lines()
        .filter(|line| line.contains("\"reason\":\"compiler-artifact\""))
        .flat_map(|line| line.split('"'))
        .rfind(|word| word.ends_with(&suffix))
        .map(str::to_string)
}

/// `lib` in a release target directory: `$CARGO_TARGET_DIR/release` or
/// `<dir>/target/release` for each of `dirs`.
fn existing_build(dirs: &[&Path], lib: &str) -> Option<PathBuf> {
    let mut places: Vec<PathBuf> = dirs
        .iter()
        .map(|d| d.join("target/release").join(lib))
        .collect();
    if let Ok(target) = std::env::var("CARGO_TARGET_DIR") {
        places.push(Path::new(&target).join("release").join(lib));
    }
    places.into_iter().find(|p| p.is_file())
}

/// A system library by file name.
fn system_lib(file: &str) -> Option<PathBuf> {
    LIB_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(file))
        .find(|p| p.is_file())
}

/// Installs the wanted Debian peers that are missing, when we are root,
/// apt-get exists and `--no-install` was not given.
fn install_missing_debian_peers(search: &Search, wanted: &[&'static str], notes: &mut Vec<String>) {
    let missing: Vec<&str> = DEBIAN_PEERS
        .iter()
        .filter(|(name, file, _)| wanted.contains(name) && system_lib(file).is_none())
        .map(|&(_, _, package)| package)
        .collect();
    if missing.is_empty() || search.no_install {
        return;
    }
    let command = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/usr/bin/apt-get").exists() {
        notes.push(format!(
            "not root or no apt-get: not installing; `{command}` would add the missing peers"
        ));
        return;
    }
    println!("installing missing peers: {command}");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let mut install = vec!["install", "-y", "-q"];
    install.extend(&missing);
    if !(apt(&["update", "-q"]) && apt(&install)) {
        notes.push(format!(
            "`{command}` failed; the peers it would add are skipped"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_artifact_path_comes_from_compiler_artifact_messages() {
        let json = concat!(
            r#"{"reason":"compiler-artifact","filenames":["/t/release/libfoo.rlib"]}"#,
            "\n",
            r#"{"reason":"compiler-artifact","filenames":["/t/release/libmimalloc_preload.so"]}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            artifact_path(json, "libmimalloc_preload.so").as_deref(),
            Some("/t/release/libmimalloc_preload.so")
        );
        assert_eq!(artifact_path(json, "libhakmem.so"), None);
    }
}
