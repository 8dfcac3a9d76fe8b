//! The C battery (`tests/c/*.c`), compiled with the system C compiler and
//! run with the freshly built `libhakmem.so` preloaded. Each program runs
//! one named case per process (`prog` alone lists them); a case passes
//! when it prints `ok <case>` and exits 0. The misuse cases must die of
//! SIGABRT with hakmem's message naming the pointer they printed.

mod support;

use std::time::Duration;

use support::{c_library, c_program, libhakmem, preloaded, run, tail};

const TIMEOUT: Duration = Duration::from_secs(120);

/// The cases `program` lists.
fn cases(program: &str) -> Vec<String> {
    let out = run(&mut std::process::Command::new(c_program(program)), TIMEOUT);
    out.assert_success(&format!("{program} (list cases)"));
    out.stdout.lines().map(str::to_string).collect()
}

/// Runs every case of `program` under hakmem; panics listing the failures.
fn run_all(program: &str) {
    let exe = c_program(program);
    let mut failures = Vec::new();
    for case in cases(program) {
        let out = run(preloaded(&exe).arg(&case), TIMEOUT);
        let ok = out.status.success() && out.stdout.contains(&format!("ok {case}"));
        eprintln!(
            "{program} {case}: {} in {:.2?}",
            if ok { "ok" } else { "FAILED" },
            out.elapsed
        );
        if !ok {
            failures.push(format!(
                "{case}: {:?}\n--- stdout\n{}\n--- stderr\n{}",
                out.status,
                tail(&out.stdout),
                tail(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn sizes_from_0_to_64_mib_keep_their_contents() {
    run_all("sizes");
}

#[test]
fn alignment_functions_honour_alignments_and_report_errors() {
    run_all("align");
}

#[test]
fn threads_free_each_others_blocks_and_exit_with_live_ones() {
    run_all("threads");
}

#[test]
fn forked_children_of_a_threaded_program_allocate() {
    run_all("fork");
}

#[test]
fn memory_returns_to_the_os_after_a_burst() {
    run_all("trim");
}

#[test]
fn hakmem_is_the_allocator_in_use() {
    run_all("identity");
    // HAKMEM_STATS=1 prints the counters at exit.
    let exe = c_program("identity");
    let out = run(
        preloaded(&exe)
            .arg("malloc_comes_from_libhakmem")
            .env("HAKMEM_STATS", "1"),
        TIMEOUT,
    );
    out.assert_success("identity with HAKMEM_STATS=1");
    assert!(
        out.stderr.starts_with("hakmem: stats Stats {") && out.stderr.contains("heaps_created: "),
        "no stats at exit:\n{}",
        out.stderr
    );
    let quiet = run(preloaded(&exe).arg("malloc_comes_from_libhakmem"), TIMEOUT);
    assert_eq!(quiet.stderr, "", "stats without HAKMEM_STATS");
}

#[test]
fn first_calls_from_the_loader_tls_setup_and_dlsym_do_not_recurse() {
    let exe = c_program("bootstrap");
    // Dynamic TLS of a dlopened library is allocated by glibc through
    // malloc on each thread's first access; dlerror allocates its message.
    let tlslib = c_library("tlslib");
    let out = run(
        preloaded(&exe)
            .arg("dlopened_library_tls_and_dlerror")
            .arg(&tlslib),
        TIMEOUT,
    );
    out.assert_success("bootstrap dlopened_library_tls_and_dlerror");
    // A library preloaded after libhakmem.so runs its constructor first:
    // its allocations come before hakmem's constructor.
    let early = c_library("early");
    let mut preload = libhakmem().as_os_str().to_owned();
    preload.push(":");
    preload.push(&early);
    let out = run(
        std::process::Command::new(&exe)
            .arg("allocation_in_an_earlier_constructor")
            .env("LD_PRELOAD", preload),
        TIMEOUT,
    );
    out.assert_success("bootstrap allocation_in_an_earlier_constructor");
    assert_eq!(cases("bootstrap").len(), 2, "bootstrap.c has new cases");
}

const NOT_OWNED: &str = "pointer not allocated by hakmem";
const NOT_ALLOCATED: &str = "pointer to memory that is not an allocated block";
const INTERIOR: &str = "pointer inside a block, not at its start";
const DOUBLE_FREE: &str = "double free";

/// Each misuse case of `misuse.c`: the function that must report it and
/// what it must say.
const MISUSES: &[(&str, &str, &str)] = &[
    ("free_stack_address", "free", NOT_OWNED),
    ("free_foreign_mmap", "free", NOT_OWNED),
    ("free_garbage", "free", NOT_OWNED),
    ("free_non_canonical_address", "free", NOT_OWNED),
    ("free_alias_above_user_space", "free", NOT_OWNED),
    ("free_kernel_half_alias", "free", NOT_OWNED),
    ("free_glibc_block", "free", NOT_OWNED),
    ("free_inside_small_block", "free", INTERIOR),
    ("free_misaligned_small_block", "free", INTERIOR),
    ("free_inside_large_block", "free", INTERIOR),
    ("free_segment_metadata", "free", NOT_ALLOCATED),
    ("double_free_small", "free", DOUBLE_FREE),
    ("double_free_small_delayed", "free", DOUBLE_FREE),
    ("double_free_after_drain", "free", DOUBLE_FREE),
    ("double_free_large", "free", DOUBLE_FREE),
    ("double_free_large_delayed", "free", DOUBLE_FREE),
    ("double_free_remote", "free", DOUBLE_FREE),
    ("double_free_after_thread_exit", "free", DOUBLE_FREE),
    ("free_garbage_from_new_thread", "free", NOT_OWNED),
    ("double_free_in_exit_destructor", "free", DOUBLE_FREE),
    ("realloc_freed_block", "realloc", DOUBLE_FREE),
    ("realloc_to_zero_of_freed_block", "realloc", DOUBLE_FREE),
    ("realloc_stack_address", "realloc", NOT_OWNED),
    (
        "usable_size_of_freed_block",
        "malloc_usable_size",
        DOUBLE_FREE,
    ),
    ("usable_size_inside_block", "malloc_usable_size", INTERIOR),
];

#[test]
fn misuse_is_reported_and_aborts() {
    let listed = cases("misuse");
    let table: Vec<&str> = MISUSES.iter().map(|m| m.0).collect();
    assert_eq!(listed, table, "misuse.c and MISUSES list different cases");
    let exe = c_program("misuse");
    let mut failures = Vec::new();
    for &(case, op, what) in MISUSES {
        let out = run(preloaded(&exe).arg(case), TIMEOUT);
        let ptr = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("ptr="))
            .unwrap_or("(none printed)");
        let expected = format!("hakmem: {op}(): {what} {ptr}\n");
        let ok = out.signal() == Some(libc::SIGABRT) && out.stderr == expected;
        eprintln!("misuse {case}: {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failures.push(format!(
                "{case}: {:?}, expected SIGABRT and stderr {expected:?}, got stderr {:?}",
                out.status,
                tail(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
