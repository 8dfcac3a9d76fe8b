//! Real programs under `LD_PRELOAD=libhakmem.so`, each output compared
//! with a run of the same program on the system allocator: python3
//! (every object through malloc), git (init, add, commit, log, gc, fsck on
//! a repository made on the fly), gcc (compile, assemble, link) and two
//! multi-threaded programs (xz -T2 and sort --parallel=2).
//!
//! The preloaded runs set `HAKMEM_STATS=1`: each process prints hakmem's
//! counters at exit, which proves the preload took effect; those lines are
//! removed from stderr before the comparison.

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{libhakmem, run, scratch_dir, Outcome};

const TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `cmd` once without and once with hakmem; returns both outcomes
/// (the second with hakmem's stats removed from stderr) after checking
/// the preloaded processes printed their stats.
fn run_both(make: impl Fn() -> Command) -> (Outcome, Outcome) {
    let plain = run(&mut make(), TIMEOUT);
    let mut cmd = make();
    cmd.env("LD_PRELOAD", libhakmem()).env("HAKMEM_STATS", "1");
    let mut hakmem = run(&mut cmd, TIMEOUT);
    let (stderr, processes) = strip_stats(&hakmem.stderr);
    assert!(
        processes > 0,
        "{cmd:?}: no hakmem stats at exit, the preload did not take effect:\n{}",
        hakmem.stderr
    );
    hakmem.stderr = stderr;
    eprintln!(
        "{:?}: {:.2?} on the system allocator, {:.2?} on hakmem ({processes} processes)",
        cmd.get_program(),
        plain.elapsed,
        hakmem.elapsed
    );
    (plain, hakmem)
}

/// Removes every `hakmem: stats Stats { ... }` block; returns the rest and
/// how many blocks there were.
fn strip_stats(stderr: &str) -> (String, usize) {
    let mut rest = String::new();
    let mut blocks = 0;
    let mut inside = false;
    for line in stderr.split_inclusive('\n') {
        if line.starts_with("hakmem: stats Stats {") {
            inside = true;
            blocks += 1;
        } else if inside {
            inside = line != "}\n";
        } else {
            rest.push_str(line);
        }
    }
    (rest, blocks)
}

/// Both runs succeeded with the same stdout and stderr.
fn assert_same(what: &str, plain: &Outcome, hakmem: &Outcome) {
    plain.assert_success(&format!("{what} on the system allocator"));
    hakmem.assert_success(&format!("{what} on hakmem"));
    assert!(
        plain.stdout_bytes == hakmem.stdout_bytes,
        "{what}: stdout differs\n--- system\n{}\n--- hakmem\n{}",
        support::tail(&plain.stdout),
        support::tail(&hakmem.stdout)
    );
    assert_eq!(plain.stderr, hakmem.stderr, "{what}: stderr differs");
}

fn program_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(name)
}

/// The program `name`: the system's own copy in /usr/bin if there is one
/// (a version manager's shim earlier in PATH would only add a shell script
/// to every run), else the first in PATH.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/bin"))
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// [`tool`], which this test cannot do without.
fn required(name: &str) -> PathBuf {
    tool(name).unwrap_or_else(|| panic!("{name} is not installed"))
}

/// Deterministic text: `lines` lines of pseudo-random words.
fn generated_text(lines: usize, seed: u64) -> String {
    let mut x = seed;
    let mut out = String::new();
    for i in 0..lines {
        let words = 3 + (i % 9);
        for w in 0..words {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = (x >> 33) % 5000;
            let _ = write!(out, "{}w{v}", if w == 0 { "" } else { " " });
        }
        out.push('\n');
    }
    out
}

#[test]
fn python_allocation_heavy_script_prints_the_same() {
    let script = program_file("alloc_heavy.py");
    let (plain, hakmem) = run_both(|| {
        let mut cmd = Command::new(required("python3"));
        cmd.arg(&script)
            .env("PYTHONMALLOC", "malloc")
            .env("PYTHONHASHSEED", "0");
        cmd
    });
    assert_same("python3 alloc_heavy.py", &plain, &hakmem);
    assert!(plain.stdout.contains("counter"), "{}", plain.stdout);
}

