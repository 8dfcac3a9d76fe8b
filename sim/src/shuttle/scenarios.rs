//! The scenarios: small concurrent programs over the real allocator, each
//! with several shuttle threads, content patterns on every block and the
//! full checker at quiescence (every thread joined).
//!
//! Sizes are chosen for the tiny geometry (4 KiB small slabs, 16 KiB mid
//! slabs, blocks above 2 KiB are large) and the tiny configuration (thread
//! caches of 2..8 blocks, a periodic drain every 4 refills), so slab-empty,
//! retire, abandon and adopt transitions happen within a few operations.

use std::collections::VecDeque;

use ::shuttle::sync::mpsc::{channel, Receiver, Sender};
use ::shuttle::sync::Mutex;
use ::shuttle::thread;
use hakmem::{Config, Zoo};

use super::world::{world_config, Blk, World};

/// One scenario; its name is used in test names and repro files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Two producers hand blocks to two consumers, who free them
    /// (cross-thread frees onto both producers' slabs, pushes racing each
    /// other and the producers' own collects).
    ProducerConsumer,
    /// The owner drains its caches and collects its remote queues while
    /// two other threads push remote frees onto the same slabs.
    DrainCollectRace,
    /// A slab's last block is freed remotely while its owner frees the rest
    /// and flushes: the slab goes empty (and is retired and reused by a
    /// third thread) around a remote free in flight.
    SlabEmptyRemoteInFlight,
    /// A thread exits while two others still free its blocks; a fourth
    /// allocates the same class and adopts the abandoned slabs.
    ExitThenAdopt,
    /// Six short-lived threads, at most three at a time, pass blocks to
    /// each other through a mailbox and exit (heap records are recycled,
    /// slabs abandoned and adopted).
    ShortLivedThreads,
    /// Large blocks (own mappings, the large cache) allocated on one thread
    /// and freed on another while a third allocates and frees large blocks.
    LargeRemote,
    /// `ShortLivedThreads` with one exited heap parked whole
    /// (`Config::parked_heaps`): a new thread takes it warm while other
    /// threads still free, and realloc, blocks of its slabs.
    ParkedHeaps,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::ProducerConsumer,
        Scenario::DrainCollectRace,
        Scenario::SlabEmptyRemoteInFlight,
        Scenario::ExitThenAdopt,
        Scenario::ShortLivedThreads,
        Scenario::LargeRemote,
        Scenario::ParkedHeaps,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Scenario::ProducerConsumer => "producer_consumer",
            Scenario::DrainCollectRace => "drain_collect_race",
            Scenario::SlabEmptyRemoteInFlight => "slab_empty_remote_in_flight",
            Scenario::ExitThenAdopt => "exit_then_adopt",
            Scenario::ShortLivedThreads => "short_lived_threads",
            Scenario::LargeRemote => "large_remote",
            Scenario::ParkedHeaps => "parked_heaps",
        }
    }

    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Runs the scenario once; must be called inside a shuttle execution.
    /// Panics (with `[invariant] detail`) on the first failure.
    pub fn run(self, zoo: Zoo) {
        let w = match self {
            Scenario::ParkedHeaps => World::with_config(Config {
                parked_heaps: 1,
                ..world_config(zoo)
            }),
            _ => World::new(zoo),
        };
        let live = match self {
            Scenario::ProducerConsumer => producer_consumer(&w),
            Scenario::DrainCollectRace => drain_collect_race(&w),
            Scenario::SlabEmptyRemoteInFlight => slab_empty_remote_in_flight(&w),
            Scenario::ExitThenAdopt => exit_then_adopt(&w),
            Scenario::ShortLivedThreads | Scenario::ParkedHeaps => short_lived_threads(&w),
            Scenario::LargeRemote => large_remote(&w),
        };
        w.finish(live);
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn join_all<T>(handles: Vec<thread::ScopedJoinHandle<'_, Vec<T>>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        // A thread that panicked has failed the execution already.
        out.extend(h.join().unwrap_or_default());
    }
    out
}

