//! The simulated organisation and its customers: regions (cities) with call centres and
//! branches, and a customer population whose fates (tier changes, churn) are drawn up front.

use kefu_model::vocab::{CloseReason, CustomerTier, Segment};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Exp, LogNormal};

use crate::calendar::{DAY_S, day_info};
use crate::config::GenConfig;

/// Cities the regions are named after (pinyin code, Chinese name).
const CITIES: &[(&str, &str)] = &[
    ("beijing", "北京"),
    ("shanghai", "上海"),
    ("guangzhou", "广州"),
    ("shenzhen", "深圳"),
    ("hangzhou", "杭州"),
    ("nanjing", "南京"),
    ("chengdu", "成都"),
    ("wuhan", "武汉"),
    ("xian", "西安"),
    ("chongqing", "重庆"),
    ("tianjin", "天津"),
    ("suzhou", "苏州"),
    ("changsha", "长沙"),
    ("zhengzhou", "郑州"),
    ("jinan", "济南"),
    ("qingdao", "青岛"),
    ("shenyang", "沈阳"),
    ("dalian", "大连"),
    ("xiamen", "厦门"),
    ("fuzhou", "福州"),
    ("hefei", "合肥"),
    ("kunming", "昆明"),
    ("nanning", "南宁"),
    ("harbin", "哈尔滨"),
    ("changchun", "长春"),
    ("shijiazhuang", "石家庄"),
    ("taiyuan", "太原"),
    ("nanchang", "南昌"),
    ("guiyang", "贵阳"),
    ("lanzhou", "兰州"),
    ("urumqi", "乌鲁木齐"),
    ("hohhot", "呼和浩特"),
];

pub const MAX_REGIONS: u16 = CITIES.len() as u16;

/// Monthly explicit churn hazard of an average customer (domain: 1–2% a month).
const MONTHLY_CHURN: f64 = 0.015;
/// New accounts a month, as a share of the starting base (keeps the base roughly stable).
const MONTHLY_ACQUISITION: f64 = 0.016;
/// Share of customers whose tier moves one step during a month.
const MONTHLY_TIER_MOVE: f64 = 0.005;

