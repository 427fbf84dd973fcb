//! The day-by-day simulation. Each local calendar day produces that day's calls, tickets,
//! branch visits and callbacks, in event-time order, and hands them to a [`Sink`].
//!
//! Mechanisms behind the realism properties (each is checked by SQL in the tests):
//! - Volume follows weekday and hour profiles, holidays, month-end and post-holiday spikes.
//! - Call waits come from a queue whose mean wait grows with the hour's load; callers
//!   abandon when their patience (exponential, mean 110 s) runs out first.
//! - Tickets get SLA deadlines by kind and severity; resolution times are log-normal
//!   around a share of the deadline, so a minority breach it.
//! - Failed complaints (late, unresolved, dissatisfied callback) escalate: repeat, then
//!   over-level (headquarters), then appeal through a regulator.
//! - Branch queues are simulated first-come first-served over the branch's windows, so
//!   waits grow with arrivals; long queues make customers balk.
//! - Churners leaving for competitive or service reasons go through a deterioration phase
//!   before closing: more complaints, slower and less successful handling, congested queues.

use kefu_model::vocab::*;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Exp, LogNormal};

use crate::GenError;
use crate::calendar::{
    BRANCH_HOURS, DAY_S, DayInfo, DayKind, HourSampler, WEEKEND_CALL_HOURS, WORKDAY_CALL_HOURS,
    day_info,
};
use crate::config::GenConfig;
use crate::record::{CallRec, CallbackRec, Subject, TicketRec, VisitRec};
use crate::world::{World, poisson};

const HOUR: i64 = 3600;
const MINUTE: i64 = 60;

/// Receives the generated rows, one day at a time, in event-time order within a day.
pub trait Sink {
    fn day(&mut self, world: &World, day: &DayInfo, rows: &DayRows) -> Result<(), GenError>;
    /// The customer dimension as of the end of the period, once, after the last day.
    fn customers(&mut self, world: &World) -> Result<(), GenError>;
}

/// One day's output.
#[derive(Debug, Default)]
pub struct DayRows {
    pub calls: Vec<CallRec>,
    pub tickets: Vec<TicketRec>,
    pub callbacks: Vec<CallbackRec>,
    pub visits: Vec<VisitRec>,
}

/// Complaint categories with their weights (heavily skewed: the top three hold over half),
/// the department held responsible, and a description template.
pub(crate) const COMPLAINT_CATEGORIES: &[(&str, f64, &str, &str)] = &[
    (
        "billing_dispute",
        28.0,
        "billing",
        "客户对账单费用有异议，要求核实并退还多收费用",
    ),
    (
        "network_quality",
        18.0,
        "network_ops",
        "客户反映所在区域信号差、经常掉线",
    ),
    (
        "install_delay",
        12.0,
        "field_service",
        "客户反映宽带装机超过承诺时限仍未上门",
    ),
    (
        "unclear_fees",
        10.0,
        "marketing",
        "客户称办理业务时未被告知相关收费",
    ),
    (
        "staff_attitude",
        8.0,
        "branch_ops",
        "客户反映营业员服务态度差",
    ),
    (
        "long_wait",
        6.0,
        "branch_ops",
        "客户反映营业厅排队等候时间过长",
    ),
    (
        "app_malfunction",
        5.0,
        "it",
        "客户反映手机APP无法登录或缴费失败",
    ),
    (
        "marketing_harassment",
        4.0,
        "marketing",
        "客户反映频繁接到营销电话，要求停止",
    ),
    (
        "number_porting",
        3.0,
        "customer_service",
        "客户办理携号转网受阻",
    ),
    (
        "repair_delay",
        3.0,
        "field_service",
        "客户报修后长时间无人处理",
    ),
    ("privacy", 1.5, "legal", "客户怀疑个人信息被泄露"),
    (
        "contract_terms",
        1.0,
        "legal",
        "客户对合约条款及违约金有异议",
    ),
    ("equipment", 0.5, "field_service", "客户反映终端设备故障"),
];
/// The category that spikes for two weeks after a (simulated) system go-live.
const HOT_SPOT_CATEGORY: usize = 6;

pub(crate) const OTHER_CATEGORIES: &[(TicketKind, &str, &str, &str)] = &[
    (
        TicketKind::WorkOrder,
        "broadband_install",
        "field_service",
        "新装宽带预约上门安装",
    ),
    (
        TicketKind::WorkOrder,
        "line_repair",
        "field_service",
        "线路故障报修",
    ),
    (
        TicketKind::WorkOrder,
        "relocation",
        "field_service",
        "移机申请",
    ),
    (
        TicketKind::WorkOrder,
        "removal",
        "field_service",
        "拆机申请",
    ),
    (
        TicketKind::Inquiry,
        "billing_question",
        "billing",
        "咨询本月账单明细",
    ),
    (
        TicketKind::Inquiry,
        "plan_question",
        "marketing",
        "咨询套餐资费及办理条件",
    ),
    (
        TicketKind::Inquiry,
        "coverage_question",
        "network_ops",
        "咨询所在小区网络覆盖",
    ),
    (
        TicketKind::Suggestion,
        "service_suggestion",
        "customer_service",
        "建议延长营业厅营业时间",
    ),
    (
        TicketKind::Praise,
        "staff_praise",
        "branch_ops",
        "表扬营业员耐心细致",
    ),
];

const DISSATISFACTION_REASONS: &[&str] = &[
    "处理时间太长",
    "问题未解决",
    "服务态度差",
    "多次反映无果",
    "收费不合理",
    "未按约定时间联系",
];

