//! Running scenarios under shuttle's schedulers: `check_random`,
//! `check_pct`, and replay, with failing schedules saved to a repro file
//! and one printed command that replays them.
//!
//! Every execution gets 1 MiB task stacks (shuttle's default 60 KiB is too
//! small for the allocator) and is recorded by [`Recorder`], a pass-through
//! scheduler that keeps the current execution's steps. A panic hook files
//! the first failure of an execution with its schedule; after shuttle has
//! torn the execution down the harness writes
//! `<dir>/<scenario>--<symptom>.schedule`:
//!
//! ```text
//! # hakmem shuttle schedule   shuttle: 0.9.9
//! # scenario: producer_consumer
//! # found-by: check_random seed=1234 execution=57
//! # violates: I3 SLAB-USED
//! # zoo: remote-push-load-store
//! # replay: HAKMEM_SHUTTLE_REPLAY=... cargo test ...
//! # seed: 1234
//! # schedule: 91020c...
//! ```
//!
//! `schedule` is shuttle's own encoding (`shuttle::replay` reads it, with
//! the same shuttle version and a 1 MiB stack). A process that aborts
//! (a crash, a double panic) never reaches the hook's caller; for those,
//! `SHUTTLE_ALWAYS_PERSIST_SEED=<file>` makes the harness write, before
//! every execution, a file of the same form without `schedule`: `seed`
//! (random: the execution's seed, replayed by a random scheduler of one
//! execution) or `base-seed` and `execution` (PCT: replayed by re-running
//! the PCT scheduler from its base seed up to that execution).

use std::cell::RefCell;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Once;
use std::time::{Duration, Instant};

use ::shuttle::scheduler::{PctScheduler, RandomScheduler, Schedule, Scheduler, Task, TaskId};
use ::shuttle::{Config, FailurePersistence, MaxSteps, Runner};
use hakmem::{Bug, Zoo};
use shuttle_engine::scheduler::serialization::{deserialize_schedule, serialize_schedule};
use shuttle_engine::scheduler::ScheduleStep;

use super::scenarios::Scenario;
use crate::gen::SplitMix64;
use crate::trace::headers;

/// The shuttle version schedules are bound to (pinned in `Cargo.toml`).
pub const SHUTTLE_VERSION: &str = "0.9.9";

/// Task stack size: the allocator's slow paths need more than shuttle's
/// default 60 KiB.
pub const STACK_SIZE: usize = 1 << 20;

/// How the schedules of an exploration are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// shuttle's `RandomScheduler`: a uniformly random runnable task at every
    /// scheduling point.
    Random,
    /// shuttle's `PctScheduler` (probabilistic concurrency testing) with
    /// `depth - 1` priority change points per execution.
    Pct { depth: usize },
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Random => f.write_str("random"),
            Strategy::Pct { depth } => write!(f, "pct depth={depth}"),
        }
    }
}

impl Strategy {
    fn parse(s: &str) -> Option<Strategy> {
        let s = s.trim();
        if s == "random" {
            return Some(Strategy::Random);
        }
        let depth = s.strip_prefix("pct depth=")?.trim().parse().ok()?;
        Some(Strategy::Pct { depth })
    }
}

/// How to explore.
#[derive(Clone, Debug)]
pub struct Options {
    /// Executions (schedules) to run.
    pub iterations: usize,
    /// Seed of the scheduler (each execution's seed derives from it).
    pub seed: u64,
    /// Historic bugs switched on (only with the `zoo` feature).
    pub zoo: Zoo,
    /// Where a failing schedule is written (`None`: only printed).
    pub persist_dir: Option<PathBuf>,
    /// Scheduling steps one execution may take before it fails.
    pub max_steps: usize,
}

