//! One pod's worker: the kubelet's pod lifecycle. Volumes, then init containers in order, then the
//! containers; restarts per `restartPolicy` with crash-loop back-off; `activeDeadlineSeconds`; the
//! phase (Pending → Running → Succeeded/Failed) and status published through `pods/status`; and
//! graceful deletion (SIGTERM to each process group, the grace period, SIGKILL, then the pod is
//! deleted with `gracePeriodSeconds=0`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::Ctx;
use super::container::{self, Creds, MountSpec, ProcessSpec, SpawnError, signal_group};
use super::env::{self, Objects};
use super::events::{self, Source};
use super::logs::{self, LogFile, Stream};
use super::runtime::{PodKey, Running};
use super::status::{self, ContainerView, State, Terminated};
use super::time::now;
use super::volumes::{self, HostVolume};

/// How soon a status write the API server did not take is tried again.
const STATUS_RETRY: Duration = Duration::from_millis(500);

/// A container process ended.
#[derive(Debug)]
pub struct Exit {
    init: bool,
    index: usize,
    instance: u32,
    code: i32,
    at: Timestamp,
}

struct Slot {
    spec: Container,
    view: ContainerView,
    pgid: Option<i32>,
    instance: u32,
    started_at: Option<Timestamp>,
    next_start: Option<Instant>,
    backoff: Duration,
}

impl Slot {
    fn new(spec: &Container, reason: &str) -> Slot {
        Slot {
            view: ContainerView {
                name: spec.name.clone(),
                image: spec.image.clone().unwrap_or_default(),
                state: State::waiting(reason),
                last: None,
                restart_count: 0,
                container_id: None,
            },
            spec: spec.clone(),
            pgid: None,
            instance: 0,
            started_at: None,
            next_start: None,
            backoff: Duration::ZERO,
        }
    }
    fn succeeded(&self) -> bool {
        matches!(&self.view.state, State::Terminated(t) if t.exit_code == 0)
    }
}

struct Worker {
    ctx: Arc<Ctx>,
    api: Api<Pod>,
    pod: Pod,
    key: PodKey,
    uid: String,
    dir: PathBuf,
    init: Vec<Slot>,
    main: Vec<Slot>,
    volumes: Option<HashMap<String, HostVolume>>,
    phase: String,
    reason: Option<String>,
    message: Option<String>,
    start_time: Timestamp,
    cond_times: BTreeMap<String, (bool, Timestamp)>,
    last_published: Option<Value>,
    last_warning: Option<String>,
    exits: mpsc::UnboundedSender<Exit>,
    stopping: bool,
}

fn random_hex(n: usize) -> String {
    let mut out = String::new();
    let mut x = now().as_nanosecond() as u64 ^ (std::process::id() as u64) << 32;
    while out.len() < n {
        // xorshift over a time seed: unique enough for ids.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push_str(&format!("{x:016x}"));
    }
    out.truncate(n);
    out
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

/// The phase from container states, as the kubelet's `getPhase`.
fn phase_of(init: &[Slot], main: &[Slot], policy: &str) -> &'static str {
    if init.iter().any(|s| !s.succeeded()) {
        return "Pending";
    }
    let (mut running, mut waiting_new, mut stopped, mut failed) = (0, 0, 0, 0);
    for s in main {
        match &s.view.state {
            State::Running(_) => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code != 0 {
                    failed += 1;
                }
            }
            State::Waiting { .. } if s.view.last.is_some() => {
                stopped += 1;
                if s.view.last.as_ref().is_some_and(|t| t.exit_code != 0) {
                    failed += 1;
                }
            }
            State::Waiting { .. } => waiting_new += 1,
        }
    }
    if waiting_new > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped == 0 {
        "Pending"
    } else {
        match policy {
            "Always" => "Running",
            "OnFailure" if failed > 0 => "Running",
            _ if failed > 0 => "Failed",
            _ => "Succeeded",
        }
    }
}