/// Call queues (skill groups): name, routing weight, wait multiplier, median talk seconds,
/// and the call category recorded.
pub(crate) const QUEUES: &[(&str, f64, f64, f64, &str)] = &[
    ("billing", 34.0, 1.0, 170.0, "billing_inquiry"),
    ("technical", 24.0, 1.15, 260.0, "fault_report"),
    ("sales", 12.0, 0.7, 210.0, "plan_change"),
    ("general", 18.0, 0.9, 140.0, "general_inquiry"),
    ("complaints", 8.0, 1.7, 330.0, "complaint"),
    ("vip", 4.0, 0.3, 240.0, "vip_service"),
];
const QUEUE_COMPLAINTS: usize = 4;
const QUEUE_VIP: usize = 5;

/// Branch business types: queue letter, name, weight, median service minutes.
const BUSINESS_TYPES: &[(u8, &str, f64, f64)] = &[
    (b'A', "payment", 30.0, 4.0),
    (b'B', "account", 18.0, 11.0),
    (b'C', "sim_card", 20.0, 7.0),
    (b'D', "repair", 8.0, 9.0),
    (b'E', "consultation", 16.0, 5.5),
    (b'F', "complaint", 3.0, 14.0),
    (b'V', "vip_service", 0.0, 10.0),
];
const BUSINESS_COMPLAINT: usize = 5;
const BUSINESS_VIP: usize = 6;

#[derive(Debug, Clone, Copy)]
struct PendingTicket {
    customer: u32,
    created_at: i64,
    category: usize,
    level: Level,
    parent: u64,
    severity: Severity,
}

/// Samples an index from fixed weights with one uniform draw.
struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut acc = 0.0;
        let mut cumulative: Vec<f64> = weights
            .into_iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        for c in &mut cumulative {
            *c /= acc;
        }
        Weighted { cumulative }
    }
    fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.cumulative.len() - 1)
    }
}

/// The customers active on a day with their sampling weights, in compact arrays so that
/// weighted picks touch little memory.
#[derive(Debug, Default)]
struct ActiveSet {
    ids: Vec<u32>,
    /// Contact frequency (outbound calls, non-complaint tickets, visits).
    activity: Vec<f32>,
    /// Inbound calls: customers in trouble call more.
    calls: Vec<f32>,
    /// Branch visits: customers with unresolved problems come back to the branch.
    visits: Vec<f32>,
    /// Complaints: a few customers complain repeatedly; customers in trouble far more.
    complaints: Vec<f32>,
}

pub(crate) const MAX_ACTIVITY: f32 = 5.0;
const MAX_CALL_WEIGHT: f32 = 8.0;
const MAX_VISIT_WEIGHT: f32 = 10.0;
const MAX_COMPLAINT_WEIGHT: f32 = 50.0;

