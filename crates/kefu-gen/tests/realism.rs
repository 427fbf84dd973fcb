//! The generator's realism properties, checked with SQL (DataFusion) over its CSV output
//! read with the canonical schemas. Thresholds come from domain.md; each check says which
//! property it guards. All checks share one generated data set and report together.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Datelike, NaiveDate, Weekday};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::{CsvReadOptions, SessionConfig, SessionContext};
use kefu_gen::{GenConfig, generate};
use kefu_model::Table;
use kefu_progress::NoProgress;

const START: (i32, u32, u32) = (2026, 1, 1);
const DAYS: u32 = 150;
const CUSTOMERS: u32 = 20_000;

async fn session(dir: &Path) -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
    for table in Table::ALL {
        let schema = table.schema();
        let path = dir.join(format!("{}.csv", table.name()));
        ctx.register_csv(
            table.name(),
            path.to_str().unwrap(),
            CsvReadOptions::new()
                .schema(&schema)
                .has_header(true)
                .newlines_in_values(true),
        )
        .await
        .unwrap();
    }
    // Local (UTC+8) calendar day number and hour, by plain arithmetic on the epoch.
    for (view, table, column) in [
        ("calls_l", "calls", "ivr_entered_at"),
        ("visits_l", "visits", "arrived_at"),
    ] {
        ctx.sql(&format!(
            "CREATE VIEW {view} AS SELECT *, \
             CAST(floor((date_part('epoch', {column}) + 28800) / 86400) AS BIGINT) AS lday, \
             CAST(floor(((date_part('epoch', {column}) + 28800) % 86400) / 3600) AS BIGINT) AS lhour \
             FROM {table}"
        ))
        .await
        .unwrap();
    }
    ctx
}

/// Runs a query and returns its rows as f64 columns (nulls as NaN).
async fn query(ctx: &SessionContext, sql: &str) -> Vec<Vec<f64>> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = Vec::new();
    for b in batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Float64).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            rows.push(
                cols.iter()
                    .map(|c| {
                        let a = c.as_primitive::<Float64Type>();
                        if a.is_null(r) { f64::NAN } else { a.value(r) }
                    })
                    .collect(),
            );
        }
    }
    rows
}

async fn scalar(ctx: &SessionContext, sql: &str) -> f64 {
    query(ctx, sql).await[0][0]
}

async fn count(ctx: &SessionContext, sql: &str) -> i64 {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let col = cast(batches[0].column(0), &DataType::Int64).unwrap();
    col.as_primitive::<Int64Type>().value(0)
}

struct Checks {
    failures: Vec<String>,
    passed: usize,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
            eprintln!("ok   {name}: {detail}");
        } else {
            eprintln!("FAIL {name}: {detail}");
            self.failures.push(format!("{name}: {detail}"));
        }
    }
    fn range(&mut self, name: &str, v: f64, lo: f64, hi: f64) {
        self.check(
            name,
            (lo..=hi).contains(&v),
            format!("{v:.4} expected in [{lo}, {hi}]"),
        );
    }
    fn zero(&mut self, name: &str, n: i64) {
        self.check(name, n == 0, format!("{n} violating rows"));
    }
}

fn local_date(lday: f64) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(lday as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_logs_are_realistic() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GenConfig::new(dir.path());
    cfg.customers = CUSTOMERS;
    cfg.days = DAYS;
    cfg.start = NaiveDate::from_ymd_opt(START.0, START.1, START.2).unwrap();
    cfg.regions = 5;
    cfg.seed = 7;
    // Dense complaints (50 times the default: 0.3 tickets in all per customer-month) so
    // that repeat chains, escalation levels, a hot spot and the people complained about
    // show at this size. The default's rate and the rules it feeds are held to the
    // documents at 60,000 customers in crates/kefu-sql/tests/library.rs.
    cfg.complaints_per_customer_month = 0.075;
    let summary = generate(&cfg, &NoProgress).unwrap();
    let ctx = session(dir.path()).await;
    let mut c = Checks {
        failures: Vec::new(),
        passed: 0,
    };

    // --- the files hold what the summary says, and every row parses with the model's schema
    for (table, n) in &summary.rows {
        let got = count(&ctx, &format!("SELECT count(*) FROM {table}")).await;
        c.check(
            &format!("row count {table}"),
            got as u64 == *n,
            format!("{got} vs {n}"),
        );
    }

    referential_integrity(&ctx, &mut c).await;
    timestamps_ordered(&ctx, &mut c).await;
    volumes(&ctx, &mut c).await;
    calls(&ctx, &mut c).await;
    calendar(&ctx, &mut c).await;
    tickets(&ctx, &mut c).await;
    callbacks(&ctx, &mut c).await;
    visits(&ctx, &mut c).await;
    churn(&ctx, &mut c, &cfg).await;
    dimensions(&ctx, &mut c).await;

    eprintln!("{} checks passed, {} failed", c.passed, c.failures.len());
    assert!(
        c.failures.is_empty(),
        "realism checks failed:\n{}",
        c.failures.join("\n")
    );
}

