//! Plays scenarios: each one against a fresh [`Simulation`] (its own loopback addresses, so
//! scenarios run side by side), step by step, stopping at the first failed expectation.
//!
//! After every action the runner waits for the tenant to settle before it checks anything; world
//! expectations then wait (bounded by [`RunOptions::wait`]) for what they expect. Nothing sleeps
//! a fixed amount.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::expect::{Check, DEFAULT_WAIT, SendRecord};
use super::load::{Action, Change, Scenario, Step, load_file};
use super::report::{Failure, ScenarioReport, Verdict};
use super::select::Partition;
use super::verbose::StepLog;
use crate::sim::Simulation;

/// How scenarios are run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Longest a scenario may take, world start-up included.
    pub timeout: Duration,
    /// Longest a world expectation waits for what it expects.
    pub wait: Duration,
    /// Record what each step did in [`ScenarioReport::log`] (`mailsim run --verbose`).
    pub verbose: bool,
    /// Keep each world's state (trace, mailboxes, peer inboxes, protocol log) under
    /// `DIR/<file stem>/` ([`scenario_state_dir`]), in the layout `mailsim serve --state-dir` writes and `mailsim trace`
    /// reads.
    pub state_dir: Option<PathBuf>,
    /// Only this partition of the selected files ([`run_paths`]).
    pub partition: Option<Partition>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(60), wait: DEFAULT_WAIT, verbose: false, state_dir: None, partition: None }
    }
}

/// Runs one scenario in a world of its own.
pub async fn run_scenario(scenario: &Scenario, options: &RunOptions) -> ScenarioReport {
    let started = Instant::now();
    let progress = AtomicUsize::new(0);
    let log = StepLog::new(options.verbose);
    let verdict = match tokio::time::timeout(options.timeout, play(scenario, options, &progress, &log)).await {
        Ok(Ok(())) => Verdict::Passed,
        Ok(Err(failure)) => Verdict::Failed(Box::new(failure)),
        Err(_) => {
            let at = progress.load(Ordering::Relaxed);
            let step = scenario.steps.iter().find(|s| s.number == at);
            Verdict::Failed(Box::new(Failure {
                step: step.map(|s| s.number),
                step_label: step.map(Step::label).unwrap_or_else(|| "world".to_string()),
                location: format!("{}:{}", scenario.file, step.map(|s| s.line).unwrap_or(1)),
                field: "timeout".to_string(),
                expected: format!("the scenario finishes within {} s", options.timeout.as_secs_f64()),
                actual: match step {
                    Some(s) => format!("still busy with {} when the time was up", s.label()),
                    None => "the world was still starting when the time was up".to_string(),
                },
                ..Failure::default()
            }))
        }
    };
    ScenarioReport {
        name: scenario.name.clone(),
        file: scenario.file.clone(),
        duration: started.elapsed(),
        verdict,
        warnings: scenario.warnings.iter().map(ToString::to_string).collect(),
        log: log.take(),
    }
}

/// The directory `--state-dir DIR` gives a scenario: `DIR/<file stem>` (`00-lockdown-5.7.51` for
/// `scenarios/00-lockdown-5.7.51.toml`: unique in a directory, where two files may share a
/// `[scenario] name`), with anything but letters, digits, `.`, `-` and `_` replaced so that it
/// cannot leave `DIR`.
pub fn scenario_state_dir(dir: &Path, scenario: &Scenario) -> PathBuf {
    let name = stem(Path::new(&scenario.file));
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let safe = if safe.trim_matches('.').is_empty() { "scenario".to_string() } else { safe };
    dir.join(safe)
}

async fn play(scenario: &Scenario, options: &RunOptions, progress: &AtomicUsize, log: &StepLog) -> Result<(), Failure> {
    let mut world = scenario.world.clone();
    if let Some(dir) = &options.state_dir {
        let dir = scenario_state_dir(dir, scenario);
        // A kept state directory holds one run: last run's trace would be read as this one's.
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            return Err(Failure {
                step_label: "world".to_string(),
                location: format!("{}:1", scenario.file),
                field: "world".to_string(),
                expected: format!("{} can be emptied for this run", dir.display()),
                actual: e.to_string(),
                ..Failure::default()
            });
        }
        world.state_dir = Some(dir);
    }
    let sim = Simulation::start(world).await.map_err(|e| Failure {
        step_label: "world".to_string(),
        location: format!("{}:1", scenario.file),
        field: "world".to_string(),
        expected: "the world starts".to_string(),
        actual: format!("{:#}", anyhow::Error::from(e)),
        ..Failure::default()
    })?;
    log.world(&sim);
    let result = play_steps(&sim, scenario, options, progress, log).await;
    sim.stop().await;
    result
}

fn step_failure(
    scenario: &Scenario,
    step: &Step,
    field: String,
    line: usize,
    expected: &str,
    actual: String,
) -> Failure {
    Failure {
        step: Some(step.number),
        step_label: step.label(),
        location: format!("{}:{line}", scenario.file),
        field,
        expected: expected.to_string(),
        actual,
        ..Failure::default()
    }
}