#[derive(Debug, Clone)]
pub struct Branch {
    pub id: String,
    /// Counter windows open; window 1 is the VIP window where there are four or more.
    pub windows: u8,
    /// `W01`… and the staff at each window, `<branch>-S01`…, by window number − 1.
    pub window_ids: Vec<String>,
    pub staff_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Region {
    pub code: String,
    pub zh: &'static str,
    pub call_centre: String,
    pub branches: Vec<Branch>,
    /// Relative size (share of customers).
    pub weight: f64,
    pub agents: u32,
    pub owners: u32,
    agent_ids: Vec<String>,
    owner_ids: Vec<String>,
}

impl Region {
    /// Agent `n` (1-based): `<region>-A0001`.
    pub fn agent_id(&self, n: u32) -> &str {
        &self.agent_ids[n as usize - 1]
    }
    /// Ticket owner `n` (1-based): `<region>-P001`.
    pub fn owner_id(&self, n: u32) -> &str {
        &self.owner_ids[n as usize - 1]
    }
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub region: u16,
    pub branch: u16,
    pub segment: Segment,
    pub tier_initial: CustomerTier,
    pub tier_final: CustomerTier,
    /// Day index from which `tier_final` applies (i32::MAX: never changes).
    pub tier_change_day: i32,
    /// The instant of the tier change: local midnight starting `tier_change_day`.
    pub tier_changed_at: Option<i64>,
    pub opened_at: i64,
    /// Day index of the account opening (negative: before the period); the customer is
    /// active from the next day on, so no event precedes `opened_at`.
    pub open_day: i32,
    /// Day index on which the account closes (i32::MAX: not within the period).
    pub close_day: i32,
    pub closed_at: Option<i64>,
    pub close_reason: Option<CloseReason>,
    /// Day index from which the customer is in the deterioration phase before leaving.
    pub risk_from: i32,
    /// Relative contact frequency (mean about 1.3, heavy right tail).
    pub activity: f32,
    /// Relative tendency to complain (a few customers complain repeatedly).
    pub complaint_propensity: f32,
}

impl Customer {
    pub fn tier_on(&self, day: i32) -> CustomerTier {
        if day >= self.tier_change_day {
            self.tier_final
        } else {
            self.tier_initial
        }
    }
    pub fn active_on(&self, day: i32) -> bool {
        self.open_day < day && day < self.close_day
    }
    pub fn at_risk_on(&self, day: i32) -> bool {
        day >= self.risk_from && day < self.close_day
    }
}

#[derive(Debug)]
pub struct World {
    pub regions: Vec<Region>,
    pub customers: Vec<Customer>,
    /// Cumulative region weights for sampling the region of anonymous contacts.
    pub region_cumulative: Vec<f64>,
}

fn tier_step(tier: CustomerTier, up: bool) -> CustomerTier {
    use CustomerTier::*;
    match (tier, up) {
        (Basic, true) => Silver,
        (Silver, true) => Gold,
        (Gold, true) | (Diamond, _) => Diamond,
        (Gold, false) => Silver,
        (Silver, false) | (Basic, false) => Basic,
    }
}

impl World {
    pub fn build(cfg: &GenConfig, rng: &mut impl Rng) -> World {
        let n_regions = cfg.regions as usize;
        // Region sizes follow a gentle power law: the capital is biggest.
        let weights: Vec<f64> = (0..n_regions)
            .map(|i| 1.0 / ((i + 1) as f64).powf(0.6))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut regions = Vec::with_capacity(n_regions);
        let calls_per_day = cfg.customers as f64 * cfg.calls_per_customer_month / 30.4;
        for (i, w) in weights.iter().enumerate() {
            let (code, zh) = CITIES[i];
            let share = w / total;
            let customers = cfg.customers as f64 * share;
            // A hall serves about 2,500 customers: a small region has one.
            let n_branches = ((customers / 2500.0).round() as usize).clamp(1, 99);
            // Halls are staffed for an ordinary hour, not for the peak (about 19% of a
            // day's visits arrive in the busiest hour; a visit takes about 9 minutes):
            // at peaks every window is busy and the queue grows, in quiet hours it drains,
            // as in real halls. The same holds at any scale: a small hall has one window.
            let visits_per_day =
                customers * cfg.visits_per_customer_month * 1.25 / 30.4 / n_branches as f64;
            let peak_load = visits_per_day * 0.19 * 9.0 / 60.0;
            let branches = (0..n_branches)
                .map(|b| {
                    let id = format!("{code}-{:02}", b + 1);
                    let windows = (peak_load * rng.random_range(0.8..1.05))
                        .round()
                        .clamp(1.0, 12.0) as u8;
                    Branch {
                        window_ids: (1..=windows).map(|w| format!("W{w:02}")).collect(),
                        staff_ids: (1..=windows).map(|w| format!("{id}-S{w:02}")).collect(),
                        id,
                        windows,
                    }
                })
                .collect();
            // Seats for the peak hour at roughly 8 calls per agent-hour, and a roster 2.2
            // times that: agents work one shift five days a week, with leave and training.
            let peak_hour_calls = calls_per_day * share * 0.09;
            let agents = ((peak_hour_calls / 8.0 * 2.2).ceil() as u32).max(3);
            let owners = ((customers / 1500.0).ceil() as u32).max(2);
            regions.push(Region {
                code: code.to_string(),
                zh,
                call_centre: format!("{code}-cc"),
                branches,
                weight: share,
                agents,
                owners,
                agent_ids: (1..=agents).map(|n| format!("{code}-A{n:04}")).collect(),
                owner_ids: (1..=owners).map(|n| format!("{code}-P{n:03}")).collect(),
            });
        }
        let mut acc = 0.0;
        let region_cumulative = regions
            .iter()
            .map(|r| {
                acc += r.weight;
                acc
            })
            .collect();
        let mut world = World {
            regions,
            customers: Vec::new(),
            region_cumulative,
        };
        world.populate(cfg, rng);
        world
    }

    pub fn sample_region(&self, u: f64) -> u16 {
        let total = *self.region_cumulative.last().expect("at least one region");
        self.region_cumulative
            .partition_point(|&c| c <= u * total)
            .min(self.regions.len() - 1) as u16
    }