async fn referential_integrity(ctx: &SessionContext, c: &mut Checks) {
    for (table, id) in [
        ("calls", "call_id"),
        ("tickets", "ticket_id"),
        ("callbacks", "callback_id"),
        ("visits", "visit_id"),
        ("customers", "customer_id"),
    ] {
        let dup = count(
            ctx,
            &format!("SELECT count(*) - count(DISTINCT {id}) FROM {table}"),
        )
        .await;
        c.zero(&format!("{table}.{id} unique"), dup);
    }
    for (table, column, parent, key) in [
        ("calls", "customer_id", "customers", "customer_id"),
        ("tickets", "customer_id", "customers", "customer_id"),
        ("callbacks", "customer_id", "customers", "customer_id"),
        ("visits", "customer_id", "customers", "customer_id"),
        ("callbacks", "ticket_id", "tickets", "ticket_id"),
        ("callbacks", "call_id", "calls", "call_id"),
        ("tickets", "parent_ticket_id", "tickets", "ticket_id"),
    ] {
        let orphans = count(
            ctx,
            &format!(
                "SELECT count(*) FROM {table} x LEFT JOIN {parent} p ON x.{column} = p.{key} \
                 WHERE x.{column} IS NOT NULL AND p.{key} IS NULL"
            ),
        )
        .await;
        c.zero(&format!("{table}.{column} → {parent}"), orphans);
    }
    // A callback follows either a ticket or a call, never both or neither.
    c.zero(
        "callback has exactly one subject",
        count(
            ctx,
            "SELECT count(*) FROM callbacks WHERE (ticket_id IS NULL) = (call_id IS NULL)",
        )
        .await,
    );
    // Customers only act while their account is open.
    for (table, time) in [
        ("calls", "ivr_entered_at"),
        ("tickets", "created_at"),
        ("visits", "arrived_at"),
    ] {
        let outside = count(
            ctx,
            &format!(
                "SELECT count(*) FROM {table} x JOIN customers u ON x.customer_id = u.customer_id \
                 WHERE x.{time} < u.opened_at OR x.{time} >= u.closed_at"
            ),
        )
        .await;
        c.zero(&format!("{table} within customer lifetime"), outside);
    }
}