/// The Message-ID header of a complete message, if it has one.
fn header_message_id(data: &str) -> Option<String> {
    for line in data.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("message-id")
        {
            return Some(value.trim().to_string());
        }
    }
    None
}

async fn play_steps(
    sim: &Simulation,
    scenario: &Scenario,
    options: &RunOptions,
    progress: &AtomicUsize,
    log: &StepLog,
) -> Result<(), Failure> {
    for step in &scenario.steps {
        progress.store(step.number, Ordering::Relaxed);
        // The step log's trace rows: only read (a copy of the trace) when the log records.
        let step_trace_start = if log.enabled() { sim.trace().len() } else { 0 };
        log.step(scenario, step);
        let mut send_record = None;
        match &step.action {
            Action::Send(spec) => {
                let trace_start = sim.trace().len();
                let outcome = sim.send(spec).await.map_err(|e| format!("{:#}", anyhow::Error::from(e)));
                sim.settled().await;
                let mut ids = Vec::new();
                if let Ok(o) = &outcome {
                    ids.push(o.message_id.clone());
                }
                if let Some(id) = spec.data.as_deref().and_then(header_message_id) {
                    ids.push(id);
                }
                let events = sim
                    .trace()
                    .into_iter()
                    .skip(trace_start)
                    .filter(|e| e.message_id.is_empty() || ids.contains(&e.message_id))
                    .collect();
                let record = SendRecord { host: spec.from_host.clone(), outcome, events };
                log.send(&record);
                if let Err(e) = &record.outcome
                    && !step.expect.iter().any(|x| matches!(x.check, Check::Send(_)))
                {
                    return Err(step_failure(
                        scenario,
                        step,
                        format!("step[{}].send", step.number),
                        step.line,
                        "the send completes",
                        e.clone(),
                    ));
                }
                send_record = Some(record);
            }
            Action::Advance(by) => sim.advance(*by).await,
            Action::Change(changes) => {
                for change in changes {
                    if let Err(e) = apply(sim, change).await {
                        return Err(step_failure(
                            scenario,
                            step,
                            format!("step[{}].change", step.number),
                            step.line,
                            "the change applies",
                            format!("{e:#}"),
                        ));
                    }
                }
                sim.settled().await;
            }
            Action::Check => {
                sim.settled().await;
            }
        }
        if log.enabled() {
            log.trace(sim.trace().get(step_trace_start..).unwrap_or_default());
        }
        for expect in &step.expect {
            let result = match (&expect.check, &send_record) {
                (Check::Send(check), Some(record)) => check.check(record),
                (Check::Send(_), None) => unreachable!("send checks only load on send steps"),
                (Check::World(check), _) => check.check(sim, options.wait).await,
            };
            log.expect(expect, result.as_ref().err().map(|m| m.actual.as_str()));
            if let Err(m) = result {
                let mut f = step_failure(scenario, step, expect.field.clone(), expect.line, &m.expected, m.actual);
                f.transcript_title = m.transcript_title;
                f.transcript = m.transcript;
                return Err(f);
            }
        }
    }
    Ok(())
}

/// Plays `scenario`'s steps on a world that is already running (the HTTP API's steps, `serve
/// SCENARIO --play`), exactly as [`run_scenario`] plays them, stopping at the first failure.
pub async fn play_on(sim: &Simulation, scenario: &Scenario, options: &RunOptions) -> Result<(), Failure> {
    play_steps(sim, scenario, options, &AtomicUsize::new(0), &StepLog::new(false)).await
}

/// Carries out one change on a running world.
pub async fn apply(sim: &Simulation, change: &Change) -> anyhow::Result<()> {
    match change {
        Change::Tenant { tenant, .. } => sim.set_tenant(Arc::clone(tenant)),
        Change::MoveHost { host, address } => sim.move_host(host, *address)?,
        Change::HostCert { host, cert } => sim.set_host_cert(host, cert.clone())?,
        Change::Peer { host, script, relay_to_tenant } => {
            let mut script = (**script).clone();
            if *relay_to_tenant {
                script.forward_to = Some(sim.tenant_addr());
                script.relay = Some(sim.relay_options(host)?);
            }
            sim.peer(host)?.set_script(script).with_context(|| format!("the new script of host {host:?}"))?;
        }
        Change::Mx { domain, records } => {
            sim.dns().set_mx(domain, records.iter().map(|(p, e)| (*p, e.as_str())))?;
        }
        Change::A { name, addresses } => sim.dns().update(|z| z.set_a(name, addresses))?,
        Change::DnsFault { name, fault: Some(fault) } => sim.dns().set_fault(name, *fault),
        Change::DnsFault { name, fault: None } => sim.dns().clear_fault(name),
        Change::DnsFaultFor { name, record_type, fault: Some(fault) } => {
            sim.dns().set_fault_for(name, record_type, *fault)?
        }
        Change::DnsFaultFor { name, record_type, fault: None } => sim.dns().clear_fault_for(name, record_type)?,
        Change::Txt { name, records } => sim.dns().update(|z| z.set_txt(name, records))?,
    }
    if matches!(
        change,
        Change::Mx { .. }
            | Change::A { .. }
            | Change::DnsFault { .. }
            | Change::DnsFaultFor { .. }
            | Change::Txt { .. }
    ) {
        sim.dns_changed();
    }
    Ok(())
}

