//! One poll cycle over every running sandbox.
//!
//! 1. `GET /list`: the running sandboxes we have a record of, with their agent
//!    server's URL and session key.
//! 2. Every agent server's conversation search, all pages, in batches (one
//!    request per sandbox in a steady state). Conversations we know of that the
//!    search no longer lists are asked for one by one.
//! 3. Every conversation's new events: one event search per conversation from
//!    its cursor (plus further pages when there are more), in batches of
//!    [`EVENT_CHUNK`], the next batch on the wire while the previous one is
//!    stored. So a steady cycle with nothing new costs at most two requests per
//!    conversation, and storing overlaps waiting.
//!
//! Requests go out through `send-batch`: the host runs them concurrently, and an
//! agent server that is slow, dead or refusing costs only its own deadline; it is
//! named in the summary and the cycle goes on.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::Value;

use super::CycleSummary;
use super::plan::{Plan, resume_from};
use crate::agent::{self, Agent};
use crate::error::{Error, Result};
use crate::model::Status;
use crate::ports::{Bound, Request, Response, Scan};
use crate::schema::callbacks::CallbackRecord;
use crate::schema::conversations::{self as conv, ConversationRecord};
use crate::schema::{self, SandboxRecord};
use crate::service::Service;
use crate::share::Share;
use crate::status;

/// Conversations whose events are fetched and stored together: bounds the
/// plugin's memory (a page of events per conversation) and the size of a commit.
const EVENT_CHUNK: usize = 64;

/// Pages followed per conversation list or event list in one cycle; the rest
/// waits for the next cycle.
const MAX_PAGES: usize = 50;

struct Target {
    sandbox: SandboxRecord,
    agent: Agent,
    failure: Option<String>,
}