fn producer_consumer(w: &World) -> Vec<Blk> {
    const PER_PRODUCER: usize = 6;
    const SIZES: [usize; 3] = [48, 64, 200];
    let (tx0, rx0) = channel::<Blk>();
    let (tx1, rx1) = channel::<Blk>();
    thread::scope(|s| {
        let mut hs = Vec::new();
        for p in 0..2 {
            let (tx0, tx1) = (tx0.clone(), tx1.clone());
            hs.push(s.spawn(move || {
                let mut h = w.heap();
                let mut keep = Vec::new();
                for i in 0..PER_PRODUCER {
                    let b = h.alloc(SIZES[(i + p) % SIZES.len()]);
                    let to: &Sender<Blk> = if i % 2 == 0 { &tx0 } else { &tx1 };
                    to.send(b).expect("consumers outlive producers");
                    // Some local traffic: own allocations and frees.
                    let own = h.alloc(SIZES[i % SIZES.len()]);
                    if i % 3 == 2 {
                        keep.push(own);
                    } else {
                        h.free(own);
                    }
                }
                drop((tx0, tx1));
                h.collect();
                h.flush();
                keep
            }));
        }
        drop((tx0, tx1));
        for rx in [rx0, rx1] {
            hs.push(s.spawn(move || consume(w, rx)));
        }
        join_all(hs)
    })
}

/// Frees every block received until every sender is gone.
fn consume(w: &World, rx: Receiver<Blk>) -> Vec<Blk> {
    let mut h = w.heap();
    while let Ok(b) = rx.recv() {
        h.free(b);
    }
    Vec::new()
}

fn drain_collect_race(w: &World) -> Vec<Blk> {
    const SIZE: usize = 64;
    let mut owner = w.heap();
    let mut batches = [Vec::new(), Vec::new()];
    for i in 0..12 {
        batches[i % 2].push(owner.alloc(SIZE));
    }
    let [b0, b1] = batches;
    let mut live = thread::scope(|s| {
        let hs: Vec<_> = [b0, b1]
            .into_iter()
            .map(|batch| {
                s.spawn(move || {
                    let mut h = w.heap();
                    for b in batch {
                        h.free(b);
                    }
                    Vec::new()
                })
            })
            .collect();
        // The owner keeps working the same class while the pushes land:
        // own frees (cache overflow and the periodic drain), collects,
        // flushes.
        let mut keep = Vec::new();
        for round in 0..3 {
            let a = owner.alloc(SIZE);
            let b = owner.alloc(SIZE);
            owner.free(a);
            owner.collect();
            if round == 1 {
                owner.flush();
            }
            keep.push(b);
        }
        owner.flush();
        let mut live = join_all(hs);
        live.extend(keep);
        live
    });
    owner.collect();
    live.push(owner.alloc(SIZE));
    owner.exit();
    live
}

fn slab_empty_remote_in_flight(w: &World) -> Vec<Blk> {
    // 256-byte blocks: 16 to a 4 KiB slab, a thread cache of 2.
    const SIZE: usize = 256;
    let mut owner = w.heap();
    let blocks: Vec<Blk> = (0..4).map(|_| owner.alloc(SIZE)).collect();
    let (remote, local) = blocks.split_at(1);
    let remote = remote[0];
    thread::scope(|s| {
        let freer = s.spawn(move || {
            let mut h = w.heap();
            h.free(remote);
            Vec::new()
        });
        // A third thread wants 256-byte slabs: it gets the owner's slab if
        // it is retired in time, and must never see the remote block.
        let taker = s.spawn(move || {
            let mut h = w.heap();
            let got: Vec<Blk> = (0..3).map(|_| h.alloc(SIZE)).collect();
            let mut it = got.into_iter();
            let keep = it.next().into_iter().collect::<Vec<_>>();
            for b in it {
                h.free(b);
            }
            h.flush();
            keep
        });
        for &b in local {
            owner.free(b);
        }
        // The slab now holds only the block in flight: collecting and
        // flushing may find it empty (push landed) or not (still in flight).
        owner.flush();
        owner.collect();
        owner.flush();
        let mut live = join_all(vec![freer, taker]);
        owner.flush();
        live.push(owner.alloc(SIZE));
        owner.exit();
        live
    })
}