/// The scenario files under `paths`: files as given, and the `*.toml` files of directories (not
/// recursive), each directory's in name order.
pub fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            // Issue 14: `mailsim run some-dir.toml/` ran nothing and printed `0 passed, 0 failed`.
            if path.extension().is_some_and(|e| e == "toml") {
                anyhow::bail!("{}: is a directory, not a scenario file", path.display());
            }
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
                .collect();
            found.sort();
            if found.is_empty() {
                anyhow::bail!("{}: no scenario files (*.toml) in this directory", path.display());
            }
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            anyhow::bail!("{}: no such file or directory", path.display());
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    Ok(files)
}

/// A file that loads but has nothing to play: an error, so that a CI job cannot pass on it.
fn no_steps(scenario: &Scenario) -> mailsim_core::diagnostics::ConfigError {
    mailsim_core::diagnostics::ConfigError {
        file: scenario.file.clone(),
        line: 1,
        column: 1,
        field: "step".to_string(),
        message: "no steps: the scenario has nothing to run".to_string(),
        hint: Some(
            "add a [[step]] (send, advance, change or check, with its expect); `mailsim serve FILE` brings up a \
             world without playing steps"
                .to_string(),
        ),
    }
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default()
}

/// Loads every scenario under `paths` (all of them before any world starts), keeps those whose
/// name contains `filter` (and, with [`RunOptions::partition`], those of the partition), runs
/// them `jobs` at a time, and calls `on_report` for each as soon as it is done (malformed ones
/// first); the reports come back in file order. Malformed files and files without steps become
/// malformed reports; an empty selection is an error.
pub async fn run_paths(
    paths: &[PathBuf],
    filter: Option<&str>,
    jobs: usize,
    options: &RunOptions,
    mut on_report: impl FnMut(&ScenarioReport),
) -> anyhow::Result<Vec<ScenarioReport>> {
    let files = collect_files(paths)?;
    let found = files.len();
    let mut selected = Vec::new();
    for file in files {
        let loaded = load_file(&file)
            .and_then(|scenario| if scenario.steps.is_empty() { Err(no_steps(&scenario)) } else { Ok(scenario) });
        let name = match &loaded {
            Ok(scenario) => scenario.name.clone(),
            Err(_) => stem(&file),
        };
        if filter.is_none_or(|f| name.contains(f)) {
            selected.push((file, name, loaded));
        }
    }
    if selected.is_empty() {
        anyhow::bail!(
            "no scenario to run: --filter {:?} matches none of the {found} scenario file(s)",
            filter.unwrap_or_default()
        );
    }
    let before_partition = selected.len();
    if let Some(partition) = &options.partition {
        selected = partition.select(selected);
        anyhow::ensure!(
            !selected.is_empty(),
            "no scenario to run: partition {partition} takes none of the {before_partition} selected scenario file(s)"
        );
    }
    if options.state_dir.is_some() {
        let mut stems = std::collections::HashMap::new();
        for (file, _, _) in &selected {
            if let Some(other) = stems.insert(stem(file), file) {
                anyhow::bail!(
                    "{} and {}: two scenario files of the same name would share one --state-dir directory; run them \
                     separately",
                    other.display(),
                    file.display()
                );
            }
        }
    }
    let mut slots: Vec<Option<ScenarioReport>> = Vec::new();
    let mut pending = Vec::new();
    for (file, name, loaded) in selected {
        match loaded {
            Ok(scenario) => {
                pending.push((slots.len(), scenario));
                slots.push(None);
            }
            Err(e) => {
                let report = ScenarioReport {
                    name,
                    file: file.display().to_string(),
                    duration: Duration::ZERO,
                    verdict: Verdict::Malformed(e),
                    warnings: Vec::new(),
                    log: Vec::new(),
                };
                on_report(&report);
                slots.push(Some(report));
            }
        }
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut running = tokio::task::JoinSet::new();
    for (index, scenario) in pending {
        let permits = permits.clone();
        let options = options.clone();
        running.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
            let (name, file) = (scenario.name.clone(), scenario.file.clone());
            let started = Instant::now();
            let report = match tokio::spawn(async move { run_scenario(&scenario, &options).await }).await {
                Ok(report) => report,
                Err(e) => ScenarioReport {
                    name,
                    file: file.clone(),
                    duration: started.elapsed(),
                    verdict: Verdict::Failed(Box::new(Failure {
                        step_label: "runner".to_string(),
                        location: file,
                        field: "runner".to_string(),
                        expected: "the scenario runs to its end".to_string(),
                        actual: format!("the runner task failed: {e}"),
                        ..Failure::default()
                    })),
                    warnings: Vec::new(),
                    log: Vec::new(),
                },
            };
            (index, report)
        });
    }
    while let Some(done) = running.join_next().await {
        let (index, report) = done.context("a scenario task")?;
        on_report(&report);
        slots[index] = Some(report);
    }
    Ok(slots.into_iter().map(|s| s.expect("every scenario reported")).collect())
}