/// Writes the files of the test repository's `round`-th state.
fn write_tree(repo: &Path, round: u64) {
    for i in 0..120u64 {
        let dir = repo.join(format!("dir{}", i % 7));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("file{i}.txt"));
        if round > 0 && i % 10 == 3 {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let changed = round > 0 && i % 4 == 0;
        let text = generated_text(
            40 + (i as usize % 90),
            i * 31 + if changed { round } else { 0 },
        );
        std::fs::write(path, text).unwrap();
    }
    for i in 0..(round * 15) {
        std::fs::write(
            repo.join(format!("new{round}-{i}.bin")),
            generated_text(30, 1000 + i).repeat(3),
        )
        .unwrap();
    }
}

/// One git session on a fresh repository in `dir`; returns a transcript
/// of every command's status and output.
fn git_session(dir: &Path, preload: bool) -> String {
    let _ = std::fs::remove_dir_all(dir);
    let repo = dir.join("repo");
    let home = dir.join("home");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let git = |args: &[&str]| {
        let mut cmd = Command::new(required("git"));
        cmd.args(args)
            .current_dir(&repo)
            .env("HOME", &home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "A U Thor")
            .env("GIT_AUTHOR_EMAIL", "author@example.com")
            .env("GIT_AUTHOR_DATE", "2024-01-02T03:04:05Z")
            .env("GIT_COMMITTER_NAME", "C O Mitter")
            .env("GIT_COMMITTER_EMAIL", "committer@example.com")
            .env("GIT_COMMITTER_DATE", "2024-01-02T03:04:05Z")
            .env("LC_ALL", "C")
            .env("TZ", "UTC");
        if preload {
            cmd.env("LD_PRELOAD", libhakmem()).env("HAKMEM_STATS", "1");
        }
        let out = run(&mut cmd, TIMEOUT);
        let (stderr, stats) = strip_stats(&out.stderr);
        assert!(
            !preload || stats > 0,
            "git {args:?}: no hakmem stats at exit:\n{}",
            out.stderr
        );
        format!(
            "$ git {}\n{:?}\n{}{}",
            args.join(" "),
            out.status.code(),
            out.stdout,
            stderr
        )
    };
    let mut log = String::new();
    log += &git(&["init", "-q", "-b", "main"]);
    for round in 0..3 {
        write_tree(&repo, round);
        log += &git(&["add", "-A"]);
        log += &git(&["commit", "-q", "-m", &format!("round {round}")]);
    }
    log += &git(&["log", "--stat", "--format=%H %an %ae %s"]);
    log += &git(&["diff", "--stat", "HEAD~2", "HEAD"]);
    log += &git(&["gc", "--quiet", "--aggressive"]);
    log += &git(&["fsck", "--full", "--no-progress"]);
    log += &git(&["count-objects", "-v"]);
    log += &git(&["ls-files", "-s"]);
    log += &git(&["show", "HEAD~1:dir3/file10.txt"]);
    log += &git(&["grep", "-c", "w42 "]);
    log += &git(&["blame", "--porcelain", "dir0/file0.txt"]);
    log
}

#[test]
fn git_on_a_fresh_repository_prints_the_same() {
    let dir = scratch_dir("git");
    let start = std::time::Instant::now();
    let plain = git_session(&dir.join("system"), false);
    let mid = start.elapsed();
    let hakmem = git_session(&dir.join("hakmem"), true);
    eprintln!(
        "git session: {mid:.2?} on the system allocator, {:.2?} on hakmem",
        start.elapsed() - mid
    );
    assert!(plain.contains("round 2"), "{plain}");
    if plain != hakmem {
        let (a, b): (Vec<_>, Vec<_>) = (plain.lines().collect(), hakmem.lines().collect());
        let at = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        panic!(
            "git transcripts differ at line {at}:\n--- system\n{}\n--- hakmem\n{}",
            a[at.saturating_sub(3)..(at + 5).min(a.len())].join("\n"),
            b[at.saturating_sub(3)..(at + 5).min(b.len())].join("\n")
        );
    }
}