impl Options {
    /// `iterations` from `HAKMEM_SHUTTLE_ITERS` (else `default_iterations`),
    /// the seed from `HAKMEM_SHUTTLE_SEED` (else a fresh random one),
    /// failing schedules written into `repro/shuttle/`.
    pub fn from_env(default_iterations: usize) -> Options {
        Options {
            iterations: env_usize("HAKMEM_SHUTTLE_ITERS").unwrap_or(default_iterations),
            seed: env_u64("HAKMEM_SHUTTLE_SEED").unwrap_or_else(random_seed),
            zoo: Zoo::NONE,
            persist_dir: Some(repro_dir()),
            max_steps: 200_000,
        }
    }
}

/// PCT depth from `HAKMEM_SHUTTLE_PCT_DEPTH`, 3 if unset.
pub fn pct_depth_from_env() -> usize {
    env_usize("HAKMEM_SHUTTLE_PCT_DEPTH").unwrap_or(3).max(1)
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// `repro/shuttle/` of the workspace.
pub fn repro_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("repro")
        .join("shuttle")
}

/// The shuttle configuration of every run here.
pub fn shuttle_config(max_steps: usize) -> Config {
    let mut c = Config::new();
    c.stack_size = STACK_SIZE;
    // The harness persists failures itself (see the module docs).
    c.failure_persistence = FailurePersistence::None;
    c.max_steps = MaxSteps::FailAfter(max_steps);
    // Known: shuttle runs every ordering as SeqCst (loom checks orderings).
    c.silence_warnings = true;
    c
}

/// What a passing exploration did.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    pub executions: usize,
    /// Scheduling decisions over all executions.
    pub steps: usize,
    pub elapsed: Duration,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn steps_per_execution(&self) -> f64 {
        self.steps as f64 / self.executions.max(1) as f64
    }
}

/// A failing execution.
#[derive(Clone, Debug)]
pub struct Found {
    pub scenario: Scenario,
    pub strategy: Strategy,
    /// The scheduler's base seed.
    pub base_seed: u64,
    /// Which execution failed, from 1: the schedules it took.
    pub execution: usize,
    /// The execution's own seed.
    pub seed: u64,
    /// `I3 SLAB-USED`, `I7 USER-CONTENTS`, `PANIC`, ...
    pub symptom: String,
    pub message: String,
    /// shuttle's encoding of the failing schedule.
    pub schedule: String,
    pub zoo: Zoo,
    /// Where the repro file was written.
    pub path: Option<PathBuf>,
    pub elapsed: Duration,
}

impl Found {
    /// The one command that replays this failure.
    pub fn replay_command(&self) -> String {
        let file = match &self.path {
            Some(p) => display_path(p),
            None => "<the file>".to_string(),
        };
        replay_command(&file, self.zoo != Zoo::NONE)
    }

    /// The repro file's text.
    pub fn file_text(&self) -> String {
        let mut out = format!("# hakmem shuttle schedule   shuttle: {SHUTTLE_VERSION}\n");
        out.push_str(&format!("# scenario: {}\n", self.scenario));
        out.push_str(&format!("# scheduler: {}\n", self.strategy));
        out.push_str(&format!(
            "# found-by: shuttle {} base-seed={} execution={}\n",
            self.strategy, self.base_seed, self.execution
        ));
        out.push_str(&format!("# violates: {}\n", self.symptom));
        if let Some(z) = zoo_names(self.zoo) {
            out.push_str(&format!("# zoo: {z}\n"));
        }
        out.push_str(&format!("# replay: {}\n", self.replay_command()));
        out.push_str(&format!("# seed: {}\n", self.seed));
        out.push_str(&format!("# schedule: {}\n", self.schedule));
        out
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shuttle scenario {} ({}, base seed {}) failed at execution {} (seed {}): {}\n{}\nreplay: {}",
            self.scenario,
            self.strategy,
            self.base_seed,
            self.execution,
            self.seed,
            self.symptom,
            self.message,
            self.replay_command()
        )
    }
}