impl ActiveSet {
    fn refresh(&mut self, world: &World, day: i32) {
        self.ids.clear();
        self.activity.clear();
        self.calls.clear();
        self.visits.clear();
        self.complaints.clear();
        for (i, c) in world.customers.iter().enumerate() {
            if c.active_on(day) {
                let risk = c.at_risk_on(day);
                self.ids.push(i as u32);
                self.activity.push(c.activity);
                self.calls.push(c.activity * if risk { 1.6 } else { 1.0 });
                self.visits.push(c.activity * if risk { 2.0 } else { 1.0 });
                self.complaints
                    .push(c.complaint_propensity * if risk { 5.0 } else { 1.0 });
            }
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Picks an index with probability proportional to `weights[i]` (rejection sampling;
/// every weight is at most `max`).
fn pick(rng: &mut impl Rng, ids: &[u32], weights: &[f32], max: f32) -> u32 {
    loop {
        let i = rng.random_range(0..ids.len());
        if rng.random::<f32>() * max < weights[i] {
            return ids[i];
        }
    }
}

pub struct Simulation<'a, R: Rng> {
    cfg: &'a GenConfig,
    world: &'a World,
    rng: R,
    start_midnight: i64,
    /// End of the observed period: nothing after it has happened yet.
    next_call: u64,
    next_ticket: u64,
    next_callback: u64,
    next_visit: u64,
    pending_tickets: Vec<Vec<PendingTicket>>,
    pending_callbacks: Vec<Vec<CallbackRec>>,
    hot_spot_start: i32,
    complaint_categories: Weighted,
    other_categories: Weighted,
    queues: Weighted,
    business: Weighted,
    workday_hours: HourSampler,
    weekend_hours: HourSampler,
    branch_hours: HourSampler,
}

fn callback_status(reached: bool) -> CallbackStatus {
    if reached {
        CallbackStatus::Reached
    } else {
        CallbackStatus::NoAnswer
    }
}

fn mins(rng: &mut impl Rng, lo: i64, hi: i64) -> i64 {
    rng.random_range(lo * MINUTE..=hi * MINUTE)
}

fn exp_secs(rng: &mut impl Rng, mean: f64) -> f64 {
    Exp::new(1.0 / mean).expect("positive mean").sample(rng)
}

fn lognormal(rng: &mut impl Rng, median: f64, sigma: f64) -> f64 {
    LogNormal::new(median.ln(), sigma)
        .expect("valid")
        .sample(rng)
}

impl<'a, R: Rng> Simulation<'a, R> {
    pub fn new(cfg: &'a GenConfig, world: &'a World, mut rng: R) -> Self {
        let start_midnight = day_info(cfg.start).midnight_utc;
        let days = cfg.days as usize;
        let hot_spot_start = if days > 28 {
            rng.random_range(7..(days as i32 - 14))
        } else {
            0
        };
        Simulation {
            cfg,
            world,
            start_midnight,
            next_call: 1,
            next_ticket: 1,
            next_callback: 1,
            next_visit: 1,
            pending_tickets: (0..days).map(|_| Vec::new()).collect(),
            pending_callbacks: (0..days).map(|_| Vec::new()).collect(),
            hot_spot_start,
            complaint_categories: Weighted::new(COMPLAINT_CATEGORIES.iter().map(|c| c.1)),
            other_categories: Weighted::new([22.0, 14.0, 6.0, 3.0, 20.0, 14.0, 6.0, 8.0, 7.0]),
            queues: Weighted::new(QUEUES.iter().map(|q| q.1)),
            business: Weighted::new(BUSINESS_TYPES.iter().map(|b| b.2)),
            workday_hours: HourSampler::new(&WORKDAY_CALL_HOURS),
            weekend_hours: HourSampler::new(&WEEKEND_CALL_HOURS),
            branch_hours: HourSampler::new(&BRANCH_HOURS),
            rng,
        }
    }

    pub fn run(
        &mut self,
        sink: &mut impl Sink,
        mut on_day: impl FnMut(u32),
    ) -> Result<(), GenError> {
        let mut active = ActiveSet::default();
        for d in 0..self.cfg.days as i32 {
            let date = self.cfg.start + chrono::Days::new(d as u64);
            let info = day_info(date);
            active.refresh(self.world, d);
            let mut rows = DayRows::default();
            if active.len() > 0 {
                self.calls(d, &info, &active, &mut rows);
                self.tickets(d, &info, &active, &mut rows);
                self.visits(d, &info, &active, &mut rows);
            }
            let mut callbacks = std::mem::take(&mut self.pending_callbacks[d as usize]);
            callbacks.sort_by_key(|c| c.performed_at);
            for c in &mut callbacks {
                c.id = self.next_callback;
                self.next_callback += 1;
            }
            rows.callbacks = callbacks;
            sink.day(self.world, &info, &rows)?;
            on_day(d as u32);
        }
        sink.customers(self.world)
    }

    fn day_of(&self, t: i64) -> Option<usize> {
        let d = (t - self.start_midnight).div_euclid(DAY_S);
        (0..self.cfg.days as i64).contains(&d).then_some(d as usize)
    }

    fn hours(&self, info: &DayInfo) -> &HourSampler {
        if info.kind == DayKind::Workday {
            &self.workday_hours
        } else {
            &self.weekend_hours
        }
    }

    fn calls(&mut self, d: i32, info: &DayInfo, active: &ActiveSet, rows: &mut DayRows) {
        let mean =
            active.len() as f64 * self.cfg.calls_per_customer_month / 30.4 * info.contact_factor;
        let n = poisson(&mut self.rng, mean);
        let calls = &mut rows.calls;
        calls.reserve(n as usize + n as usize / 20);
        for _ in 0..n {
            let u: f64 = self.rng.random();
            let hour = self.hours(info).sample(u);
            let intensity = self.hours(info).intensity(hour);
            let t0 = info.midnight_utc + hour as i64 * HOUR + self.rng.random_range(0..HOUR);
            if self.rng.random::<f64>() < 0.07 {
                let c = pick(&mut self.rng, &active.ids, &active.activity, MAX_ACTIVITY);
                calls.push(self.outbound_call(d, c, t0, CallChannel::OutboundCampaign));
                continue;
            }
            let customer = if self.rng.random::<f64>() < 0.12 {
                None
            } else {
                Some(pick(
                    &mut self.rng,
                    &active.ids,
                    &active.calls,
                    MAX_CALL_WEIGHT,
                ))
            };
            let call = self.inbound_call(d, info, customer, t0, intensity);
            if call.outcome == CallOutcome::CallbackRequested {
                let c = customer.expect("only identified callers can ask for a callback");
                let at = call.ended_at + mins(&mut self.rng, 10, 120);
                let back = self.outbound_call(d, c, at, CallChannel::Callback);
                calls.push(call);
                calls.push(back);
            } else {
                calls.push(call);
            }
        }
        calls.sort_by_key(|c| c.ivr_entered_at);
        for c in calls.iter_mut() {
            c.id = self.next_call;
            self.next_call += 1;
        }
        // Post-call SMS surveys of a sample of answered, identified calls.
        for call in calls.iter() {
            let (Some(customer), Some(_)) = (call.customer, call.answered_at) else {
                continue;
            };
            if self.rng.random::<f64>() >= 0.06 {
                continue;
            }
            let at = call.ended_at + mins(&mut self.rng, 1, 30);
            let slow = call.wait_s.unwrap_or(0) > 120;
            let risk = self.world.customers[customer as usize].at_risk_on(d);
            let (id, region) = (call.id, call.region);
            let reached = self.rng.random::<f64>() < 0.55;
            let score = reached.then(|| self.satisfaction(slow, risk));
            let reason = self.reason_for(score);
            self.schedule_callback(CallbackRec {
                id: 0,
                ticket: None,
                call: Some(id),
                customer,
                region,
                method: CallbackMethod::Sms,
                status: callback_status(reached),
                score,
                reason,
                attempt: 1,
                performed_at: at,
            });
        }
    }

    fn agent(&mut self, region: u16) -> u32 {
        self.rng
            .random_range(1..=self.world.regions[region as usize].agents)
    }

    fn outbound_call(&mut self, d: i32, c: u32, t0: i64, channel: CallChannel) -> CallRec {
        let cust = &self.world.customers[c as usize];
        let region = cust.region;
        let answered = self.rng.random::<f64>()
            < if channel == CallChannel::Callback {
                0.8
            } else {
                0.55
            };
        let agent = Some(self.agent(region));
        let (answered_at, ended_at, talk, hold, wrap, outcome) = if answered {
            let ring = self.rng.random_range(4..25);
            let talk = lognormal(&mut self.rng, 75.0, 0.7).max(3.0) as i64;
            let wrap = lognormal(&mut self.rng, 15.0, 0.5) as i32;
            (
                Some(t0 + ring),
                t0 + ring + talk,
                Some(talk as i32),
                Some(0),
                Some(wrap),
                CallOutcome::Answered,
            )
        } else {
            (
                None,
                t0 + self.rng.random_range(25..50),
                None,
                None,
                None,
                CallOutcome::NoAnswer,
            )
        };
        CallRec {
            id: 0,
            region,
            queue: if channel == CallChannel::Callback {
                "callback"
            } else {
                "outbound"
            },
            direction: Direction::Outbound,
            channel,
            customer: Some(c),
            tier: Some(cust.tier_on(d)),
            agent,
            ivr_entered_at: t0,
            queued_at: None,
            answered_at,
            ended_at,
            wait_s: None,
            talk_s: talk,
            hold_s: hold,
            wrap_s: wrap,
            outcome,
            transfers: 0,
            category: if channel == CallChannel::Callback {
                "callback"
            } else {
                "marketing"
            },
            score: None,
        }
    }

    fn inbound_call(
        &mut self,
        d: i32,
        info: &DayInfo,
        customer: Option<u32>,
        t0: i64,
        intensity: f64,
    ) -> CallRec {
        let rng = &mut self.rng;
        let (region, tier, at_risk) = match customer {
            Some(c) => {
                let c = &self.world.customers[c as usize];
                (c.region, Some(c.tier_on(d)), c.at_risk_on(d))
            }
            None => (self.world.sample_region(rng.random()), None, false),
        };
        let ivr_s = rng.random_range(10..70);
        let mut call = CallRec {
            id: 0,
            region,
            queue: "ivr",
            direction: Direction::Inbound,
            channel: CallChannel::Hotline,
            customer,
            tier,
            agent: None,
            ivr_entered_at: t0,
            queued_at: None,
            answered_at: None,
            ended_at: t0,
            wait_s: None,
            talk_s: None,
            hold_s: None,
            wrap_s: None,
            outcome: CallOutcome::Abandoned,
            transfers: 0,
            category: "general_inquiry",
            score: None,
        };
        if rng.random::<f64>() < 0.2 && !at_risk {
            call.channel = CallChannel::Ivr;
            call.outcome = CallOutcome::IvrSelfService;
            call.category = "self_service";
            call.ended_at = t0 + ivr_s + rng.random_range(20..180);
            return call;
        }
        let q = if at_risk && rng.random::<f64>() < 0.5 {
            QUEUE_COMPLAINTS
        } else if matches!(tier, Some(CustomerTier::Diamond | CustomerTier::Gold))
            && rng.random::<f64>() < 0.6
        {
            QUEUE_VIP
        } else {
            self.queues.sample(rng)
        };
        let (queue, _, wait_factor, talk_median, category) = QUEUES[q];
        call.queue = queue;
        call.category = category;
        let queued = t0 + ivr_s;
        call.queued_at = Some(queued);
        // Load drives the wait: quiet hours ~10 s, the busiest hours ~1 min, more on spikes.
        let load = intensity * info.contact_factor;
        let mean_wait = (6.0 + 48.0 * load * load) * wait_factor;
        let needed = exp_secs(rng, mean_wait).max(1.0);
        let patience = exp_secs(rng, if q == QUEUE_VIP { 220.0 } else { 110.0 }).max(1.0);
        if patience < needed {
            let waited = patience as i32;
            call.wait_s = Some(waited);
            call.ended_at = queued + i64::from(waited);
            call.outcome = if customer.is_some() && waited > 30 && rng.random::<f64>() < 0.12 {
                CallOutcome::CallbackRequested
            } else {
                CallOutcome::Abandoned
            };
            return call;
        }
        let wait = needed as i32;
        let answered = queued + i64::from(wait);
        // A spike of very short services: agents releasing calls within seconds.
        let talk = if rng.random::<f64>() < 0.04 {
            rng.random_range(1..=5)
        } else {
            (lognormal(rng, talk_median, 0.75) as i32).max(6)
        };
        let hold = if rng.random::<f64>() < 0.25 {
            exp_secs(rng, 45.0) as i32
        } else {
            0
        };
        let transfers = match rng.random::<f64>() {
            u if u < 0.02 => 2,
            u if u < 0.10 => 1,
            _ => 0,
        };
        call.agent = Some(self.agent(region));
        let rng = &mut self.rng;
        call.answered_at = Some(answered);
        call.ended_at = answered + i64::from(talk + hold);
        call.wait_s = Some(wait);
        call.talk_s = Some(talk);
        call.hold_s = Some(hold);
        call.wrap_s = Some(lognormal(rng, 20.0, 0.6) as i32);
        call.transfers = transfers;
        call.outcome = if transfers > 0 {
            CallOutcome::Transferred
        } else {
            CallOutcome::Answered
        };
        if rng.random::<f64>() < 0.3 {
            let bad = wait > 120 || at_risk;
            call.score = Some(match rng.random::<f64>() {
                u if u < if bad { 0.30 } else { 0.04 } => 1,
                u if u < if bad { 0.45 } else { 0.08 } => 2,
                u if u < if bad { 0.65 } else { 0.18 } => 3,
                u if u < if bad { 0.85 } else { 0.45 } => 4,
                _ => 5,
            });
        }
        call
    }

    fn satisfaction(&mut self, late: bool, at_risk: bool) -> Satisfaction {
        let mut dissatisfied = 0.07;
        if late {
            dissatisfied += 0.2;
        }
        if at_risk {
            dissatisfied += 0.3;
        }
        let u: f64 = self.rng.random();
        if u < dissatisfied {
            Satisfaction::Dissatisfied
        } else if u < dissatisfied + (1.0 - dissatisfied) * 0.55 {
            Satisfaction::VerySatisfied
        } else {
            Satisfaction::Satisfied
        }
    }

    fn reason_for(&mut self, score: Option<Satisfaction>) -> Option<&'static str> {
        (score == Some(Satisfaction::Dissatisfied)).then(|| {
            DISSATISFACTION_REASONS[self.rng.random_range(0..DISSATISFACTION_REASONS.len())]
        })
    }

    fn schedule_callback(&mut self, cb: CallbackRec) {
        if let Some(day) = self.day_of(cb.performed_at) {
            self.pending_callbacks[day].push(cb);
        }
    }

    fn tickets(&mut self, d: i32, info: &DayInfo, active: &ActiveSet, rows: &mut DayRows) {
        let per_customer_day = active.len() as f64 / 30.4 * info.contact_factor;
        let hot_spot =
            self.cfg.days > 28 && (self.hot_spot_start..self.hot_spot_start + 14).contains(&d);
        let n_complaints = poisson(
            &mut self.rng,
            per_customer_day * self.cfg.complaints_per_customer_month * info.complaint_factor,
        );
        let n_other = poisson(
            &mut self.rng,
            per_customer_day * self.cfg.tickets_per_customer_month,
        );
        let mut fresh: Vec<(PendingTicket, Option<TicketKind>)> = Vec::new();
        for _ in 0..n_complaints {
            let c = pick(
                &mut self.rng,
                &active.ids,
                &active.complaints,
                MAX_COMPLAINT_WEIGHT,
            );
            let mut category = self.complaint_categories.sample(&mut self.rng);
            if hot_spot && self.rng.random::<f64>() < 0.35 {
                category = HOT_SPOT_CATEGORY;
            }
            let created_at = self.ticket_time(info);
            let severity = match self.rng.random::<f64>() {
                u if u < 0.03 => Severity::Major,
                u if u < 0.15 => Severity::Serious,
                _ => Severity::Normal,
            };
            fresh.push((
                PendingTicket {
                    customer: c,
                    created_at,
                    category,
                    level: Level::First,
                    parent: 0,
                    severity,
                },
                None,
            ));
        }
        for _ in 0..n_other {
            let c = pick(&mut self.rng, &active.ids, &active.activity, MAX_ACTIVITY);
            let k = self.other_categories.sample(&mut self.rng);
            let created_at = self.ticket_time(info);
            fresh.push((
                PendingTicket {
                    customer: c,
                    created_at,
                    category: k,
                    level: Level::First,
                    parent: 0,
                    severity: Severity::Normal,
                },
                Some(OTHER_CATEGORIES[k].0),
            ));
        }
        for p in std::mem::take(&mut self.pending_tickets[d as usize]) {
            if self.world.customers[p.customer as usize].active_on(d) {
                fresh.push((p, None));
            }
        }
        fresh.sort_by_key(|(p, _)| p.created_at);
        rows.tickets.reserve(fresh.len());
        for (p, kind) in fresh {
            let t = self.ticket(d, p, kind);
            rows.tickets.push(t);
        }
    }

    fn ticket_time(&mut self, info: &DayInfo) -> i64 {
        let u: f64 = self.rng.random();
        let hour = self.hours(info).sample(u);
        info.midnight_utc + hour as i64 * HOUR + self.rng.random_range(0..HOUR)
    }

    /// Builds a ticket with its whole lifecycle (what happens after the end of the period
    /// included: sinks observe it at their cut with [`observe`]), and schedules its
    /// callbacks and any escalation.
    fn ticket(&mut self, d: i32, p: PendingTicket, kind: Option<TicketKind>) -> TicketRec {
        let id = self.next_ticket;
        self.next_ticket += 1;
        let cust = &self.world.customers[p.customer as usize];
        let (region, branch, tier) = (cust.region, cust.branch, cust.tier_on(d));
        let at_risk = cust.at_risk_on(d);
        let complaint = kind.is_none();
        let kind = kind.unwrap_or(TicketKind::Complaint);
        let (category, dept, description) = if complaint {
            let c = COMPLAINT_CATEGORIES[p.category];
            (c.0, c.2, c.3)
        } else {
            let c = OTHER_CATEGORIES[p.category];
            (c.1, c.2, c.3)
        };
        let (seed, world) = (self.cfg.seed, self.world);
        let rng = &mut self.rng;
        let (channel, source) = match p.level {
            Level::OverLevel => (
                [
                    TicketChannel::Letter,
                    TicketChannel::Web,
                    TicketChannel::Email,
                ][rng.random_range(0..3)],
                TicketSource::HqTransferred,
            ),
            Level::Appeal => (
                TicketChannel::RegulatorTransfer,
                TicketSource::RegulatorTransferred,
            ),
            _ => (
                match rng.random::<f64>() {
                    u if u < 0.45 => TicketChannel::Hotline,
                    u if u < 0.60 => TicketChannel::App,
                    u if u < 0.72 => TicketChannel::Wechat,
                    u if u < 0.80 => TicketChannel::Web,
                    u if u < 0.90 => TicketChannel::Counter,
                    u if u < 0.95 => TicketChannel::WalkIn,
                    u if u < 0.98 => TicketChannel::Email,
                    _ => TicketChannel::Letter,
                },
                TicketSource::SelfReceived,
            ),
        };
        let created = p.created_at;
        let sla = match (kind, p.severity) {
            (TicketKind::Complaint, Severity::Major) => 24 * HOUR,
            (TicketKind::Complaint, Severity::Serious) => 2 * DAY_S,
            (TicketKind::Complaint, Severity::Normal) => 5 * DAY_S,
            (TicketKind::WorkOrder, _) => 3 * DAY_S,
            (TicketKind::Inquiry, _) => DAY_S,
            _ => 7 * DAY_S,
        };
        let due = created + sla;
        let on_the_spot =
            matches!(kind, TicketKind::Inquiry | TicketKind::Praise) && rng.random::<f64>() < 0.5;
        let mut t = TicketRec {
            id,
            region,
            branch,
            customer: p.customer,
            tier,
            channel,
            kind,
            category,
            severity: p.severity,
            level: p.level,
            source,
            justified: None,
            responsible_dept: dept,
            owner: rng.random_range(1..=self.world.regions[region as usize].owners),
            parent: (p.parent > 0).then_some(p.parent),
            created_at: created,
            dispatched_at: None,
            first_contact_at: None,
            due_at: due,
            resolved_at: None,
            closed_at: None,
            reopened_count: 0,
            status: TicketStatus::Closed,
            mediation: None,
            compensation_fen: None,
            description,
            note: (rng.random::<f64>() < 0.08).then_some("已安抚客户情绪，承诺尽快处理"),
            updated_at: created,
            subject: None,
        };
        if complaint {
            t.subject = complaint_subject(seed, world, id, category, channel, (region, branch));
            t.justified = Some(rng.random::<f64>() < if at_risk { 0.75 } else { 0.55 });
            if t.justified == Some(true) && rng.random::<f64>() < 0.12 {
                t.compensation_fen = Some((lognormal(rng, 80.0, 1.0).min(20_000.0) * 100.0) as i64);
            }
            if matches!(p.level, Level::OverLevel | Level::Appeal) && rng.random::<f64>() < 0.6 {
                t.mediation = Some(if rng.random::<f64>() < 0.7 {
                    MediationResult::Succeeded
                } else {
                    MediationResult::Failed
                });
            }
            let u: f64 = rng.random();
            if p.level == Level::First && u < 0.02 {
                t.status = TicketStatus::Rejected;
                t.closed_at = Some(created + mins(rng, 60, 24 * 60));
                return t;
            }
            if u < 0.05 {
                t.status = TicketStatus::Withdrawn;
                t.dispatched_at = Some(created + mins(rng, 5, 60));
                t.closed_at = Some(created + mins(rng, 120, 3 * 24 * 60));
                return t;
            }
        }
        let resolved = if on_the_spot {
            Some(created + mins(rng, 2, 20))
        } else {
            let dispatched = created + exp_secs(rng, 25.0 * 60.0) as i64 + 60;
            t.dispatched_at = Some(dispatched);
            let contact_mean = if at_risk { 170.0 } else { 45.0 } * 60.0;
            let contact = dispatched + exp_secs(rng, contact_mean) as i64 + 60;
            t.first_contact_at = Some(contact);
            let stuck = rng.random::<f64>() < if at_risk { 0.25 } else { 0.03 };
            if stuck {
                None
            } else {
                let share = if at_risk { 0.95 } else { 0.35 };
                let mut r = created + lognormal(rng, sla as f64 * share, 0.7) as i64;
                t.reopened_count = match rng.random::<f64>() {
                    u if u < if at_risk { 0.08 } else { 0.01 } => 2,
                    u if u < if at_risk { 0.22 } else { 0.05 } => 1,
                    _ => 0,
                };
                r += i64::from(t.reopened_count) * rng.random_range(DAY_S..3 * DAY_S);
                Some(r.max(contact + 5 * MINUTE))
            }
        };
        t.resolved_at = resolved;
        let late = resolved.is_none_or(|r| r > due);
        let mut last_contact = resolved.unwrap_or(due);
        let mut dissatisfied = false;
        if let Some(resolved) = resolved {
            let coverage = match kind {
                TicketKind::Complaint | TicketKind::WorkOrder => 0.96,
                TicketKind::Inquiry => 0.25,
                _ => 0.0,
            };
            if self.rng.random::<f64>() < coverage {
                let (closed, unhappy, last) = self.ticket_callbacks(&t, resolved, late, at_risk);
                t.closed_at = Some(closed);
                dissatisfied = unhappy;
                last_contact = last;
            } else {
                t.closed_at = Some(resolved + mins(&mut self.rng, 10, 24 * 60));
            }
        }
        if complaint && p.level != Level::Appeal {
            let failed = late || dissatisfied;
            let p_escalate = match (failed, at_risk) {
                (true, true) => 0.6,
                (true, false) => 0.3,
                (false, _) => 0.02,
            };
            if self.rng.random::<f64>() < p_escalate {
                let next = match p.level {
                    Level::First => Level::Repeat,
                    Level::Repeat => Level::OverLevel,
                    _ => Level::Appeal,
                };
                let when = last_contact.max(due.min(created + 3 * DAY_S))
                    + exp_secs(&mut self.rng, 3.0 * DAY_S as f64) as i64;
                if let Some(day) = self.day_of(when) {
                    self.pending_tickets[day].push(PendingTicket {
                        customer: p.customer,
                        created_at: when,
                        category: p.category,
                        level: next,
                        parent: id,
                        severity: if next == Level::Appeal {
                            Severity::Serious
                        } else {
                            p.severity
                        },
                    });
                }
            }
        }
        t
    }

    /// Schedules the callback attempts after resolution; returns (closed_at, whether the
    /// customer ended dissatisfied, time of the last attempt).
    fn ticket_callbacks(
        &mut self,
        t: &TicketRec,
        resolved: i64,
        late: bool,
        at_risk: bool,
    ) -> (i64, bool, i64) {
        let rng = &mut self.rng;
        // Timeliness: most the same day, some within 3 days, a few later.
        let delay = match rng.random::<f64>() {
            u if u < 0.68 => mins(rng, 10, 240),
            u if u < 0.92 => mins(rng, 24 * 60, 3 * 24 * 60),
            _ => mins(rng, 3 * 24 * 60 + 60, 7 * 24 * 60),
        };
        let method = match rng.random::<f64>() {
            u if u < 0.55 => CallbackMethod::AutoVoice,
            u if u < 0.80 => CallbackMethod::Sms,
            _ => CallbackMethod::Manual,
        };
        let mut at = resolved + delay;
        let reach = match method {
            CallbackMethod::AutoVoice => 0.72,
            CallbackMethod::Sms => 0.6,
            CallbackMethod::Manual => 0.9,
        };
        let reached = self.rng.random::<f64>() < reach;
        let score = reached.then(|| self.satisfaction(late, at_risk));
        let first = CallbackRec {
            id: 0,
            ticket: Some(t.id),
            call: None,
            customer: t.customer,
            region: t.region,
            method,
            status: callback_status(reached),
            score,
            reason: self.reason_for(score),
            attempt: 1,
            performed_at: at,
        };
        self.schedule_callback(first);
        let mut unhappy = score == Some(Satisfaction::Dissatisfied);
        // Failed automatic callbacks and every dissatisfied answer get a manual one.
        if (!reached && method != CallbackMethod::Manual) || unhappy {
            at += mins(&mut self.rng, 60, 24 * 60);
            let reached = self.rng.random::<f64>() < 0.88;
            let score = reached.then(|| {
                if unhappy && self.rng.random::<f64>() < 0.6 {
                    Satisfaction::Dissatisfied
                } else {
                    self.satisfaction(late, at_risk)
                }
            });
            unhappy = score == Some(Satisfaction::Dissatisfied);
            let reason = self.reason_for(score);
            self.schedule_callback(CallbackRec {
                id: 0,
                ticket: Some(t.id),
                call: None,
                customer: t.customer,
                region: t.region,
                method: CallbackMethod::Manual,
                status: callback_status(reached),
                score,
                reason,
                attempt: 2,
                performed_at: at,
            });
        }
        (at + mins(&mut self.rng, 5, 120), unhappy, at)
    }

    fn visits(&mut self, d: i32, info: &DayInfo, active: &ActiveSet, rows: &mut DayRows) {
        let mean =
            active.len() as f64 * self.cfg.visits_per_customer_month / 30.4 * info.visit_factor;
        let identified = poisson(&mut self.rng, mean);
        let walk_ins = poisson(&mut self.rng, mean * 0.25);
        // Halls close an hour earlier at weekends and on holidays.
        let closing_hour = if info.kind == DayKind::Workday {
            17
        } else {
            16
        };
        struct Arrival {
            region: u16,
            branch: u16,
            customer: Option<u32>,
            tier: Option<CustomerTier>,
            business: usize,
            special: SpecialNeeds,
            at: i64,
        }
        let mut arrivals = Vec::with_capacity((identified + walk_ins) as usize);
        for i in 0..identified + walk_ins {
            let (region, branch, customer, tier, at_risk) = if i < identified {
                let c = pick(&mut self.rng, &active.ids, &active.visits, MAX_VISIT_WEIGHT);
                let cust = &self.world.customers[c as usize];
                let n = self.world.regions[cust.region as usize].branches.len();
                let branch = if self.rng.random::<f64>() < 0.85 {
                    cust.branch
                } else {
                    self.rng.random_range(0..n) as u16
                };
                (
                    cust.region,
                    branch,
                    Some(c),
                    Some(cust.tier_on(d)),
                    cust.at_risk_on(d),
                )
            } else {
                let region = self.world.sample_region(self.rng.random());
                let n = self.world.regions[region as usize].branches.len();
                (
                    region,
                    self.rng.random_range(0..n) as u16,
                    None,
                    None,
                    false,
                )
            };
            let business = if at_risk && self.rng.random::<f64>() < 0.4 {
                BUSINESS_COMPLAINT
            } else if matches!(tier, Some(CustomerTier::Diamond | CustomerTier::Gold))
                && self.rng.random::<f64>() < 0.7
            {
                BUSINESS_VIP
            } else {
                self.business.sample(&mut self.rng)
            };
            let hour = if at_risk && self.rng.random::<f64>() < 0.7 {
                // Customers with unresolved problems come when queues are longest.
                [11, 15][self.rng.random_range(0..2)]
            } else {
                self.branch_hours.sample(self.rng.random())
            }
            .min(closing_hour - 1);
            let at = info.midnight_utc + hour as i64 * HOUR + self.rng.random_range(0..HOUR);
            let special = if self.rng.random::<f64>() < 0.04 {
                [
                    SpecialNeeds::Elderly,
                    SpecialNeeds::Elderly,
                    SpecialNeeds::Elderly,
                    SpecialNeeds::Mobility,
                    SpecialNeeds::Hearing,
                    SpecialNeeds::Visual,
                    SpecialNeeds::Frail,
                    SpecialNeeds::Pregnant,
                    SpecialNeeds::WithInfant,
                    SpecialNeeds::Foreign,
                ][self.rng.random_range(0..10)]
            } else {
                SpecialNeeds::None
            };
            arrivals.push(Arrival {
                region,
                branch,
                customer,
                tier,
                business,
                special,
                at,
            });
        }
        arrivals.sort_by_key(|a| (a.region, a.branch, a.at));
        let mut out: Vec<VisitRec> = Vec::with_capacity(arrivals.len());
        let mut start = 0;
        while start < arrivals.len() {
            let key = (arrivals[start].region, arrivals[start].branch);
            let end = start
                + arrivals[start..]
                    .iter()
                    .position(|a| (a.region, a.branch) != key)
                    .unwrap_or(arrivals.len() - start);
            let branch = &self.world.regions[key.0 as usize].branches[key.1 as usize];
            let windows = branch.windows;
            let vip_window = windows >= 4;
            // Window free times; window 1 is the VIP window where there is one.
            let mut free: Vec<i64> = vec![0; windows as usize];
            let mut starts: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
            let mut numbers = [0u16; 26];
            for a in &arrivals[start..end] {
                let vip = vip_window && a.business == BUSINESS_VIP;
                let pool: std::ops::Range<usize> = if !vip_window {
                    0..windows as usize
                } else if vip {
                    0..1
                } else {
                    1..windows as usize
                };
                let (letter, _, _, median_min) = BUSINESS_TYPES[a.business];
                let slot = (letter - b'A') as usize;
                numbers[slot] += 1;
                let w = pool
                    .clone()
                    .min_by_key(|&w| (free[w], w))
                    .expect("pool has a window");
                let call = free[w].max(a.at);
                let queue = &mut starts[usize::from(vip)];
                let ahead = queue.len() - queue.partition_point(|&s| s <= a.at);
                let mut visit = VisitRec {
                    id: 0,
                    region: key.0,
                    branch: key.1,
                    customer: a.customer,
                    tier: a.tier,
                    letter,
                    number: numbers[slot],
                    business_type: BUSINESS_TYPES[a.business].1,
                    special_needs: a.special,
                    arrived_at: a.at,
                    called_at: None,
                    service_started_at: None,
                    service_ended_at: None,
                    window: None,
                    outcome: VisitOutcome::Served,
                    score: None,
                };
                let balk = 1.0 - (-((ahead as f64 - 4.0).max(0.0)) / 14.0).exp();
                if self.rng.random::<f64>() < balk.min(0.7) && a.special == SpecialNeeds::None {
                    visit.outcome = VisitOutcome::Balked;
                    out.push(visit);
                    continue;
                }
                queue.push(call);
                visit.called_at = Some(call);
                visit.window = Some(w as u8 + 1);
                if self.rng.random::<f64>() < 0.02 {
                    visit.outcome = VisitOutcome::NoShow;
                    free[w] = call + 60;
                    out.push(visit);
                    continue;
                }
                let started = call + self.rng.random_range(15..90);
                let service = (lognormal(&mut self.rng, median_min * 60.0, 0.55) as i64).max(60);
                visit.service_started_at = Some(started);
                visit.service_ended_at = Some(started + service);
                free[w] = started + service;
                if self.rng.random::<f64>() < 0.3 {
                    let waited = call - a.at;
                    visit.score = Some(match self.rng.random::<f64>() {
                        u if u < if waited > 900 { 0.25 } else { 0.03 } => 2,
                        u if u < if waited > 900 { 0.55 } else { 0.12 } => 3,
                        u if u < if waited > 900 { 0.85 } else { 0.40 } => 4,
                        _ => 5,
                    });
                }
                out.push(visit);
            }
            start = end;
        }
        out.sort_by_key(|v| v.arrived_at);
        for v in &mut out {
            v.id = self.next_visit;
            self.next_visit += 1;
        }
        rows.visits = out;
    }
}

/// A ticket as an export made at `cut` shows it: the workflow events before the cut, the
/// status they give, and `updated_at` the latest of them. The simulation builds each ticket
/// with its whole lifecycle; the plain output observes it at the end of the period, the
/// office exports at the end of each day they report on.
pub fn observe(mut t: TicketRec, cut: i64) -> TicketRec {
    let seen = |v: Option<i64>| v.filter(|&x| x < cut);
    if matches!(t.status, TicketStatus::Rejected | TicketStatus::Withdrawn) {
        t.dispatched_at = seen(t.dispatched_at);
        if t.closed_at.is_some_and(|c| c >= cut) {
            t.closed_at = None;
            t.status = if t.dispatched_at.is_some() {
                TicketStatus::Dispatched
            } else {
                TicketStatus::Received
            };
        }
    } else {
        t.dispatched_at = seen(t.dispatched_at);
        t.first_contact_at = seen(t.first_contact_at);
        t.resolved_at = seen(t.resolved_at);
        t.closed_at = seen(t.closed_at);
        t.status = if t.closed_at.is_some() {
            TicketStatus::Closed
        } else if t.resolved_at.is_some() {
            TicketStatus::Replied
        } else if t.first_contact_at.is_some() {
            TicketStatus::InProgress
        } else if t.dispatched_at.is_some() {
            TicketStatus::Dispatched
        } else {
            TicketStatus::Received
        };
        if t.resolved_at.is_none() {
            t.reopened_count = 0;
            // Whether a complaint was justified is the investigation's finding: not
            // known before the ticket is resolved.
            t.justified = None;
        }
    }
    t.updated_at = lifecycle_events(&t).max().unwrap_or(t.created_at);
    t
}

/// The instants at which a ticket's exported state changes: received, dispatched, first
/// contact, resolved, closed.
pub fn lifecycle_events(t: &TicketRec) -> impl Iterator<Item = i64> {
    [
        Some(t.created_at),
        t.dispatched_at,
        t.first_contact_at,
        t.resolved_at,
        t.closed_at,
    ]
    .into_iter()
    .flatten()
}

/// A uniform number in [0, 1) from `(seed, id, salt)` (SplitMix64's finaliser): random
/// draws that leave the simulation's own stream untouched.
pub(crate) fn unit_hash(seed: u64, id: u64, salt: u64) -> f64 {
    let mut z = seed
        .wrapping_add(id.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The person a complaint is about, if any: most often for staff attitude, seldom for
/// field work and sales, rarely otherwise; a counter employee when the complaint was
/// made at the branch, else a hotline agent. A few people draw most complaints (the
/// pick is skewed), so the 3-in-6-months rule flags a minority. Drawn from a hash of
/// the ticket id, not the simulation's stream, so adding it changed no other value.
fn complaint_subject(
    seed: u64,
    world: &World,
    ticket: u64,
    category: &str,
    channel: TicketChannel,
    (region, branch): (u16, u16),
) -> Option<Subject> {
    let draw = |salt: u64| unit_hash(seed, ticket, salt);
    // Most complaints name no one (the customer does not know the name, or the matter is
    // a system's); a complaint about attitude nearly always does.
    let about_a_person = match category {
        "staff_attitude" => 0.8,
        "install_delay"
        | "repair_delay"
        | "broadband_install"
        | "line_repair"
        | "relocation"
        | "marketing_harassment" => 0.3,
        _ => 0.1,
    };
    if draw(1) >= about_a_person {
        return None;
    }
    // Strongly skewed: the first of n people draws (1/n)^(1/3) of them (a quarter of 60).
    let skewed = |n: u32| ((draw(2).powi(3) * f64::from(n)) as u32).min(n - 1) + 1;
    let r = &world.regions[region as usize];
    Some(match channel {
        TicketChannel::Counter | TicketChannel::WalkIn => {
            Subject::Counter(skewed(u32::from(r.branches[branch as usize].windows)) as u8)
        }
        _ => Subject::Agent(skewed(r.agents)),
    })
}