impl Service<'_> {
    /// One cycle over the running sandboxes in `share`.
    pub fn poll(&self, share: &Share) -> Result<CycleSummary> {
        let mut summary = CycleSummary::default();
        let mut targets = self.targets(share)?;
        summary.sandboxes = targets.len() as u32;
        let callbacks = self.load_callbacks()?;
        let mut changed: HashSet<String> = HashSet::new();

        // Conversation infos, stored together (one commit in the common case).
        let infos = self.discover(&mut targets, &mut summary)?;
        let mut plans = Vec::with_capacity(infos.len());
        let mut planned: Vec<&(usize, Value)> = Vec::with_capacity(infos.len());
        for entry in &infos {
            let (t, info) = entry;
            match self.plan_info(&targets[*t].sandbox, info) {
                Ok(Some(plan)) => {
                    plans.push(plan);
                    planned.push(entry);
                }
                Ok(None) => {}
                Err(e) => fail(&mut targets[*t], e.to_string()),
            }
        }
        let ids: Vec<String> = plans.iter().map(|p| p.conversation_id.clone()).collect();
        let replan = |n: usize| -> Result<Plan> {
            let (t, info) = planned[n];
            self.plan_info(&targets[*t].sandbox, info)?
                .ok_or_else(|| Error::Internal("a conversation info lost its id".into()))
        };
        let outcomes = self.commit_plans(plans, &replan)?;
        let mut work: Vec<(usize, ConversationRecord)> = Vec::with_capacity(ids.len());
        let mut seen = HashSet::new();
        for ((id, outcome), (t, _)) in ids.iter().zip(outcomes).zip(planned.iter().copied()) {
            if outcome.changed {
                changed.insert(id.clone());
            }
            let key = conv::key_of(id).unwrap_or_default();
            if !seen.insert(key.clone()) {
                continue;
            }
            if let Some(record) = self.load_conversation(&key)? {
                work.push((*t, record));
            }
        }
        summary.conversations = work.len() as u32;

        self.sync_events(&mut targets, &work, &callbacks, &mut summary, &mut changed)?;

        summary.failures = targets
            .into_iter()
            .filter_map(|t| t.failure.map(|f| (t.sandbox.id, f)))
            .collect();
        let mut changed: Vec<String> = changed.into_iter().collect();
        changed.sort();
        summary.changed_conversations = changed;
        Ok(summary)
    }

    /// The running sandboxes we know in `share`, each with its agent server.
    fn targets(&self, share: &Share) -> Result<Vec<Target>> {
        let runtimes = self
            .runtime()
            .list()
            .map_err(|e| Error::Upstream(e.to_string()))?;
        let mut by_id: HashMap<String, (String, String)> = HashMap::new();
        for rt in &runtimes {
            if status::from_runtime(Some(rt)) != Status::Running {
                continue;
            }
            let (Some(id), Some(url), Some(key)) = (&rt.session_id, &rt.url, &rt.session_api_key)
            else {
                continue;
            };
            if url.is_empty() || !crate::service::is_valid_id(id) || !share.holds(id) {
                continue;
            }
            by_id.insert(
                id.clone(),
                (url.trim_end_matches('/').to_owned(), key.clone()),
            );
        }
        let mut ids: Vec<&str> = by_id.keys().map(String::as_str).collect();
        ids.sort_unstable();
        let records = self.load_many(&ids)?;
        let timeout_ms = self.settings.agent_request_timeout_ms;
        Ok(records
            .into_iter()
            .filter_map(|sandbox| {
                let (url, key) = by_id.get(&sandbox.id)?.clone();
                Some(Target {
                    agent: Agent {
                        sandbox_id: sandbox.id.clone(),
                        base_url: url,
                        session_key: key,
                        timeout_ms,
                    },
                    sandbox,
                    failure: None,
                })
            })
            .collect())
    }

    /// Every conversation info of every target: all pages of each search, then
    /// the known conversations the search did not list.
    fn discover(
        &self,
        targets: &mut [Target],
        summary: &mut CycleSummary,
    ) -> Result<Vec<(usize, Value)>> {
        let mut infos: Vec<(usize, Value)> = Vec::new();
        let mut pending: Vec<(usize, Option<String>)> =
            (0..targets.len()).map(|t| (t, None)).collect();
        for _ in 0..MAX_PAGES {
            if pending.is_empty() {
                break;
            }
            let requests: Vec<Request> = pending
                .iter()
                .map(|(t, page)| targets[*t].agent.search_conversations(page.as_deref()))
                .collect();
            let answers = self.send_all(requests, summary);
            let mut next = Vec::new();
            for ((t, _), answer) in pending.into_iter().zip(answers) {
                match answer.and_then(|r| agent::parse_conversation_page(&r.body)) {
                    Ok(page) => {
                        infos.extend(page.items.into_iter().map(|i| (t, i)));
                        if let Some(p) = page.next_page_id {
                            next.push((t, Some(p)));
                        }
                    }
                    Err(reason) => fail(&mut targets[t], reason),
                }
            }
            pending = next;
        }

        // Known conversations missing from the listing: ask for each directly.
        let listed: HashSet<String> = infos
            .iter()
            .filter_map(|(_, i)| i.get("id").and_then(Value::as_str).and_then(conv::key_of))
            .collect();
        let mut missing: Vec<(usize, String)> = Vec::new();
        for (t, target) in targets.iter().enumerate() {
            if target.failure.is_some() {
                continue;
            }
            for key in self.conversation_keys_of(&target.sandbox.id)? {
                if !listed.contains(&key) {
                    missing.push((t, key));
                }
            }
        }
        if !missing.is_empty() {
            let requests = missing
                .iter()
                .map(|(t, key)| targets[*t].agent.conversation(key))
                .collect();
            let answers = self.send_all(requests, summary);
            for ((t, _), answer) in missing.into_iter().zip(answers) {
                // A 404 means the agent server forgot it; what we stored stays.
                if let Ok(info) = answer.and_then(|r| {
                    serde_json::from_slice::<Value>(&r.body).map_err(|e| e.to_string())
                }) && info.is_object()
                {
                    infos.push((t, info));
                }
            }
        }
        Ok(infos)
    }

    /// The keys of the conversations stored for one sandbox.
    pub(crate) fn conversation_keys_of(&self, sandbox_id: &str) -> Result<Vec<String>> {
        let prefix = conv::sandbox_prefix(sandbox_id);
        let end = schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let rows = self.store.scan(Scan {
            table: conv::BY_SANDBOX,
            start: Bound::Included(prefix.clone()),
            end,
            reverse: false,
            limit: 10_000,
        })?;
        Ok(rows
            .iter()
            .filter_map(|(k, _)| schema::id_of_order_key(k.get(prefix.len()..)?).map(str::to_owned))
            .collect())
    }

    /// New events of every conversation. Event searches go out in batches of
    /// [`EVENT_CHUNK`], the next batch on the wire while the previous one's
    /// events are being stored; a conversation with more pages queues its next
    /// page behind the others.
    fn sync_events(
        &self,
        targets: &mut [Target],
        work: &[(usize, ConversationRecord)],
        callbacks: &[CallbackRecord],
        summary: &mut CycleSummary,
        changed: &mut HashSet<String>,
    ) -> Result<()> {
        let since: Vec<Option<String>> = work.iter().map(|(_, c)| resume_from(c)).collect();
        let mut queue: VecDeque<Page> = (0..work.len())
            .map(|i| Page {
                conversation: i,
                page_id: None,
                number: 1,
            })
            .collect();
        let mut in_flight: Option<(Pending, Vec<Page>)> = None;
        loop {
            let mut next = Vec::with_capacity(EVENT_CHUNK);
            while next.len() < EVENT_CHUNK {
                let Some(page) = queue.pop_front() else { break };
                if targets[work[page.conversation].0].failure.is_none() {
                    next.push(page);
                }
            }
            let started = if next.is_empty() {
                None
            } else {
                let requests: Vec<Request> = next
                    .iter()
                    .map(|p| {
                        let (t, c) = &work[p.conversation];
                        targets[*t].agent.events(
                            &c.key(),
                            since[p.conversation].as_deref(),
                            p.page_id.as_deref(),
                        )
                    })
                    .collect();
                Some((self.start_requests(requests, summary), next))
            };
            if let Some((pending, pages)) = in_flight.take() {
                let answers = self.finish_requests(pending);
                self.store_event_pages(
                    targets, work, &pages, answers, callbacks, summary, changed, &mut queue,
                )?;
            }
            in_flight = started;
            if in_flight.is_none() && queue.is_empty() {
                return Ok(());
            }
        }
    }

    /// Store one batch of event pages (one commit for all, normally).
    #[allow(clippy::too_many_arguments)]
    fn store_event_pages(
        &self,
        targets: &mut [Target],
        work: &[(usize, ConversationRecord)],
        pages: &[Page],
        answers: Vec<std::result::Result<Response, String>>,
        callbacks: &[CallbackRecord],
        summary: &mut CycleSummary,
        changed: &mut HashSet<String>,
        queue: &mut VecDeque<Page>,
    ) -> Result<()> {
        let mut bodies: Vec<(&Page, Vec<u8>)> = Vec::with_capacity(answers.len());
        for (page, answer) in pages.iter().zip(answers) {
            match answer {
                Ok(r) => bodies.push((page, r.body)),
                Err(reason) => fail(&mut targets[work[page.conversation].0], reason),
            }
        }
        let mut parsed = Vec::with_capacity(bodies.len());
        for (page, body) in &bodies {
            match agent::parse_event_page(body) {
                Ok(events) => parsed.push((*page, events)),
                Err(reason) => fail(&mut targets[work[page.conversation].0], reason),
            }
        }
        let plans = parsed
            .iter()
            .map(|(page, events)| {
                self.plan_events(
                    &work[page.conversation].1.key(),
                    None,
                    &events.items,
                    callbacks,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let replan = |n: usize| {
            let (page, events) = &parsed[n];
            self.plan_events(
                &work[page.conversation].1.key(),
                None,
                &events.items,
                callbacks,
            )
        };
        let outcomes = self.commit_plans(plans, &replan)?;
        for ((page, events), outcome) in parsed.iter().zip(outcomes) {
            summary.new_events += outcome.new_events;
            if outcome.changed {
                changed.insert(work[page.conversation].1.id.clone());
            }
            if let Some(next) = &events.next_page_id
                && page.number < MAX_PAGES
            {
                queue.push_back(Page {
                    conversation: page.conversation,
                    page_id: Some(next.clone()),
                    number: page.number + 1,
                });
            }
        }
        Ok(())
    }

    /// Put a batch on the wire (or, if the host refuses to open another, send it
    /// now and keep the answers).
    fn start_requests(&self, requests: Vec<Request>, summary: &mut CycleSummary) -> Pending {
        summary.requests += requests.len() as u32;
        match self.http.start_batch(requests.clone()) {
            Ok(batch) => Pending::OnTheWire(batch),
            Err(_) => Pending::Answered(self.http.send_batch(requests)),
        }
    }

    fn finish_requests(&self, pending: Pending) -> Vec<std::result::Result<Response, String>> {
        let answers = match pending {
            Pending::Answered(answers) => answers,
            Pending::OnTheWire(batch) => match self.http.finish_batch(batch) {
                Ok(answers) => answers,
                Err(e) => vec![Err(e)],
            },
        };
        answers.into_iter().map(usable).collect()
    }

    /// Send requests in one batch; each answer is the response, or why it is unusable.
    fn send_all(
        &self,
        requests: Vec<Request>,
        summary: &mut CycleSummary,
    ) -> Vec<std::result::Result<Response, String>> {
        summary.requests += requests.len() as u32;
        self.http
            .send_batch(requests)
            .into_iter()
            .map(|r| match r {
                Ok(response) => match agent::failure(&response) {
                    None => Ok(response),
                    Some(reason) => Err(reason),
                },
                Err(e) => Err(format!("the agent server {e}")),
            })
            .collect()
    }
}

/// One page of one conversation's events to fetch.
struct Page {
    /// Index into the cycle's conversations.
    conversation: usize,
    page_id: Option<String>,
    /// 1 for the first page.
    number: usize,
}

/// A batch of requests, on the wire or already answered.
enum Pending {
    OnTheWire(crate::ports::BatchId),
    Answered(Vec<std::result::Result<Response, crate::ports::HttpError>>),
}

/// The response, or why it is unusable.
fn usable(
    answer: std::result::Result<Response, crate::ports::HttpError>,
) -> std::result::Result<Response, String> {
    match answer {
        Ok(response) => match agent::failure(&response) {
            None => Ok(response),
            Some(reason) => Err(reason),
        },
        Err(e) => Err(format!("the agent server {e}")),
    }
}

fn fail(target: &mut Target, reason: String) {
    if target.failure.is_none() {
        target.failure = Some(reason);
    }
}