/// The command that replays a repro file.
pub fn replay_command(file: &str, zoo: bool) -> String {
    format!(
        "HAKMEM_SHUTTLE_REPLAY={file} cargo test --release -p hakmem-sim{} --test shuttle replay_one -- --nocapture",
        if zoo { " --features zoo" } else { "" }
    )
}

fn display_path(p: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (Ok(p), Ok(root)) = (p.canonicalize(), root.canonicalize()) else {
        return p.display().to_string();
    };
    p.strip_prefix(&root)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| p.display().to_string())
}

/// The comma-separated names of the bugs switched on, if any.
pub fn zoo_names(zoo: Zoo) -> Option<String> {
    let names: Vec<&str> = Bug::ALL
        .into_iter()
        .filter(|&b| zoo.with(b) == zoo)
        .map(Bug::name)
        .collect();
    (!names.is_empty()).then(|| names.join(","))
}

/// Parses `a,b` bug names into a set.
pub fn parse_zoo(names: &str) -> Result<Zoo, String> {
    let mut zoo = Zoo::NONE;
    for n in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        zoo = zoo.with(Bug::from_name(n).ok_or_else(|| format!("unknown zoo bug '{n}'"))?);
    }
    Ok(zoo)
}

// ---------------------------------------------------------------------------
// Recording

/// What the harness knows about the execution under way.
#[derive(Default)]
struct Recording {
    /// Executions started so far.
    executions: usize,
    /// Scheduling decisions of the finished executions.
    steps: usize,
    schedule: Schedule,
    /// The first failure of the current execution: message and schedule.
    failure: Option<(String, Schedule)>,
    /// For `SHUTTLE_ALWAYS_PERSIST_SEED`: what to write before each execution.
    inflight: Option<Inflight>,
}

struct Inflight {
    path: PathBuf,
    scenario: Scenario,
    strategy: Strategy,
    base_seed: u64,
    zoo: Zoo,
}

thread_local! {
    /// The recording of the shuttle run on this OS thread (shuttle runs
    /// every task of an execution on the thread that called `Runner::run`).
    static ACTIVE: RefCell<Option<Rc<RefCell<Recording>>>> = const { RefCell::new(None) };
}

/// A pass-through scheduler that records the current execution's steps.
struct Recorder<S> {
    inner: S,
    rec: Rc<RefCell<Recording>>,
}

impl<S: Scheduler> Scheduler for Recorder<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        let s = self.inner.new_execution()?;
        let mut r = self.rec.borrow_mut();
        r.executions += 1;
        r.steps += r.schedule.len();
        r.schedule = Schedule::new(s.seed);
        r.failure = None;
        if let Some(inf) = &r.inflight {
            let text = inflight_text(inf, r.executions, s.seed);
            if let Err(e) = std::fs::write(&inf.path, text) {
                eprintln!(
                    "SHUTTLE_ALWAYS_PERSIST_SEED: cannot write {}: {e}",
                    inf.path.display()
                );
            }
        }
        Some(s)
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        let t = self.inner.next_task(runnable, current, is_yielding)?;
        self.rec.borrow_mut().schedule.push_task(t);
        Some(t)
    }

    fn next_u64(&mut self) -> u64 {
        self.rec.borrow_mut().schedule.push_random();
        self.inner.next_u64()
    }
}

fn inflight_text(inf: &Inflight, execution: usize, seed: u64) -> String {
    let mut out = format!("# hakmem shuttle in-flight execution   shuttle: {SHUTTLE_VERSION}\n");
    out.push_str(&format!("# scenario: {}\n", inf.scenario));
    out.push_str(&format!("# scheduler: {}\n", inf.strategy));
    if let Some(z) = zoo_names(inf.zoo) {
        out.push_str(&format!("# zoo: {z}\n"));
    }
    out.push_str(&format!("# base-seed: {}\n", inf.base_seed));
    out.push_str(&format!("# execution: {execution}\n"));
    out.push_str(&format!("# seed: {seed}\n"));
    out
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let msg = panic_message(info.payload());
            let at = info
                .location()
                .map(|l| format!(" (at {}:{})", l.file(), l.line()))
                .unwrap_or_default();
            let _ = ACTIVE.try_with(|a| {
                let Ok(a) = a.try_borrow() else { return };
                let Some(rec) = a.as_ref() else { return };
                let Ok(mut r) = rec.try_borrow_mut() else {
                    return;
                };
                if r.failure.is_none() {
                    let s = r.schedule.clone();
                    r.failure = Some((format!("{msg}{at}"), s));
                }
            });
            previous(info);
        }));
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".to_string())
}

