//! A test binary whose global allocator is hakmem, running std-heavy work:
//! collections, strings, formatting, threads, channels. Own `main` (no
//! libtest harness) so the checker can run at a point where no other
//! thread exists.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{mpsc, Arc, Mutex};

#[global_allocator]
static A: hakmem::HakMem = hakmem::HakMem;

fn collections(seed: u64) -> u64 {
    let mut map: HashMap<String, Vec<u64>> = HashMap::new();
    let mut tree = BTreeMap::new();
    let mut set = HashSet::new();
    let mut dq = VecDeque::new();
    let mut x = seed;
    for i in 0..20_000u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = format!("key-{}-{}", x % 977, i % 13);
        map.entry(key.clone()).or_default().push(i);
        tree.insert(x % 5000, key);
        set.insert(x % 10_007);
        dq.push_back(vec![i as u8; (x % 300) as usize]);
        if dq.len() > 100 {
            dq.pop_front();
        }
        if i % 1000 == 0 {
            map.retain(|_, v| v.len() < 5);
        }
    }
    let s: String = tree
        .values()
        .take(50)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",");
    map.values().map(|v| v.iter().sum::<u64>()).sum::<u64>()
        ^ set.len() as u64
        ^ s.len() as u64
        ^ dq.len() as u64
}

fn main() {
    // Single-threaded work, repeated: the result is deterministic.
    let expect = collections(7);
    assert_eq!(collections(7), expect);

    // Threads: each computes, passes boxed results through a channel to
    // the main thread (cross-thread frees), shares a Mutex'd Vec.
    let shared = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    let mut handles = Vec::new();
    for t in 0..8u64 {
        let tx = tx.clone();
        let shared = Arc::clone(&shared);
        handles.push(std::thread::spawn(move || {
            let r = collections(t);
            let strings: Vec<String> = (0..2000).map(|i| format!("{t}:{i}:{r}")).collect();
            tx.send(strings).unwrap();
            shared.lock().unwrap().push(Box::new(r));
            r
        }));
    }
    drop(tx);
    let mut received = 0;
    for v in rx {
        received += v.len();
        drop(v); // freed by a thread that did not allocate them
    }
    let results: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(received, 8 * 2000);
    for (t, r) in results.iter().enumerate() {
        assert_eq!(*r, collections(t as u64), "thread {t} computed differently");
    }
    assert_eq!(shared.lock().unwrap().len(), 8);
    drop(shared);

    // Many short-lived threads.
    for _ in 0..10 {
        let hs: Vec<_> = (0..20)
            .map(|i| std::thread::spawn(move || vec![i; 1000].iter().sum::<usize>()))
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }

    let a = hakmem::HakMem::allocator();
    let s = a.stats();
    assert!(s.heaps_created >= 9, "hakmem was not the allocator: {s:?}");
    assert!(s.refills > 0 && s.remote_frees > 0, "{s:?}");
    // Only this thread exists now.
    // SAFETY: every other thread has been joined.
    unsafe { a.check() }.unwrap_or_else(|v| panic!("{v}"));
    println!("global allocator: std work ok; {s:?}");
}