fn creds_of(pod: &Pod, c: &Container) -> Result<Creds, String> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = c.security_context.as_ref();
    let uid = csc
        .and_then(|s| s.run_as_user)
        .or_else(|| psc.and_then(|s| s.run_as_user));
    let gid = csc
        .and_then(|s| s.run_as_group)
        .or_else(|| psc.and_then(|s| s.run_as_group));
    let non_root = csc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| psc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    if non_root && uid.unwrap_or(0) == 0 {
        return Err(if uid.is_some() {
            "container's runAsUser breaks non-root policy".to_string()
        } else {
            "container has runAsNonRoot and image will run as root".to_string()
        });
    }
    let mut groups: Vec<u32> = psc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|g| g as u32)
        .collect();
    if let Some(fs) = psc.and_then(|s| s.fs_group) {
        groups.push(fs as u32);
    }
    let gid = gid.unwrap_or(0) as u32;
    if !groups.contains(&gid) {
        groups.insert(0, gid);
    }
    Ok(Creds {
        uid: uid.unwrap_or(0) as u32,
        gid,
        groups,
    })
}

enum StartFailure {
    /// Wait and retry (config errors): (reason, message).
    Wait(&'static str, String),
}

impl Worker {
    fn slots(&mut self, init: bool) -> &mut Vec<Slot> {
        if init { &mut self.init } else { &mut self.main }
    }

    fn all_slots(&self) -> impl Iterator<Item = &Slot> {
        self.init.iter().chain(self.main.iter())
    }

    fn set_waiting(&mut self, reason: &str, message: Option<String>, only_new: bool) {
        for s in self.init.iter_mut().chain(self.main.iter_mut()) {
            if matches!(s.view.state, State::Waiting { .. }) && (!only_new || s.view.last.is_none())
            {
                s.view.state = State::Waiting {
                    reason: reason.into(),
                    message: message.clone(),
                };
            }
        }
    }

    async fn warn_once(&mut self, reason: &str, message: &str) {
        if self.last_warning.as_deref() != Some(message) {
            self.last_warning = Some(message.to_string());
            events::record(
                &self.ctx.client,
                &self.pod,
                Source::Kubelet(&self.ctx.opts.name),
                true,
                reason,
                message,
            )
            .await;
        }
    }

    /// Advance the lifecycle; returns when to look again.
    async fn step(&mut self) -> Option<Instant> {
        if self.phase == "Succeeded" || self.phase == "Failed" {
            return None;
        }
        let mut wake: Option<Instant> = None;
        let at = |w: &mut Option<Instant>, t: Instant| *w = Some(w.map_or(t, |x| x.min(t)));
        if let Some(ads) = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
        {
            let elapsed = now().duration_since(self.start_time).as_secs_f64();
            if elapsed >= ads as f64 {
                return None; // the caller handles the deadline
            }
            at(
                &mut wake,
                Instant::now() + Duration::from_secs_f64((ads as f64 - elapsed).max(0.0)),
            );
        }
        if self.volumes.is_none() {
            let mut objects = Objects::new(&self.ctx.client, &self.key.namespace);
            match volumes::prepare(&self.ctx.client, &self.pod, &self.dir, &mut objects).await {
                Ok(v) => self.volumes = Some(v),
                Err(e) => {
                    let msg = e.to_string();
                    self.set_waiting("ContainerCreating", None, false);
                    self.warn_once("FailedMount", &msg).await;
                    at(&mut wake, Instant::now() + Duration::from_secs(1));
                    return wake;
                }
            }
            for s in &mut self.main {
                if !self.init.is_empty() {
                    s.view.state = State::waiting("PodInitializing");
                }
            }
        }
        // Init containers, one at a time.
        for i in 0..self.init.len() {
            if self.init[i].succeeded() {
                continue;
            }
            if self.init[i].pgid.is_some() {
                return wake;
            }
            if matches!(self.init[i].view.state, State::Terminated(_)) {
                return wake; // failed for good (restartPolicy Never): the phase says Failed
            }
            match self.init[i].next_start {
                Some(t) if t > Instant::now() => {
                    at(&mut wake, t);
                    return wake;
                }
                _ => {
                    self.start(true, i).await;
                    if let Some(t) = self.init[i].next_start.filter(|t| *t > Instant::now()) {
                        at(&mut wake, t);
                    }
                    return wake;
                }
            }
        }
        for i in 0..self.main.len() {
            let s = &self.main[i];
            if s.pgid.is_some() || matches!(s.view.state, State::Terminated(_)) {
                continue;
            }
            match s.next_start {
                Some(t) if t > Instant::now() => at(&mut wake, t),
                _ => {
                    self.start(false, i).await;
                    if let Some(t) = self.main[i].next_start.filter(|t| *t > Instant::now()) {
                        at(&mut wake, t);
                    }
                }
            }
        }
        wake
    }