async fn timestamps_ordered(ctx: &SessionContext, c: &mut Checks) {
    let checks = [
        (
            "calls: ivr ≤ queued ≤ answered ≤ ended",
            "SELECT count(*) FROM calls WHERE queued_at < ivr_entered_at OR answered_at < queued_at \
             OR answered_at < ivr_entered_at OR ended_at < coalesce(answered_at, queued_at, ivr_entered_at)",
        ),
        (
            "calls: wait_s = answered (or hang-up) − queued",
            "SELECT count(*) FROM calls WHERE queued_at IS NOT NULL AND wait_s <> \
             date_part('epoch', coalesce(answered_at, ended_at)) - date_part('epoch', queued_at)",
        ),
        (
            "calls: talk + hold = ended − answered (inbound)",
            "SELECT count(*) FROM calls WHERE direction = 'inbound' AND answered_at IS NOT NULL AND \
             talk_s + hold_s <> date_part('epoch', ended_at) - date_part('epoch', answered_at)",
        ),
        (
            "calls: never-queued calls have no wait, unanswered no talk",
            "SELECT count(*) FROM calls WHERE (queued_at IS NULL AND wait_s IS NOT NULL) \
             OR (answered_at IS NULL AND (talk_s IS NOT NULL OR agent_id IS NOT NULL AND direction = 'inbound'))",
        ),
        (
            "tickets: created ≤ dispatched ≤ first contact, created ≤ resolved ≤ closed",
            "SELECT count(*) FROM tickets WHERE dispatched_at < created_at \
             OR first_contact_at < dispatched_at OR resolved_at < created_at OR closed_at < resolved_at \
             OR closed_at < created_at OR due_at <= created_at",
        ),
        (
            "tickets: status agrees with the timestamps",
            "SELECT count(*) FROM tickets WHERE (status = 'closed' AND closed_at IS NULL) \
             OR (status IN ('replied', 'callback_done') AND (resolved_at IS NULL OR closed_at IS NOT NULL)) \
             OR (status IN ('in_progress', 'dispatched', 'received') AND resolved_at IS NOT NULL)",
        ),
        (
            "visits: arrived ≤ called ≤ started ≤ ended",
            "SELECT count(*) FROM visits WHERE called_at < arrived_at \
             OR service_started_at < called_at OR service_ended_at < service_started_at",
        ),
        (
            "visits: outcome agrees with the timestamps",
            "SELECT count(*) FROM visits WHERE (outcome = 'served' AND service_ended_at IS NULL) \
             OR (outcome = 'balked' AND called_at IS NOT NULL) \
             OR (outcome = 'no_show' AND (called_at IS NULL OR service_started_at IS NOT NULL))",
        ),
        (
            "callbacks follow the resolution of their ticket",
            "SELECT count(*) FROM callbacks b JOIN tickets t ON b.ticket_id = t.ticket_id \
             WHERE t.resolved_at IS NULL OR b.performed_at < t.resolved_at",
        ),
        (
            "callbacks follow the end of their call",
            "SELECT count(*) FROM callbacks b JOIN calls k ON b.call_id = k.call_id \
             WHERE b.performed_at < k.ended_at",
        ),
        (
            "customers: opened before closed, reason iff closed",
            "SELECT count(*) FROM customers WHERE closed_at <= opened_at \
             OR (closed_at IS NULL) <> (close_reason IS NULL)",
        ),
    ];
    for (name, sql) in checks {
        c.zero(name, count(ctx, sql).await);
    }
}

async fn volumes(ctx: &SessionContext, c: &mut Checks) {
    // Customer-months of activity: each day contributes the customers active on it.
    let months = CUSTOMERS as f64 * f64::from(DAYS) / 30.4;
    let calls = count(ctx, "SELECT count(*) FROM calls").await as f64;
    let tickets = count(ctx, "SELECT count(*) FROM tickets").await as f64;
    let visits = count(
        ctx,
        "SELECT count(*) FROM visits WHERE customer_id IS NOT NULL",
    )
    .await as f64;
    c.range("calls per customer-month (≈3)", calls / months, 2.5, 3.6);
    c.range(
        "tickets per customer-month (≈0.3)",
        tickets / months,
        0.24,
        0.4,
    );
    // Weekends and holidays have fewer visits, so identified visits average under 1.
    c.range("visits per customer-month (≈1)", visits / months, 0.7, 1.1);
}