fn exit_then_adopt(w: &World) -> Vec<Blk> {
    const SIZE: usize = 64;
    thread::scope(|s| {
        let (tx, rx) = channel::<Vec<Blk>>();
        let (tx2, rx2) = channel::<Vec<Blk>>();
        let exiting = s.spawn(move || {
            let mut h = w.heap();
            let mut blocks: Vec<Blk> = (0..10).map(|_| h.alloc(SIZE)).collect();
            let kept = blocks.split_off(8);
            let second = blocks.split_off(4);
            tx.send(blocks).expect("freer alive");
            tx2.send(second).expect("freer alive");
            // Exit while the two freers work on our blocks: flush, abandon.
            h.exit();
            kept
        });
        let freers: Vec<_> = [rx, rx2]
            .into_iter()
            .map(|rx| {
                s.spawn(move || {
                    let mut h = w.heap();
                    for b in rx.recv().unwrap_or_default() {
                        h.free(b);
                    }
                    Vec::new()
                })
            })
            .collect();
        let adopter = s.spawn(move || {
            let mut h = w.heap();
            let got: Vec<Blk> = (0..6).map(|_| h.alloc(SIZE)).collect();
            let mut keep = Vec::new();
            for (i, b) in got.into_iter().enumerate() {
                if i % 3 == 0 {
                    keep.push(b);
                } else {
                    h.free(b);
                }
            }
            keep
        });
        let mut hs = vec![exiting, adopter];
        hs.extend(freers);
        join_all(hs)
    })
}

fn short_lived_threads(w: &World) -> Vec<Blk> {
    const THREADS: usize = 6;
    const AT_ONCE: usize = 3;
    const SIZES: [usize; 3] = [32, 96, 300];
    let mailbox = Mutex::new(VecDeque::<Blk>::new());
    thread::scope(|s| {
        let mailbox = &mailbox;
        let worker = move |i: usize| {
            let mut h = w.heap();
            let a = h.alloc(SIZES[i % 3]);
            let b = h.alloc(SIZES[(i + 1) % 3]);
            let c = h.alloc(SIZES[(i + 2) % 3]);
            h.free(b);
            let theirs = {
                let mut m = mailbox.lock().unwrap();
                m.push_back(a);
                if m.len() > 1 {
                    m.pop_front()
                } else {
                    None
                }
            };
            let mut keep = vec![c];
            if let Some(t) = theirs {
                if i.is_multiple_of(2) {
                    // Grow a block another (maybe exited) thread allocated.
                    keep.push(h.realloc(t, t.size + 200));
                } else {
                    h.free(t);
                }
            }
            keep
        };
        let mut running = VecDeque::new();
        let mut live = Vec::new();
        for i in 0..THREADS {
            if running.len() == AT_ONCE {
                live.extend(join_all(vec![running.pop_front().unwrap()]));
            }
            running.push_back(s.spawn(move || worker(i)));
        }
        live.extend(join_all(running.into_iter().collect()));
        live.extend(mailbox.lock().unwrap().drain(..));
        live
    })
}

fn large_remote(w: &World) -> Vec<Blk> {
    const SIZES: [usize; 3] = [4096, 12 * 1024, 70 * 1024];
    let (tx, rx) = channel::<Blk>();
    thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut h = w.heap();
            for &size in &SIZES {
                tx.send(h.alloc(size)).expect("freer alive");
            }
            drop(tx);
            // Reuse races the other thread's frees into the large cache.
            let a = h.alloc(8 * 1024);
            let b = h.realloc(a, 30 * 1024);
            h.free(b);
            vec![h.alloc(3000)]
        });
        let freer = s.spawn(move || consume(w, rx));
        let other = s.spawn(move || {
            let mut h = w.heap();
            let a = h.alloc(12 * 1024);
            let b = h.alloc(100);
            h.free(a);
            h.free(b);
            Vec::new()
        });
        join_all(vec![producer, freer, other])
    })
}