    fn policy(&self) -> String {
        restart_policy(&self.pod).to_string()
    }

    fn update_phase(&mut self) {
        if self.phase == "Succeeded" || self.phase == "Failed" {
            return;
        }
        let policy = self.policy();
        let init_failed = self
            .init
            .iter()
            .any(|s| matches!(&s.view.state, State::Terminated(t) if t.exit_code != 0));
        self.phase = if init_failed {
            "Failed".into()
        } else {
            phase_of(&self.init, &self.main, &policy).into()
        };
    }

    async fn prepare_process(&mut self, init: bool, i: usize) -> Result<ProcessSpec, StartFailure> {
        let spec = self.slots(init)[i].spec.clone();
        let creds = creds_of(&self.pod, &spec)
            .map_err(|m| StartFailure::Wait("CreateContainerConfigError", m))?;
        let mut objects = Objects::new(&self.ctx.client, &self.key.namespace);
        let mut env = env::resolve(&mut objects, &self.pod, &spec, creds.uid)
            .await
            .map_err(|e| StartFailure::Wait("CreateContainerConfigError", e.to_string()))?;
        env::add_image_path(&mut env, spec.image.as_deref(), &self.ctx.opts.images);
        env::add_service_env(&mut env, self.ctx.opts.api_server.as_ref());
        let mut argv = env::expand_all(spec.command.as_deref().unwrap_or_default(), &env);
        argv.extend(env::expand_all(
            spec.args.as_deref().unwrap_or_default(),
            &env,
        ));
        if argv.is_empty() {
            return Err(StartFailure::Wait(
                "CreateContainerError",
                format!(
                    "failed to generate container {:?} spec: failed to generate spec: no command specified",
                    spec.name
                ),
            ));
        }
        let mut mounts = Vec::new();
        let volumes = self.volumes.clone().unwrap_or_default();
        for m in spec.volume_mounts.iter().flatten() {
            let Some(v) = volumes.get(&m.name) else {
                return Err(StartFailure::Wait(
                    "CreateContainerConfigError",
                    format!(
                        "cannot find volume {:?} to mount into container {:?}",
                        m.name, spec.name
                    ),
                ));
            };
            let sub = match (&m.sub_path, &m.sub_path_expr) {
                (Some(s), _) if !s.is_empty() => Some(s.clone()),
                (_, Some(e)) => Some(env::expand_all(std::slice::from_ref(e), &env).remove(0)),
                _ => None,
            };
            let source = volumes::mount_source(v, sub.as_deref())
                .map_err(|e| StartFailure::Wait("CreateContainerConfigError", e))?;
            mounts.push(MountSpec {
                source,
                target: PathBuf::from(&m.mount_path),
                read_only: m.read_only.unwrap_or(false) || v.read_only,
            });
        }
        Ok(ProcessSpec {
            argv,
            env,
            working_dir: spec
                .working_dir
                .as_ref()
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            creds: Some(creds),
            mounts,
            hostname: Some(
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.hostname.clone())
                    .unwrap_or_else(|| self.key.name.clone()),
            ),
            enter_mount_ns_of: None,
            stdin: spec.stdin.unwrap_or(false),
        })
    }