/// A C file with enough functions to keep cc1 busy for a while.
fn generated_c_source() -> String {
    let mut src = String::from("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n");
    for f in 0..150 {
        let _ = write!(
            src,
            "static unsigned long f{f}(unsigned long x) {{
    unsigned long acc = {f}u;
    char buf[64];
    for (int i = 0; i < 50; i++) {{
        switch ((x + i) % 5) {{
        case 0: acc = acc * 31 + i; break;
        case 1: acc ^= acc >> {s}; break;
        case 2: snprintf(buf, sizeof buf, \"%lu\", acc); acc += strlen(buf); break;
        case 3: acc += x * {f}u; break;
        default: acc = (acc << 3) | (acc >> 61);
        }}
    }}
    return acc;
}}
",
            s = 1 + f % 13
        );
    }
    src += "int main(void) {\n    unsigned long sum = 0;\n";
    for f in 0..150 {
        let _ = writeln!(src, "    sum += f{f}(sum + {f});");
    }
    src += "    printf(\"%lu\\n\", sum);\n    return 0;\n}\n";
    src
}

#[test]
fn gcc_compiles_and_links_the_same() {
    let dir = scratch_dir("gcc");
    let src = dir.join("gen.c");
    std::fs::write(&src, generated_c_source()).unwrap();
    let cc = required("gcc");
    // Compile to an object file and to assembly text, then link, each on
    // both allocators: the outputs must be identical byte for byte.
    let steps: [(&str, &[&str]); 3] = [
        ("gen.o", &["-O2", "-c", "gen.c"]),
        ("gen.s", &["-O2", "-S", "gen.c"]),
        ("gen", &["-O2", "gen.c"]),
    ];
    for (out, args) in steps {
        let mut built = Vec::new();
        for preload in [false, true] {
            let file = format!("{out}.{}", if preload { "hakmem" } else { "system" });
            let mut cmd = Command::new(&cc);
            cmd.current_dir(&dir).args(args).args(["-o", &file]);
            if preload {
                cmd.env("LD_PRELOAD", libhakmem());
            }
            let result = run(&mut cmd, TIMEOUT);
            result.assert_success(&format!("{cmd:?}"));
            assert_eq!(result.stderr, "", "{cmd:?}");
            built.push(std::fs::read(dir.join(&file)).unwrap());
        }
        assert!(!built[0].is_empty());
        assert!(built[0] == built[1], "gcc -o {out}: outputs differ");
    }
    // The program gcc built under hakmem runs the same, on either allocator.
    let (plain, hakmem) = run_both(|| Command::new(dir.join("gen.hakmem")));
    assert_same("the compiled program", &plain, &hakmem);
}

#[test]
fn xz_multithreaded_compression_is_the_same() {
    let Some(xz) = tool("xz") else {
        eprintln!("xz not installed: skipped (sort --parallel covers a threaded program)");
        return;
    };
    let dir = scratch_dir("xz");
    let data = dir.join("data.txt");
    std::fs::write(&data, generated_text(75_000, 7)).unwrap();
    // 3 MB in 512-KiB blocks: two threads compress blocks side by side;
    // the threaded format depends only on the settings, not on timing.
    let (plain, hakmem) = run_both(|| {
        let mut cmd = Command::new(&xz);
        cmd.args(["-T2", "-2", "--block-size=512KiB", "-c"])
            .arg(&data);
        cmd
    });
    assert_same("xz -T2", &plain, &hakmem);
    let packed = dir.join("data.txt.xz");
    std::fs::write(&packed, &plain.stdout_bytes).unwrap();
    let (plain, hakmem) = run_both(|| {
        let mut cmd = Command::new(&xz);
        cmd.args(["-d", "-T2", "-c"]).arg(&packed);
        cmd
    });
    assert_same("xz -d -T2", &plain, &hakmem);
    assert!(hakmem.stdout_bytes == std::fs::read(&data).unwrap());
}

#[test]
fn sort_parallel_is_the_same() {
    let dir = scratch_dir("sort");
    let data = dir.join("lines.txt");
    std::fs::write(&data, generated_text(200_000, 11)).unwrap();
    let (plain, hakmem) = run_both(|| {
        let mut cmd = Command::new(required("sort"));
        cmd.args(["--parallel=2", "-S", "64M", "-k2,2", "-k1,1"])
            .arg(&data)
            .env("LC_ALL", "C");
        cmd
    });
    assert_same("sort --parallel=2", &plain, &hakmem);
}