async fn calls(ctx: &SessionContext, c: &mut Checks) {
    let abandoned = scalar(
        ctx,
        "SELECT avg(CASE WHEN outcome = 'abandoned' THEN 1.0 ELSE 0.0 END) FROM calls \
         WHERE direction = 'inbound' AND queued_at IS NOT NULL",
    )
    .await;
    c.range(
        "abandoned share of queued calls (15–25%)",
        abandoned,
        0.15,
        0.25,
    );
    let short_abandons = scalar(
        ctx,
        "SELECT avg(CASE WHEN wait_s < 5 THEN 1.0 ELSE 0.0 END) FROM calls WHERE outcome = 'abandoned'",
    )
    .await;
    c.range("short abandons (< 5 s) exist", short_abandons, 0.01, 0.3);
    let ivr = scalar(
        ctx,
        "SELECT avg(CASE WHEN outcome = 'ivr_self_service' THEN 1.0 ELSE 0.0 END) FROM calls \
         WHERE direction = 'inbound'",
    )
    .await;
    c.range("IVR self-service share", ivr, 0.1, 0.3);
    // The spike of very short services: far more 1–5 s talks than 6–10 s talks.
    let r = query(
        ctx,
        "SELECT sum(CASE WHEN talk_s <= 5 THEN 1 ELSE 0 END), \
                sum(CASE WHEN talk_s BETWEEN 6 AND 10 THEN 1 ELSE 0 END), count(*) \
         FROM calls WHERE direction = 'inbound' AND answered_at IS NOT NULL",
    )
    .await;
    let (short, next, all) = (r[0][0], r[0][1], r[0][2]);
    c.check(
        "spike of very short services",
        short / all > 0.025 && short > 3.0 * next,
        format!("{:.1}% at 1–5 s vs {next} at 6–10 s", 100.0 * short / all),
    );
    // Waits grow with load: the busiest hours wait longer than quiet ones.
    let w = query(
        ctx,
        "SELECT lhour, avg(wait_s) FROM calls_l WHERE direction = 'inbound' AND queued_at IS NOT NULL \
         GROUP BY lhour ORDER BY lhour",
    )
    .await;
    let wait_at = |h: f64| w.iter().find(|r| r[0] == h).map_or(f64::NAN, |r| r[1]);
    c.check(
        "calls wait longer at 10:00 than at 07:00",
        wait_at(10.0) > 2.0 * wait_at(7.0),
        format!("{:.0} s vs {:.0} s", wait_at(10.0), wait_at(7.0)),
    );
    // Repeat contacts within 7 days exist (FCR proxy).
    let repeat = scalar(
        ctx,
        "SELECT avg(CASE WHEN n > 0 THEN 1.0 ELSE 0.0 END) FROM ( \
           SELECT a.call_id, count(b.call_id) AS n \
           FROM (SELECT * FROM calls WHERE customer_id IS NOT NULL AND direction = 'inbound' \
                 ORDER BY call_id LIMIT 20000) a \
           LEFT JOIN calls b ON b.customer_id = a.customer_id \
             AND b.ivr_entered_at > a.ivr_entered_at \
             AND b.ivr_entered_at < a.ivr_entered_at + INTERVAL '7 days' \
           GROUP BY a.call_id)",
    )
    .await;
    c.range("repeat contacts within 7 days", repeat, 0.05, 0.6);
}