    async fn start(&mut self, init: bool, i: usize) {
        let node = self.ctx.opts.name.clone();
        let process = match self.prepare_process(init, i).await {
            Ok(p) => p,
            Err(StartFailure::Wait(reason, message)) => {
                let slot = &mut self.slots(init)[i];
                slot.view.state = State::Waiting {
                    reason: reason.into(),
                    message: Some(message.clone()),
                };
                slot.next_start = Some(Instant::now() + Duration::from_secs(1));
                self.warn_once("Failed", &format!("Error: {message}")).await;
                return;
            }
        };
        let name = self.slots(init)[i].spec.name.clone();
        let restart = self.slots(init)[i].view.restart_count;
        let log = match LogFile::create(
            &self
                .dir
                .join("logs")
                .join(&name)
                .join(format!("{restart}.log")),
        ) {
            Ok(l) => l,
            Err(e) => {
                self.record_start_error(init, i, format!("failed to create container log: {e}"));
                return;
            }
        };
        let mut child = match container::spawn(&process, &self.ctx.processes) {
            Ok(c) => c,
            Err(e) => {
                log.finish();
                self.ctx
                    .runtime
                    .container(&self.key, &self.uid, &name, |r| r.logs.push(log));
                let msg = match &e {
                    SpawnError::NotFound { .. } | SpawnError::Io(_) => format!(
                        "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: {e}: unknown"
                    ),
                    SpawnError::NoCommand | SpawnError::Nul(_) | SpawnError::Namespace { .. } => {
                        e.to_string()
                    }
                };
                self.record_start_error(init, i, msg);
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        let pgid = pid as i32;
        let (tap, _) = broadcast::channel(256);
        let stdin = child
            .stdin
            .take()
            .map(|s| Arc::new(tokio::sync::Mutex::new(Some(s))));
        let started = now();
        let container_id = format!("containerd://{}", random_hex(64));
        let instance = {
            let slot = &mut self.slots(init)[i];
            slot.instance += 1;
            slot.pgid = Some(pgid);
            slot.started_at = Some(started);
            slot.view.state = State::Running(started);
            slot.view.container_id = Some(container_id);
            slot.next_start = None;
            slot.instance
        };
        let running = Running {
            pid,
            env: process.env.clone(),
            working_dir: process.working_dir.clone(),
            creds: process.creds.clone(),
            tap: tap.clone(),
            stdin,
            stdin_once: self.slots(init)[i].spec.stdin_once.unwrap_or(false),
        };
        self.ctx
            .runtime
            .container(&self.key, &self.uid, &name, |r| {
                r.logs.push(log.clone());
                r.running = Some(running);
                r.waiting = None;
            });
        let out = child
            .stdout
            .take()
            .map(|o| tokio::spawn(logs::capture(o, Stream::Stdout, log.clone(), tap.clone())));
        let err = child
            .stderr
            .take()
            .map(|o| tokio::spawn(logs::capture(o, Stream::Stderr, log.clone(), tap.clone())));
        let exits = self.exits.clone();
        let table = self.ctx.processes.clone();
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(s) => container::exit_code(s),
                Err(_) => 255,
            };
            // A container ends with its main process: the rest of its process group goes too.
            signal_group(pgid, libc::SIGKILL);
            table.remove(pgid);
            for t in [out, err].into_iter().flatten() {
                let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
            }
            log.finish();
            drop(tap);
            let _ = exits.send(Exit {
                init,
                index: i,
                instance,
                code,
                at: now(),
            });
        });
        events::record(
            &self.ctx.client,
            &self.pod,
            Source::Kubelet(&node),
            false,
            "Started",
            &format!("Started container {name}"),
        )
        .await;
    }

    fn record_start_error(&mut self, init: bool, i: usize, message: String) {
        let at = now();
        let slot = &mut self.slots(init)[i];
        slot.instance += 1;
        let term = Terminated {
            exit_code: 128,
            reason: "StartError".into(),
            message: Some(message),
            started_at: None,
            finished_at: at,
            container_id: Some(format!("containerd://{}", random_hex(64))),
        };
        slot.view.container_id = term.container_id.clone();
        self.after_exit(init, i, term);
    }

    fn on_exit(&mut self, e: Exit) {
        let slot = &mut self.slots(e.init)[e.index];
        if slot.instance != e.instance {
            return;
        }
        slot.pgid = None;
        let term = Terminated {
            exit_code: e.code,
            reason: if e.code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            message: None,
            started_at: slot.started_at,
            finished_at: e.at,
            container_id: slot.view.container_id.clone(),
        };
        let name = slot.spec.name.clone();
        self.ctx
            .runtime
            .container(&self.key, &self.uid, &name, |r| r.running = None);
        self.after_exit(e.init, e.index, term);
    }

    /// Record an ended instance and decide about a restart.
    fn after_exit(&mut self, init: bool, i: usize, term: Terminated) {
        let policy = self.policy();
        let base = self.ctx.opts.restart_backoff;
        let max = self.ctx.opts.max_restart_backoff;
        let stopping = self.stopping;
        let pod_name = format!("{}_{}({})", self.key.name, self.key.namespace, self.uid);
        let slot = &mut self.slots(init)[i];
        let restart = !stopping
            && match policy.as_str() {
                "Always" => !init || term.exit_code != 0,
                "OnFailure" => term.exit_code != 0,
                _ => false,
            };
        if !restart {
            slot.view.state = State::Terminated(term);
            return;
        }
        let delay = slot.backoff;
        slot.backoff = if delay.is_zero() {
            base
        } else {
            (delay * 2).min(max)
        };
        slot.view.restart_count += 1;
        slot.view.last = Some(term);
        slot.next_start = Some(Instant::now() + delay);
        slot.view.state = if delay.is_zero() {
            State::waiting("ContainerCreating")
        } else {
            State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container={} pod={pod_name}",
                    delay.as_secs(),
                    slot.spec.name
                )),
            }
        };
    }

    fn render(&mut self) -> Value {
        let init: Vec<ContainerView> = self.init.iter().map(|s| s.view.clone()).collect();
        let main: Vec<ContainerView> = self.main.iter().map(|s| s.view.clone()).collect();
        let conds = status::conditions(self.volumes.is_some(), &init, &main, &self.phase);
        let conditions = status::stamp(&conds, &mut self.cond_times, now());
        let mut st = json!({
            "phase": self.phase,
            "reason": self.reason,
            "message": self.message,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": super::time::api_time(self.start_time),
            "conditions": conditions,
            "containerStatuses": main.iter().map(status::container_status).collect::<Vec<_>>(),
        });
        if !init.is_empty() {
            st["initContainerStatuses"] = json!(
                init.iter()
                    .map(status::container_status)
                    .collect::<Vec<_>>()
            );
        }
        st
    }

    /// Writes the status if it changed; `false` when the write failed (the API server did not
    /// take it: the worker tries again soon, as a kubelet's status manager does).
    async fn publish(&mut self) -> bool {
        self.update_phase();
        let st = self.render();
        for s in self.init.iter().chain(self.main.iter()) {
            let waiting = match &s.view.state {
                State::Waiting { reason, .. } => Some(reason.clone()),
                _ => None,
            };
            self.ctx
                .runtime
                .container(&self.key, &self.uid, &s.spec.name, |r| r.waiting = waiting);
        }
        if self.last_published.as_ref() == Some(&st) {
            return true;
        }
        match self
            .api
            .patch_status(
                &self.key.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": st.clone()})),
            )
            .await
        {
            Ok(_) => self.last_published = Some(st),
            Err(kube::Error::Api(e)) if e.code == 404 => self.last_published = Some(st),
            Err(e) => {
                tracing::warn!(
                    "status of pod {}/{}: {e}",
                    self.key.namespace,
                    self.key.name
                );
                return false;
            }
        }
        true
    }

    /// Stop every running container: SIGTERM to its group, `grace`, then SIGKILL.
    async fn kill_all(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Exit>,
        grace: Duration,
        announce: bool,
    ) {
        self.stopping = true;
        for s in self.init.iter_mut().chain(self.main.iter_mut()) {
            s.next_start = None;
            if s.pgid.is_none()
                && matches!(s.view.state, State::Waiting { .. })
                && s.view.last.is_some()
            {
                // Backing off: it stays down, as its last instance ended.
                if let Some(last) = s.view.last.clone() {
                    s.view.state = State::Terminated(last);
                }
            }
        }
        let running: Vec<(String, i32)> = self
            .all_slots()
            .filter_map(|s| s.pgid.map(|g| (s.spec.name.clone(), g)))
            .collect();
        for (name, g) in &running {
            signal_group(*g, libc::SIGTERM);
            if announce {
                events::record(
                    &self.ctx.client,
                    &self.pod,
                    Source::Kubelet(&self.ctx.opts.name),
                    false,
                    "Killing",
                    &format!("Stopping container {name}"),
                )
                .await;
            }
        }
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        let mut killed = false;
        while self.all_slots().any(|s| s.pgid.is_some()) {
            tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => self.on_exit(e),
                    None => break,
                },
                _ = &mut deadline, if !killed => {
                    killed = true;
                    for g in self.all_slots().filter_map(|s| s.pgid) {
                        signal_group(g, libc::SIGKILL);
                    }
                }
            }
        }
    }

    async fn delete_from_api(&self) {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        for _ in 0..10 {
            match self.api.delete(&self.key.name, &dp).await {
                Ok(_) => return,
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return,
                Err(e) => {
                    tracing::warn!("deleting pod {}/{}: {e}", self.key.namespace, self.key.name);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    fn cleanup(&self) {
        self.ctx.runtime.remove(&self.key, &self.uid);
        if !self.ctx.opts.keep_data {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Run the worker of one pod until the pod is gone from the API. `updates` carries the latest pod
/// object, `None` once it is deleted.
pub async fn run(ctx: Arc<Ctx>, pod: Pod, mut updates: watch::Receiver<Option<Pod>>) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let existing_phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
        .unwrap_or_else(now);
    let (exits, mut rx) = mpsc::unbounded_channel();
    let mut w = Worker {
        api: Api::namespaced(ctx.client.clone(), &ns),
        dir: ctx.pods_dir().join(&uid),
        key: PodKey {
            namespace: ns,
            name,
        },
        init: spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| Slot::new(c, "PodInitializing"))
            .collect(),
        main: spec
            .containers
            .iter()
            .map(|c| Slot::new(c, "ContainerCreating"))
            .collect(),
        uid,
        ctx,
        pod,
        volumes: None,
        phase: if existing_phase == "Succeeded" || existing_phase == "Failed" {
            existing_phase
        } else {
            "Pending".into()
        },
        reason: None,
        message: None,
        start_time,
        cond_times: BTreeMap::new(),
        last_published: None,
        last_warning: None,
        exits,
        stopping: false,
    };
    for c in w
        .pod
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
    {
        if let Some(t) = &c.last_transition_time {
            w.cond_times
                .insert(c.type_.clone(), (c.status == "True", t.0));
        }
    }
    let adopted_terminal = w.phase == "Succeeded" || w.phase == "Failed";
    for s in &mut w.init {
        s.view.state = State::waiting("PodInitializing");
    }
    loop {
        let latest = updates.borrow_and_update().clone();
        let Some(p) = latest else {
            w.kill_all(&mut rx, grace_of(&w.pod).min(Duration::from_secs(2)), false)
                .await;
            w.cleanup();
            return;
        };
        w.pod = p;
        if w.pod.metadata.deletion_timestamp.is_some() {
            if !adopted_terminal {
                w.kill_all(&mut rx, grace_of(&w.pod), true).await;
                if w.phase != "Succeeded" && w.phase != "Failed" {
                    let failed = w
                        .all_slots()
                        .any(|s| matches!(&s.view.state, State::Terminated(t) if t.exit_code != 0));
                    w.phase = if failed {
                        "Failed".into()
                    } else {
                        "Succeeded".into()
                    };
                }
                w.publish().await;
            }
            w.delete_from_api().await;
            while updates.changed().await.is_ok() && updates.borrow().is_some() {}
            w.cleanup();
            return;
        }
        if adopted_terminal {
            if updates.changed().await.is_err() {
                return;
            }
            continue;
        }
        let deadline = w.pod.spec.as_ref().and_then(|s| s.active_deadline_seconds);
        if let Some(ads) = deadline
            && w.phase != "Succeeded"
            && w.phase != "Failed"
            && now().duration_since(w.start_time).as_secs_f64() >= ads as f64
        {
            events::record(
                &w.ctx.client,
                &w.pod,
                Source::Kubelet(&w.ctx.opts.name),
                true,
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            )
            .await;
            w.kill_all(&mut rx, grace_of(&w.pod), true).await;
            w.set_waiting("ContainerCreating", None, true);
            w.phase = "Failed".into();
            w.reason = Some("DeadlineExceeded".into());
            w.message =
                Some("Pod was active on the node longer than the specified deadline".into());
            w.publish().await;
            continue;
        }
        let wake = w.step().await;
        let retry = (!w.publish().await).then(|| Instant::now() + STATUS_RETRY);
        let sleep = tokio::time::sleep_until(
            wake.into_iter()
                .chain(retry)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
        );
        tokio::select! {
            r = updates.changed() => if r.is_err() {
                w.kill_all(&mut rx, Duration::ZERO, false).await;
                w.cleanup();
                return;
            },
            Some(e) = rx.recv() => w.on_exit(e),
            _ = sleep => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(state: State, last: bool) -> Slot {
        let c = Container {
            name: "c".into(),
            ..Container::default()
        };
        let mut s = Slot::new(&c, "ContainerCreating");
        s.view.state = state;
        if last {
            s.view.last = Some(Terminated {
                exit_code: 1,
                reason: "Error".into(),
                message: None,
                started_at: None,
                finished_at: now(),
                container_id: None,
            });
        }
        s
    }

    fn term(code: i32) -> State {
        State::Terminated(Terminated {
            exit_code: code,
            reason: String::new(),
            message: None,
            started_at: None,
            finished_at: now(),
            container_id: None,
        })
    }

    #[test]
    fn phases_follow_get_phase() {
        assert_eq!(
            phase_of(
                &[],
                &[slot(State::waiting("ContainerCreating"), false)],
                "Always"
            ),
            "Pending"
        );
        assert_eq!(
            phase_of(&[], &[slot(State::Running(now()), false)], "Always"),
            "Running"
        );
        assert_eq!(phase_of(&[], &[slot(term(0), false)], "Never"), "Succeeded");
        assert_eq!(
            phase_of(&[], &[slot(term(2), false), slot(term(0), false)], "Never"),
            "Failed"
        );
        assert_eq!(
            phase_of(
                &[],
                &[slot(State::waiting("CrashLoopBackOff"), true)],
                "Always"
            ),
            "Running"
        );
        assert_eq!(
            phase_of(
                &[slot(State::Running(now()), false)],
                &[slot(State::waiting("PodInitializing"), false)],
                "Always"
            ),
            "Pending"
        );
    }

    #[test]
    fn credentials_from_security_contexts() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [3000]},
            "containers": [{"name": "c", "securityContext": {"runAsGroup": 1001}}]}}))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        assert_eq!(
            creds_of(&pod, &c).unwrap(),
            Creds {
                uid: 1000,
                gid: 1001,
                groups: vec![1001, 3000, 2000]
            }
        );
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]}}))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        assert_eq!(
            creds_of(&pod, &c).unwrap_err(),
            "container has runAsNonRoot and image will run as root"
        );
    }
}