/// `I3 SLAB-USED` from `[I3 SLAB-USED] ...`; `PANIC` for other panics,
/// `DEADLOCK` and `MAX-STEPS` for shuttle's own failures.
fn symptom_of(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix('[') {
        if let Some((id, _)) = rest.split_once(']') {
            return id.to_string();
        }
    }
    if msg.starts_with("deadlock") {
        "DEADLOCK".into()
    } else if msg.starts_with("exceeded max_steps") {
        "MAX-STEPS".into()
    } else {
        "PANIC".into()
    }
}

/// Runs `f` under `scheduler` with the recording armed; returns the
/// executions run, or the failure (message, schedule, executions).
fn run_recorded<S: Scheduler + 'static>(
    scheduler: S,
    max_steps: usize,
    inflight: Option<Inflight>,
    f: impl Fn() + Send + Sync + 'static,
) -> Result<(usize, usize), (String, Schedule, usize)> {
    install_hook();
    let rec = Rc::new(RefCell::new(Recording {
        inflight,
        ..Recording::default()
    }));
    let previous = ACTIVE.with(|a| a.replace(Some(rec.clone())));
    let runner = Runner::new(
        Recorder {
            inner: scheduler,
            rec: rec.clone(),
        },
        shuttle_config(max_steps),
    );
    let result = panic::catch_unwind(AssertUnwindSafe(|| runner.run(f)));
    ACTIVE.with(|a| *a.borrow_mut() = previous);
    let mut r = rec.borrow_mut();
    match result {
        Ok(n) => Ok((n, r.steps + r.schedule.len())),
        Err(payload) => {
            let (msg, schedule) = r
                .failure
                .take()
                .unwrap_or_else(|| (panic_message(payload.as_ref()), r.schedule.clone()));
            Err((msg, schedule, r.executions))
        }
    }
}

/// Runs one execution under `scheduler`; `Err` is the failure message.
pub(crate) fn run_once<S: Scheduler + 'static>(
    scheduler: S,
    f: impl Fn() + Send + Sync + 'static,
) -> Result<(), String> {
    run_recorded(scheduler, 1_000_000, None, f)
        .map(|_| ())
        .map_err(|(m, _, _)| m)
}

fn inflight_for(scenario: Scenario, strategy: Strategy, opts: &Options) -> Option<Inflight> {
    let path = std::env::var_os("SHUTTLE_ALWAYS_PERSIST_SEED")?;
    Some(Inflight {
        path: PathBuf::from(path),
        scenario,
        strategy,
        base_seed: opts.seed,
        zoo: opts.zoo,
    })
}