    fn populate(&mut self, cfg: &GenConfig, rng: &mut impl Rng) {
        let start_midnight = day_info(cfg.start).midnight_utc;
        let days = cfg.days as i32;
        let daily_acquisition = cfg.customers as f64 * MONTHLY_ACQUISITION / 30.4;
        let new_customers: Vec<i32> = (0..days)
            .flat_map(|d| {
                let n = poisson(rng, daily_acquisition);
                std::iter::repeat_n(d, n as usize)
            })
            .collect();
        let activity = LogNormal::new(0.0, 0.7).expect("valid");
        let tenure_days = Exp::new(1.0 / 1500.0).expect("valid");
        let total = cfg.customers as usize + new_customers.len();
        self.customers.reserve(total);
        for i in 0..total {
            let open_day = if i < cfg.customers as usize {
                -1 - (tenure_days.sample(rng) as i32).min(7000)
            } else {
                new_customers[i - cfg.customers as usize]
            };
            let opened_at = start_midnight
                + i64::from(open_day) * DAY_S
                + rng.random_range(8 * 3600..18 * 3600);
            let region = self.sample_region(rng.random());
            let n_branches = self.regions[region as usize].branches.len();
            let segment = match rng.random::<f64>() {
                u if u < 0.55 => Segment::Individual,
                u if u < 0.90 => Segment::Household,
                _ => Segment::GovEnterprise,
            };
            let vip_boost = if segment == Segment::GovEnterprise {
                2.0
            } else {
                1.0
            };
            let tier = match rng.random::<f64>() {
                u if u < 0.04 * vip_boost => CustomerTier::Diamond,
                u if u < 0.16 * vip_boost => CustomerTier::Gold,
                u if u < 0.38 * vip_boost.sqrt() => CustomerTier::Silver,
                _ => CustomerTier::Basic,
            };
            let mut c = Customer {
                region,
                branch: rng.random_range(0..n_branches) as u16,
                segment,
                tier_initial: tier,
                tier_final: tier,
                tier_change_day: i32::MAX,
                tier_changed_at: None,
                opened_at,
                open_day,
                close_day: i32::MAX,
                closed_at: None,
                close_reason: None,
                risk_from: i32::MAX,
                activity: (activity.sample(rng) as f32).min(crate::sim::MAX_ACTIVITY),
                complaint_propensity: match rng.random::<f64>() {
                    u if u < 0.78 => 0.6,
                    u if u < 0.95 => 2.5,
                    _ => 10.0,
                },
            };
            Self::draw_fate(&mut c, start_midnight, days, rng);
            self.customers.push(c);
        }
    }

    /// Draws when (if ever within the period) the customer leaves, why, and whether the
    /// tier changes. Churners leaving for competitive or service reasons go through a
    /// deterioration phase of 45–120 days in which the simulation worsens their service.
    fn draw_fate(c: &mut Customer, start_midnight: i64, days: i32, rng: &mut impl Rng) {
        let tier_factor = match c.tier_initial {
            CustomerTier::Diamond => 0.45,
            CustomerTier::Gold => 0.7,
            CustomerTier::Silver => 0.9,
            CustomerTier::Basic => 1.15,
        };
        let segment_factor = if c.segment == Segment::GovEnterprise {
            0.6
        } else {
            1.0
        };
        let daily = MONTHLY_CHURN / 30.4 * tier_factor * segment_factor;
        let first = (c.open_day + 1).max(0);
        let wait = Exp::new(daily).expect("positive").sample(rng);
        let close = f64::from(first) + wait;
        if close < f64::from(days) {
            let close_day = close as i32;
            c.close_day = close_day;
            c.closed_at = Some(
                start_midnight
                    + i64::from(close_day) * DAY_S
                    + rng.random_range(9 * 3600..17 * 3600),
            );
            let reason = match rng.random::<f64>() {
                u if u < 0.30 => CloseReason::Natural,
                u if u < 0.65 => CloseReason::Competitive,
                u if u < 0.95 => CloseReason::ServiceFailure,
                _ => CloseReason::Malicious,
            };
            c.close_reason = Some(reason);
            if matches!(
                reason,
                CloseReason::Competitive | CloseReason::ServiceFailure
            ) {
                c.risk_from = close_day - rng.random_range(45..=120);
            }
        }
        let months = f64::from(days) / 30.4;
        if rng.random::<f64>() < MONTHLY_TIER_MOVE * months {
            let at_risk = c.risk_from != i32::MAX;
            let up = !at_risk && rng.random::<f64>() < 0.45;
            c.tier_final = tier_step(c.tier_initial, up);
            let end = c.close_day.min(days).max(first + 1);
            c.tier_change_day = rng.random_range(first..end);
            c.tier_changed_at = Some(start_midnight + i64::from(c.tier_change_day) * DAY_S);
        }
    }
}

/// Poisson draw; the normal approximation above 60 keeps it fast and exact enough.
pub fn poisson(rng: &mut impl Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 60.0 {
        let n: f64 = rand_distr::StandardNormal.sample(rng);
        return (mean + n * mean.sqrt()).round().max(0.0) as u64;
    }
    let limit = (-mean).exp();
    let mut k = 0;
    let mut p: f64 = rng.random();
    while p > limit {
        k += 1;
        p *= rng.random::<f64>();
    }
    k
}