async fn calendar(ctx: &SessionContext, c: &mut Checks) {
    let hours = query(
        ctx,
        "SELECT lhour, count(*) FROM calls_l WHERE (lday + 4) % 7 BETWEEN 1 AND 5 GROUP BY lhour ORDER BY lhour",
    )
    .await;
    let h = |x: f64| hours.iter().find(|r| r[0] == x).map_or(0.0, |r| r[1]);
    let peak = (h(9.0) + h(10.0) + h(14.0) + h(15.0)) / 4.0;
    let lunch = (h(12.0) + h(13.0)) / 2.0;
    let edges = (h(6.0) + h(22.0)) / 2.0;
    c.check(
        "weekday peaks at 9–11 and 14–16 above lunch",
        peak > 1.4 * lunch,
        format!("peak {peak:.0}/h vs lunch {lunch:.0}/h"),
    );
    c.check(
        "weekday peaks far above early and late hours",
        peak > 5.0 * edges,
        format!("peak {peak:.0}/h vs {edges:.0}/h"),
    );
    let days = query(
        ctx,
        "SELECT lday, count(*) FROM calls_l GROUP BY lday ORDER BY lday",
    )
    .await;
    let by_day: BTreeMap<NaiveDate, f64> = days.iter().map(|r| (local_date(r[0]), r[1])).collect();
    let plain_workday = |d: &NaiveDate| {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
            && d.day() > 2
            && d.day() < 27
            && !(d.month() == 2 && (14..=28).contains(&d.day()))
    };
    let mean = |f: &dyn Fn(&NaiveDate) -> bool| {
        let v: Vec<f64> = by_day
            .iter()
            .filter(|(d, _)| f(d))
            .map(|(_, n)| *n)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let workday = mean(&plain_workday);
    let weekend = mean(&|d| matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && d.month() != 2);
    c.check(
        "weekends quieter",
        weekend < 0.75 * workday,
        format!("weekend {weekend:.0}/day vs workday {workday:.0}/day"),
    );
    // Spring Festival 2026: 17 Feb; the working days after the holiday carry a backlog.
    let after = mean(&|d| d.month() == 2 && (24..=26).contains(&d.day()));
    c.check(
        "spike after the Spring Festival holiday",
        after > 1.25 * workday,
        format!("{after:.0}/day vs {workday:.0}/day"),
    );
    let month_end = mean(&|d| {
        let next = *d + chrono::Days::new(2);
        next.month() != d.month() && !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
    });
    c.check(
        "month-end spike",
        month_end > 1.1 * workday,
        format!("{month_end:.0}/day vs {workday:.0}/day"),
    );
}

async fn tickets(ctx: &SessionContext, c: &mut Checks) {
    let cats = query(
        ctx,
        "SELECT count(*) AS n FROM tickets WHERE kind = 'complaint' GROUP BY category ORDER BY n DESC",
    )
    .await;
    let total: f64 = cats.iter().map(|r| r[0]).sum();
    let top3: f64 = cats.iter().take(3).map(|r| r[0]).sum();
    c.check(
        "complaint categories skewed (top 3 ≥ 50%)",
        top3 / total >= 0.5 && cats.len() >= 8,
        format!(
            "top 3 hold {:.1}% of {total} over {} categories",
            100.0 * top3 / total,
            cats.len()
        ),
    );
    let repeaters = count(
        ctx,
        "SELECT count(*) FROM (SELECT customer_id FROM tickets WHERE kind = 'complaint' \
         GROUP BY customer_id HAVING count(*) >= 3)",
    )
    .await;
    c.check(
        "repeat complainers (≥ 3 complaints)",
        repeaters >= 30,
        format!("{repeaters} customers"),
    );
    for level in ["repeat", "over_level", "appeal"] {
        let n = count(
            ctx,
            &format!("SELECT count(*) FROM tickets WHERE kind = 'complaint' AND level = '{level}'"),
        )
        .await;
        c.check(
            &format!("escalation level {level} present"),
            n >= 10,
            format!("{n}"),
        );
    }
    c.zero(
        "escalations link to an earlier complaint of the same customer and category",
        count(
            ctx,
            "SELECT count(*) FROM tickets x LEFT JOIN tickets p ON x.parent_ticket_id = p.ticket_id \
             WHERE x.level <> 'first' AND (p.ticket_id IS NULL OR p.customer_id <> x.customer_id \
             OR p.category <> x.category OR p.created_at >= x.created_at OR p.kind <> 'complaint')",
        )
        .await,
    );
    c.zero(
        "over-level complaints come from headquarters, appeals from a regulator",
        count(
            ctx,
            "SELECT count(*) FROM tickets WHERE (level = 'over_level' AND source <> 'hq_transferred') \
             OR (level = 'appeal' AND (source <> 'regulator_transferred' OR channel <> 'regulator_transfer'))",
        )
        .await,
    );
    let breach = scalar(
        ctx,
        "SELECT avg(CASE WHEN resolved_at > due_at THEN 1.0 ELSE 0.0 END) FROM tickets \
         WHERE kind = 'complaint' AND resolved_at IS NOT NULL",
    )
    .await;
    c.range(
        "complaints resolved after the SLA deadline",
        breach,
        0.05,
        0.35,
    );
    let overdue_open = count(
        ctx,
        "SELECT count(*) FROM tickets WHERE resolved_at IS NULL AND status NOT IN ('rejected', 'withdrawn') \
         AND due_at < (SELECT max(created_at) FROM tickets)",
    )
    .await;
    c.check(
        "unresolved tickets past their deadline exist",
        overdue_open > 0,
        format!("{overdue_open}"),
    );
    let first_contact = scalar(
        ctx,
        "SELECT avg(CASE WHEN first_contact_at <= dispatched_at + INTERVAL '2 hours' THEN 1.0 ELSE 0.0 END) \
         FROM tickets WHERE first_contact_at IS NOT NULL",
    )
    .await;
    c.range(
        "first contact within 2 hours of dispatch",
        first_contact,
        0.6,
        0.97,
    );
    // The hot spot: one category's weekly count jumps far above its trailing level.
    let weekly = query(
        ctx,
        "SELECT CAST(floor(date_part('epoch', created_at) / 604800) AS BIGINT) AS w, count(*) \
         FROM tickets WHERE category = 'app_malfunction' GROUP BY w ORDER BY w",
    )
    .await;
    let counts: Vec<f64> = weekly.iter().map(|r| r[1]).collect();
    let median = {
        let mut s = counts.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let max = counts.iter().copied().fold(0.0, f64::max);
    c.check(
        "a hot spot: one week of app_malfunction far above its usual level",
        max > 3.0 * median,
        format!("max {max} vs median {median} per week"),
    );
}

async fn callbacks(ctx: &SessionContext, c: &mut Checks) {
    let sat = scalar(
        ctx,
        "SELECT sum(CASE WHEN score IN ('very_satisfied', 'satisfied') THEN 1.0 ELSE 0.0 END) / count(score) \
         FROM callbacks",
    )
    .await;
    c.range("callback satisfaction", sat, 0.75, 0.97);
    c.zero(
        "every dissatisfied answer has a reason",
        count(
            ctx,
            "SELECT count(*) FROM callbacks WHERE (score = 'dissatisfied') <> (reason IS NOT NULL)",
        )
        .await,
    );
    c.zero(
        "scores only when reached",
        count(
            ctx,
            "SELECT count(*) FROM callbacks WHERE status = 'no_answer' AND score IS NOT NULL",
        )
        .await,
    );
    let coverage = scalar(
        ctx,
        "SELECT avg(CASE WHEN b.ticket_id IS NOT NULL THEN 1.0 ELSE 0.0 END) FROM tickets t \
         LEFT JOIN (SELECT DISTINCT ticket_id FROM callbacks) b ON b.ticket_id = t.ticket_id \
         WHERE t.kind IN ('complaint', 'work_order') AND t.status = 'closed'",
    )
    .await;
    c.range(
        "callback coverage of closed complaints and work orders",
        coverage,
        0.9,
        0.995,
    );
    let same_day = query(
        ctx,
        "SELECT avg(CASE WHEN floor((date_part('epoch', b.performed_at) + 28800) / 86400) = \
                             floor((date_part('epoch', t.resolved_at) + 28800) / 86400) THEN 1.0 ELSE 0.0 END), \
                avg(CASE WHEN b.performed_at <= t.resolved_at + INTERVAL '3 days' THEN 1.0 ELSE 0.0 END) \
         FROM callbacks b JOIN tickets t ON b.ticket_id = t.ticket_id WHERE b.attempt = 1",
    )
    .await;
    c.range(
        "callbacks on the day of resolution",
        same_day[0][0],
        0.4,
        0.9,
    );
    c.range("callbacks within 3 days", same_day[0][1], 0.8, 0.98);
    let followed = scalar(
        ctx,
        "SELECT avg(CASE WHEN m.ticket_id IS NOT NULL THEN 1.0 ELSE 0.0 END) \
         FROM callbacks a LEFT JOIN (SELECT DISTINCT ticket_id FROM callbacks \
           WHERE attempt = 2 AND method = 'manual') m ON m.ticket_id = a.ticket_id \
         WHERE a.attempt = 1 AND a.ticket_id IS NOT NULL \
           AND ((a.status = 'no_answer' AND a.method <> 'manual') OR a.score = 'dissatisfied') \
           AND a.performed_at < (SELECT max(performed_at) FROM callbacks) - INTERVAL '2 days'",
    )
    .await;
    c.range(
        "failed automatic and dissatisfied callbacks get a manual one",
        followed,
        0.999,
        1.0,
    );
}

async fn visits(ctx: &SessionContext, c: &mut Checks) {
    let groups = query(
        ctx,
        "SELECT count(*) AS n, avg(date_part('epoch', called_at) - date_part('epoch', arrived_at)) \
         FROM visits_l WHERE called_at IS NOT NULL GROUP BY branch_id, lday, lhour ORDER BY n",
    )
    .await;
    let q = groups.len() / 4;
    let mean_wait = |rows: &[Vec<f64>]| rows.iter().map(|r| r[1]).sum::<f64>() / rows.len() as f64;
    let quiet = mean_wait(&groups[..q]);
    let busy = mean_wait(&groups[groups.len() - q..]);
    c.check(
        "branch waits grow with arrivals (busiest vs quietest quarter of branch-hours)",
        busy > 2.0 * quiet,
        format!("{busy:.0} s vs {quiet:.0} s"),
    );
    let r = query(
        ctx,
        "SELECT avg(CASE WHEN outcome = 'balked' THEN 1.0 ELSE 0.0 END), \
                avg(CASE WHEN called_at > arrived_at + INTERVAL '10 minutes' THEN 1.0 ELSE 0.0 END), \
                avg(CASE WHEN service_ended_at > service_started_at + INTERVAL '20 minutes' THEN 1.0 ELSE 0.0 END), \
                avg(CASE WHEN special_needs <> 'none' THEN 1.0 ELSE 0.0 END) \
         FROM visits",
    )
    .await;
    c.range("balking rate", r[0][0], 0.005, 0.2);
    c.range("waits over 10 minutes", r[0][1], 0.03, 0.6);
    c.range("handling over 20 minutes", r[0][2], 0.005, 0.2);
    c.range("special-needs services", r[0][3], 0.02, 0.08);
}

async fn churn(ctx: &SessionContext, c: &mut Checks, cfg: &GenConfig) {
    let start = format!("{}", cfg.start);
    let end = format!("{}", cfg.start + chrono::Days::new(u64::from(cfg.days)));
    // Monthly churn: closures in a month over customers active at its start.
    for month in 1..=4 {
        let from = format!("2026-{month:02}-01T00:00:00+08:00");
        let to = format!("2026-{:02}-01T00:00:00+08:00", month + 1);
        let rate = scalar(
            ctx,
            &format!(
                "SELECT sum(CASE WHEN closed_at >= '{from}' AND closed_at < '{to}' THEN 1.0 ELSE 0.0 END) / \
                        sum(CASE WHEN opened_at < '{from}' AND (closed_at IS NULL OR closed_at >= '{from}') THEN 1.0 ELSE 0.0 END) \
                 FROM customers"
            ),
        )
        .await;
        c.range(
            &format!("monthly churn 2026-{month:02} (1–2%)"),
            rate,
            0.008,
            0.025,
        );
    }
    // Churners in the 90 days before closing vs retained customers in the last 90 days,
    // counting only customers whose 90-day window lies fully inside the period.
    let window = format!(
        "CREATE VIEW windows AS \
         SELECT customer_id, closed_at - INTERVAL '90 days' AS w_from, closed_at AS w_to, true AS churner \
           FROM customers WHERE closed_at >= TIMESTAMP '{start}T00:00:00+08:00' + INTERVAL '90 days' \
         UNION ALL \
         SELECT customer_id, TIMESTAMP '{end}T00:00:00+08:00' - INTERVAL '90 days', \
                TIMESTAMP '{end}T00:00:00+08:00', false \
           FROM customers WHERE closed_at IS NULL AND opened_at < TIMESTAMP '{start}T00:00:00+08:00'"
    );
    ctx.sql(&window).await.unwrap();
    let per_customer = |what: &str, table: &str, time: &str, filter: &str| {
        format!(
            "SELECT w.churner, \
                    CAST(count(x.customer_id) AS DOUBLE) / count(DISTINCT w.customer_id) AS per_customer \
             FROM windows w LEFT JOIN (SELECT * FROM {table} WHERE {filter}) x \
               ON x.customer_id = w.customer_id AND x.{time} >= w.w_from AND x.{time} < w.w_to \
             GROUP BY w.churner ORDER BY w.churner -- {what}"
        )
    };
    for (what, table, time, filter, ratio) in [
        (
            "complaints",
            "tickets",
            "created_at",
            "kind = 'complaint'",
            2.0,
        ),
        (
            "tickets unresolved by their deadline",
            "tickets",
            "created_at",
            "resolved_at IS NULL OR resolved_at > due_at",
            2.0,
        ),
        (
            "calls that waited over 2 minutes",
            "calls",
            "ivr_entered_at",
            "wait_s > 120",
            1.5,
        ),
        (
            "branch waits over 10 minutes",
            "visits",
            "arrived_at",
            "called_at > arrived_at + INTERVAL '10 minutes'",
            1.3,
        ),
        (
            "dissatisfied callbacks",
            "callbacks",
            "performed_at",
            "score = 'dissatisfied'",
            2.0,
        ),
    ] {
        let rows = query(ctx, &per_customer(what, table, time, filter)).await;
        let (retained, churners) = (rows[0][1], rows[1][1]);
        c.check(
            &format!("churners show more {what} in the 90 days before leaving"),
            churners > ratio * retained,
            format!("{churners:.3} vs {retained:.3} per customer (need ×{ratio})"),
        );
    }
    let n = count(ctx, "SELECT count(*) FROM windows WHERE churner").await;
    c.check(
        "enough churners observed for the comparison",
        n >= 150,
        format!("{n}"),
    );
    let reasons = count(ctx, "SELECT count(DISTINCT close_reason) FROM customers").await;
    c.check(
        "all four churn types occur",
        reasons == 4,
        format!("{reasons}"),
    );
    let migrations = count(
        ctx,
        "SELECT count(*) FROM (SELECT customer_id FROM calls WHERE customer_id IS NOT NULL \
         GROUP BY customer_id HAVING count(DISTINCT customer_tier) > 1)",
    )
    .await;
    c.check(
        "tier migrations visible in events",
        migrations > 20,
        format!("{migrations} customers"),
    );
}

/// The dimensions name everything the events refer to, the hierarchy is whole, and
/// complaints name the people they are about.
async fn dimensions(ctx: &SessionContext, c: &mut Checks) {
    let unknown = |column: &str, table: &str, dim: &str, key: &str| {
        format!(
            "SELECT count(*) FROM {table} WHERE {column} IS NOT NULL \
             AND {column} NOT IN (SELECT {key} FROM {dim})"
        )
    };
    for (column, table, dim, key) in [
        ("region", "calls", "org_units", "unit_id"),
        ("branch_id", "calls", "org_units", "unit_id"),
        ("branch_id", "tickets", "org_units", "unit_id"),
        ("branch_id", "visits", "org_units", "unit_id"),
        ("branch_id", "customers", "org_units", "unit_id"),
        ("agent_id", "calls", "staff", "staff_id"),
        ("staff_id", "visits", "staff", "staff_id"),
        ("owner_id", "tickets", "staff", "staff_id"),
        ("subject_staff_id", "tickets", "staff", "staff_id"),
        ("queue", "calls", "queues", "queue"),
        ("category", "tickets", "categories", "category"),
        ("category", "calls", "categories", "category"),
        ("parent_id", "org_units", "org_units", "unit_id"),
        ("unit_id", "staff", "org_units", "unit_id"),
    ] {
        let n = count(ctx, &unknown(column, table, dim, key)).await;
        c.zero(&format!("{table}.{column} named in {dim}"), n);
    }
    let levels = count(ctx, "SELECT count(DISTINCT level) FROM org_units").await;
    c.check(
        "every level of the hierarchy",
        levels == 5,
        format!("{levels}"),
    );
    // How many people the complaints name (whether the 3-in-6-months rule then flags a
    // minority of them depends on the complaint rate: checked at the default rate in
    // crates/kefu-sql/tests/library.rs).
    let r = query(
        ctx,
        "SELECT count(DISTINCT subject_staff_id) FROM tickets \
         WHERE kind = 'complaint' AND justified AND subject_staff_id IS NOT NULL",
    )
    .await;
    c.check(
        "complaints name the people they are about",
        r[0][0] >= 30.0,
        format!("{}", r[0][0]),
    );
}