/// Explores `scenario` with `strategy`. On a failure the schedule is written
/// to `opts.persist_dir` (if any) and returned.
pub fn explore(
    scenario: Scenario,
    strategy: Strategy,
    opts: &Options,
) -> Result<Report, Box<Found>> {
    let start = Instant::now();
    let zoo = opts.zoo;
    let inflight = inflight_for(scenario, strategy, opts);
    let body = move || scenario.run(zoo);
    let r = match strategy {
        Strategy::Random => run_recorded(
            RandomScheduler::new_from_seed(opts.seed, opts.iterations),
            opts.max_steps,
            inflight,
            body,
        ),
        Strategy::Pct { depth } => run_recorded(
            PctScheduler::new_from_seed(opts.seed, depth, opts.iterations),
            opts.max_steps,
            inflight,
            body,
        ),
    };
    match r {
        Ok((executions, steps)) => Ok(Report {
            executions,
            steps,
            elapsed: start.elapsed(),
        }),
        Err((message, schedule, execution)) => {
            let mut found = Found {
                scenario,
                strategy,
                base_seed: opts.seed,
                execution,
                seed: schedule.seed,
                symptom: symptom_of(&message),
                message,
                schedule: serialize_schedule(&schedule).replace('\n', ""),
                zoo,
                path: None,
                elapsed: start.elapsed(),
            };
            if let Some(dir) = &opts.persist_dir {
                match persist(dir, &mut found) {
                    Ok(()) => {}
                    Err(e) => eprintln!(
                        "could not write the failing schedule into {}: {e}",
                        dir.display()
                    ),
                }
            }
            Err(Box::new(found))
        }
    }
}

/// Writes `<dir>/<scenario>--<symptom>.schedule` (or `...--<symptom>-N`
/// if taken) and records its path in `found`.
fn persist(dir: &Path, found: &mut Found) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let slug: String = found
        .symptom
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    for n in 1.. {
        let name = if n == 1 {
            format!("{}--{slug}.schedule", found.scenario)
        } else {
            format!("{}--{slug}-{n}.schedule", found.scenario)
        };
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                found.path = Some(path);
                use std::io::Write;
                return file.write_all(found.file_text().as_bytes());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!()
}

/// shuttle's `check_random` on a scenario, with this harness's stacks,
/// recording and persistence; panics with the replay command on failure.
pub fn check_random(scenario: Scenario, opts: &Options) -> Report {
    explore(scenario, Strategy::Random, opts).unwrap_or_else(|f| panic!("{f}"))
}

/// shuttle's `check_pct`, likewise.
pub fn check_pct(scenario: Scenario, depth: usize, opts: &Options) -> Report {
    explore(scenario, Strategy::Pct { depth }, opts).unwrap_or_else(|f| panic!("{f}"))
}

// ---------------------------------------------------------------------------
// Replay

/// Follows a recorded schedule while it fits; if the code has changed and
/// the schedule no longer matches (a task it names is not runnable, or it
/// runs out), finishes the execution with a random scheduler seeded from
/// the schedule, so a replay always runs the scenario to its checks.
struct Replay {
    steps: Vec<Option<TaskId>>,
    pos: usize,
    seed: u64,
    started: bool,
    fallback: SplitMix64,
    diverged: Rc<RefCell<Option<usize>>>,
}

impl Scheduler for Replay {
    fn new_execution(&mut self) -> Option<Schedule> {
        if std::mem::replace(&mut self.started, true) {
            return None;
        }
        Some(Schedule::new(self.seed))
    }

    fn next_task(&mut self, runnable: &[&Task], _: Option<TaskId>, _: bool) -> Option<TaskId> {
        if self.diverged.borrow().is_none() {
            // `Random` steps belong to `next_u64`; skip any left before a task.
            while let Some(None) = self.steps.get(self.pos) {
                self.pos += 1;
            }
            match self.steps.get(self.pos) {
                Some(Some(t)) if runnable.iter().any(|r| r.id() == *t) => {
                    self.pos += 1;
                    return Some(*t);
                }
                _ => *self.diverged.borrow_mut() = Some(self.pos),
            }
        }
        let i = self.fallback.next_u64() as usize % runnable.len();
        Some(runnable[i].id())
    }

    fn next_u64(&mut self) -> u64 {
        if let Some(None) = self.steps.get(self.pos) {
            self.pos += 1;
        }
        self.fallback.next_u64()
    }
}

/// What a repro file says.
#[derive(Clone, Debug)]
pub struct ReproFile {
    pub scenario: Scenario,
    pub strategy: Option<Strategy>,
    pub zoo: Zoo,
    pub seed: Option<u64>,
    pub base_seed: Option<u64>,
    pub execution: Option<usize>,
    pub schedule: Option<Schedule>,
}

