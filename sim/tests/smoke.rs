//! Seeded traces of every mix and random fuzz-byte traces replay cleanly
//! with a check after every op (both geometries).

use hakmem_sim::{decode, generate, run, Mix, RunConfig, SplitMix64};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_mix_replays_cleanly_on_the_tiny_geometry() {
    let seeds = env("HAKMEM_SIM_SEEDS", 8);
    for mix in Mix::ALL {
        for seed in 0..seeds {
            let t = generate(mix, seed, 2000);
            if let Err(f) = run(&t, &RunConfig::tiny()) {
                panic!("mix {mix} seed {seed}: {f}\nreplay: hakmem-sim gen --mix {mix} --seed {seed} --ops 2000 | hakmem-sim replay -");
            }
        }
    }
}

#[test]
fn every_mix_replays_cleanly_on_the_production_geometry() {
    for mix in Mix::ALL {
        let t = generate(mix, 1, 3000);
        let r = run(&t, &RunConfig::production().check_every(50))
            .unwrap_or_else(|f| panic!("mix {mix}: {f}"));
        assert!(r.checks > 0);
    }
}

#[test]
fn random_fuzz_bytes_replay_cleanly() {
    let n = env("HAKMEM_SIM_SEEDS", 8) * 25;
    let mut rng = SplitMix64::new(env("HAKMEM_SIM_SEED", 42));
    let mut misuse = 0;
    for i in 0..n {
        let len = rng.below(4000);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let t = decode(&bytes);
        match run(&t, &RunConfig::tiny()) {
            Ok(r) => misuse += r.misuse.len(),
            Err(f) => panic!("random input {i}: {f}\n{t}"),
        }
    }
    assert!(
        misuse > 0,
        "the decoder produced no misuse op in {n} inputs"
    );
}
