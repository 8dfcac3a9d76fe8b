//! The `#[global_allocator]` comparison's workload, compiled into three
//! binaries that differ only in their global allocator (`ga-hakmem`,
//! `ga-mimalloc`, `ga-system`): Rust code that allocates the way Rust
//! programs do — collections built up and dropped, strings formatted,
//! boxed trees, and data handed between threads through channels (so the
//! receiving thread frees what the sending one allocated).
//!
//! Prints one line: `RESULT ga=<name> seconds=<s> peak_rss_kib=<k> check=<x>`.
//! `--threads N` (default 2), `--scale F` (default 1).

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::time::Instant;

enum Tree {
    Leaf(u64),
    Node(Box<Tree>, Box<Tree>),
}

fn build(depth: u32, x: u64) -> Tree {
    if depth == 0 {
        Tree::Leaf(x)
    } else {
        Tree::Node(
            Box::new(build(depth - 1, x * 2)),
            Box::new(build(depth - 1, x * 2 + 1)),
        )
    }
}

fn sum(t: &Tree) -> u64 {
    match t {
        Tree::Leaf(x) => *x,
        Tree::Node(a, b) => sum(a).wrapping_add(sum(b)),
    }
}

/// One thread's share: returns a checksum so nothing is optimised away.
fn work(
    id: u64,
    rounds: u64,
    tx: mpsc::Sender<Vec<String>>,
    rx: mpsc::Receiver<Vec<String>>,
) -> u64 {
    let mut check = 0u64;
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for r in 0..rounds {
        let mut map: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut tree = BTreeMap::new();
        for i in 0..2000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            map.entry(x % 512)
                .or_default()
                .extend_from_slice(&i.to_le_bytes());
            tree.insert(x % 4096, format!("{id}-{r}-{i}"));
        }
        let strings: Vec<String> = tree.values().take(500).cloned().collect();
        check = check.wrapping_add(map.values().map(|v| v.len() as u64).sum::<u64>());
        check = check.wrapping_add(sum(&build(10, r)));
        // hand the strings to the other thread, free what it handed us
        let _ = tx.send(strings);
        if let Ok(v) = rx.recv() {
            check = check.wrapping_add(v.iter().map(|s| s.len() as u64).sum::<u64>());
        }
    }
    check
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

pub fn main(name: &str) {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str, default: f64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(default)
    };
    let threads = get("--threads", 2.0).max(1.0) as usize;
    let rounds = (700.0 * get("--scale", 1.0)).max(1.0) as u64;
    let start = Instant::now();
    // A ring of channels: thread i sends to thread i+1.
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::channel()).unzip();
    let mut rxs: Vec<Option<mpsc::Receiver<Vec<String>>>> = rxs.into_iter().map(Some).collect();
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let tx = txs[(i + 1) % threads].clone();
            let rx = rxs[i].take().expect("one receiver per thread");
            std::thread::spawn(move || work(i as u64, rounds, tx, rx))
        })
        .collect();
    drop(txs);
    let check = handles
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .fold(0u64, u64::wrapping_add);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "RESULT ga={name} seconds={secs:.4} peak_rss_kib={} check={check}",
        peak_rss_kib()
    );
}