impl ReproFile {
    /// Parses a repro file (or an in-flight file, or a bare seed, which
    /// needs `scenario`).
    pub fn parse(text: &str, scenario: Option<Scenario>) -> Result<ReproFile, String> {
        let h = headers(text);
        let get = |k: &str| h.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let scenario = match get("scenario") {
            Some(name) => {
                Scenario::from_name(name).ok_or_else(|| format!("unknown scenario '{name}'"))?
            }
            None => scenario.ok_or("no `# scenario:` header")?,
        };
        let bare = text.trim().parse::<u64>().ok();
        let schedule = match get("schedule") {
            Some(s) if !s.is_empty() => Some(
                deserialize_schedule(s).ok_or("`# schedule:` is not a shuttle 0.9.9 schedule")?,
            ),
            _ => None,
        };
        let num = |k: &str| -> Result<Option<u64>, String> {
            get(k)
                .map(|v| v.parse::<u64>().map_err(|e| format!("`{k}`: {e}")))
                .transpose()
        };
        Ok(ReproFile {
            scenario,
            strategy: match get("scheduler") {
                Some(s) => {
                    Some(Strategy::parse(s).ok_or_else(|| format!("unknown scheduler '{s}'"))?)
                }
                None => None,
            },
            zoo: parse_zoo(get("zoo").unwrap_or(""))?,
            seed: num("seed")?.or(bare),
            base_seed: num("base-seed")?,
            execution: num("execution")?.map(|e| e as usize),
            schedule,
        })
    }

    pub fn read(path: &Path) -> Result<ReproFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        ReproFile::parse(&text, None).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// How a replay went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replayed {
    /// The recorded schedule was followed to the end.
    Exact,
    /// The code no longer matches the schedule from this step on; the rest
    /// of the execution ran under a seeded random scheduler.
    Diverged { at_step: usize },
    /// Replayed from a seed (no schedule in the file).
    FromSeed,
}

/// Replays a repro file with `zoo` switched on (which may differ from the
/// file's). `Err` is the failure message.
pub fn replay(file: &ReproFile, zoo: Zoo) -> Result<Replayed, String> {
    let scenario = file.scenario;
    let body = move || scenario.run(zoo);
    let max_steps = 1_000_000;
    if let Some(s) = &file.schedule {
        let diverged = Rc::new(RefCell::new(None));
        let steps = s
            .steps
            .iter()
            .map(|st| match st {
                ScheduleStep::Task(t) => Some(*t),
                ScheduleStep::Random => None,
            })
            .collect::<Vec<_>>();
        let len = steps.len();
        let sched = Replay {
            steps,
            pos: 0,
            seed: s.seed,
            started: false,
            fallback: SplitMix64::new(s.seed),
            diverged: diverged.clone(),
        };
        run_recorded(sched, max_steps, None, body).map_err(|(m, _, _)| m)?;
        let d = *diverged.borrow();
        return Ok(match d {
            Some(at) if at < len => Replayed::Diverged { at_step: at },
            _ => Replayed::Exact,
        });
    }
    match (file.strategy, file.seed, file.base_seed, file.execution) {
        (Some(Strategy::Pct { depth }), _, Some(base), Some(n)) => {
            run_recorded(
                PctScheduler::new_from_seed(base, depth, n),
                max_steps,
                None,
                body,
            )
            .map_err(|(m, _, _)| m)?;
        }
        (_, Some(seed), _, _) => {
            run_recorded(
                RandomScheduler::new_from_seed(seed, 1),
                max_steps,
                None,
                body,
            )
            .map_err(|(m, _, _)| m)?;
        }
        _ => return Err("the file has neither a schedule nor a seed".into()),
    }
    Ok(Replayed::FromSeed)
}
