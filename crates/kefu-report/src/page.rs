//! The report page: one HTML file (template `report.html`, autoescaped by minijinja) with
//! the charts inlined as SVG.

use minijinja::{Environment, context};
use serde::Serialize;

use crate::charts::{self, Scale};
use crate::figures::{Figures, Kpi, KpiKind};
use crate::{Edition, Lang, ReportError, ReportRequest};

const TEMPLATE: &str = include_str!("report.html");

/// A headline card: the month's value with 环比 (against the previous month) and 同比
/// (against the same month a year earlier).
#[derive(Debug, Clone, Serialize)]
pub struct KpiCard {
    pub key: &'static str,
    pub label: &'static str,
    pub value: String,
    pub previous: String,
    pub year_ago: String,
    pub mom: String,
    pub yoy: String,
    pub mom_class: &'static str,
    pub yoy_class: &'static str,
    /// The target, formatted, or empty.
    pub target: String,
    /// Whether the month misses its target.
    pub missed: bool,
    /// Whether the month's value may still change (outcomes not all observed).
    pub provisional: bool,
}

/// A chart: its title and its SVG (self-contained, text escaped).
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub title: String,
    pub svg: String,
}

fn change_text(k: &Kpi, base: Option<f64>, lang: Lang) -> (String, &'static str) {
    let Some(c) = k.change(base) else {
        return ("—".into(), "");
    };
    let text = match k.kind {
        KpiKind::Rate => format!("{:+.1}{}", c * 100.0, lang.pick(" 个百分点", " pts")),
        _ => format!("{:+.1}%", c * 100.0),
    };
    let class = if c == 0.0 {
        ""
    } else if (c > 0.0) == k.higher_is_better {
        "good"
    } else {
        "bad"
    };
    (text, class)
}

/// A table of the page: text only, rendered by the template's `table` macro (which
/// escapes every cell).
#[derive(Debug, serde::Serialize)]
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn table(columns: &[&str], rows: &[Vec<String>]) -> Table {
    Table {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows: rows.to_vec(),
    }
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| Scale::Percent.format(v))
}

pub(crate) fn render(
    request: &ReportRequest,
    figures: &Figures,
    summary: &str,
    snapshot: &kefu_storage::Cut,
    zone: chrono_tz::Tz,
) -> Result<String, ReportError> {
    let lang = request.lang;
    let l = |zh: &'static str, en: &'static str| lang.pick(zh, en);
    let region_text = request
        .region
        .clone()
        .unwrap_or_else(|| l("全部区域", "all regions").to_string());
    let period = request.period;
    let title = match (lang, period.edition) {
        (Lang::Zh, Edition::Month) => format!("{} 客户服务月度报告", period.name(lang)),
        (Lang::Zh, Edition::Half) => format!("{} 客户服务半年度报告", period.name(lang)),
        (Lang::Zh, Edition::Year) => format!("{}度 客户服务年度报告", period.name(lang)),
        (Lang::En, Edition::Half) => {
            format!("Customer service report, {}", &period.name(lang)[4..])
        }
        (Lang::En, _) => format!("Customer service report, {}", period.name(lang)),
    };
    let (previous_basis, year_basis) = period.bases(lang);
    let subtitle = format!(
        "{}: {} · {}: {} – {}",
        l("区域", "Region"),
        region_text,
        l("趋势区间", "Trend"),
        figures.months.first().cloned().unwrap_or_default(),
        figures.months.last().cloned().unwrap_or_default()
    );
    let kpis = kpi_cards(figures, lang);
    let service_table = service_table(figures, lang, period.edition == Edition::Year);
    let trend_charts = trend_charts(figures, lang);
    let regions_table = table(
        &[
            l("区域", "Region"),
            l("来电量", "Calls"),
            l("接通率", "Answer rate"),
            l("投诉量", "Complaints"),
            l("按时办结率", "On time"),
            l("回访满意度", "Satisfaction"),
        ],
        &figures
            .regions
            .iter()
            .map(|r| {
                vec![
                    figures.name("unit", &r.region, lang),
                    charts::thousands(r.offered as i64),
                    percent(r.answer_rate()),
                    charts::thousands(r.complaints as i64),
                    percent(r.on_time_rate()),
                    percent(r.satisfaction()),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let change = |v: Option<f64>| v.map_or_else(|| "—".into(), |c| format!("{:+.1}%", c * 100.0));
    let per_10k = |v: Option<f64>| v.map_or_else(|| "—".into(), |r| format!("{r:.2}"));
    let year_to_date_table = table(
        &[
            l("区域", "Region"),
            l("累计投诉", "Complaints"),
            l("去年同期", "Same period last year"),
            l("同比", "YoY"),
            l("排名", "Rank"),
            l("每万客户", "Per 10,000 customers"),
            l("同比（件）", "YoY (per 10,000)"),
        ],
        &figures
            .year_to_date
            .iter()
            .filter(|y| y.level == "region")
            .map(|y| {
                vec![
                    figures.name("unit", &y.unit_id, lang),
                    charts::thousands(y.complaints as i64),
                    charts::thousands(y.last_year as i64),
                    change(y.change),
                    format!("{} / {}", y.rank, y.peers),
                    per_10k(y.rate),
                    y.rate_change
                        .map_or_else(|| "—".into(), |c| format!("{c:+.2}")),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let year_to_date_title = match lang {
        Lang::Zh => format!(
            "本年累计投诉（1月1日至{}月{}日，同比）",
            figures.year_to_date_end.format("%-m"),
            figures.year_to_date_end.format("%-d")
        ),
        Lang::En => format!(
            "Complaints year to date (1 January to {}, against the same days last year)",
            figures.year_to_date_end.format("%-d %B")
        ),
    };
    let branch_chart = |place: &str, title: &str| {
        let list: Vec<_> = figures
            .branches
            .iter()
            .filter(|b| b.place == place)
            .collect();
        if list.is_empty() {
            // With few branches the query lists every one of them at the top.
            return format!(
                "<p class=\"note\">{}</p>",
                l(
                    "分支机构较少，已全部列入前列。",
                    "Few branches: every one is listed in the top list."
                )
            );
        }
        charts::hbars(
            title,
            &list
                .iter()
                .map(|b| format!("{} · {}", b.rank, figures.name("unit", &b.branch_id, lang)))
                .collect::<Vec<_>>(),
            &list.iter().map(|b| b.score).collect::<Vec<_>>(),
            Scale::Decimal,
        )
    };
    let top: Vec<_> = figures.categories.iter().take(10).collect();
    let categories_svg = charts::hbars(
        l("投诉类别", "Complaint categories"),
        &top.iter()
            .map(|c| figures.name("category", &c.0, lang))
            .collect::<Vec<_>>(),
        &top.iter().map(|c| c.1).collect::<Vec<_>>(),
        Scale::Count,
    );
    let hotspots_note = match lang {
        Lang::Zh => format!("{}无投诉热点。", period.this(lang)),
        Lang::En => format!("No hot spots {}.", period.this(lang)),
    };
    let hotspots_table = (!figures.hotspots.is_empty()).then(|| {
        table(
            &[
                l("周", "Week"),
                l("区域", "Region"),
                l("类别", "Category"),
                l("投诉", "Complaints"),
                l("倍数", "× trailing"),
            ],
            &figures
                .hotspots
                .iter()
                .take(10)
                .map(|h| {
                    vec![
                        h.week.clone(),
                        figures.name("unit", &h.region, lang),
                        figures.name("category", &h.category, lang),
                        charts::thousands(h.complaints as i64),
                        h.ratio
                            .map_or_else(|| l("新出现", "new").to_string(), |r| format!("{r:.1}")),
                    ]
                })
                .collect::<Vec<_>>(),
        )
    });
    let hour_labels: Vec<String> = figures
        .hours
        .iter()
        .map(|h| format!("{:02}", h.hour))
        .collect();
    let hall_wait_svg = charts::bars(
        l("网点平均等候（分钟）", "Branch-hall wait (min)"),
        &hour_labels,
        &figures
            .hours
            .iter()
            .map(|h| h.hall_wait_min)
            .collect::<Vec<_>>(),
        Scale::Decimal,
    );
    let hour_answer_svg = charts::line(
        l("热线接通率", "Hotline answer rate"),
        &hour_labels,
        &figures
            .hours
            .iter()
            .map(|h| h.answer_rate)
            .collect::<Vec<_>>(),
        Scale::Percent,
    );
    let mut signal_columns = vec![
        l("客户组", "Group").to_string(),
        l("客户数", "Customers").to_string(),
    ];
    if let Some(s) = figures.signals.first() {
        signal_columns.extend(s.per_customer.iter().map(|p| p.0.clone()));
    }
    let signals_table = table(
        &signal_columns
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &figures
            .signals
            .iter()
            .map(|s| {
                let mut row = vec![
                    match (s.group.as_str(), lang) {
                        ("churned", Lang::Zh) => "流失客户".to_string(),
                        ("retained", Lang::Zh) => "留存客户".to_string(),
                        (g, _) => g.to_string(),
                    },
                    charts::thousands(s.customers as i64),
                ];
                row.extend(
                    s.per_customer
                        .iter()
                        .map(|p| p.1.map_or_else(|| "—".into(), |v| format!("{v:.3}"))),
                );
                row
            })
            .collect::<Vec<_>>(),
    );
    let t = context! {
        summary => l("摘要", "Summary"),
        headline => match period.edition {
            Edition::Year => l("核心指标（同比）", "Headline figures (year on year)"),
            _ => l("核心指标（环比 / 同比）", "Headline figures (on the period before / year on year)"),
        },
        annual => period.edition == Edition::Year,
        mom => l("环比", "vs prev."),
        yoy => l("同比", "YoY"),
        previous => previous_basis,
        year_ago => year_basis,
        trends => match lang {
            Lang::Zh => format!("{} 个月趋势", figures.months.len()),
            Lang::En => format!("{}-month trends", figures.months.len()),
        },
        regions => l("分区域", "By region"),
        branches => l("网点综合评分排名", "Branch scorecard ranking"),
        branch_top => l("前 5 名", "Top 5"),
        branch_bottom => l("后 5 名", "Bottom 5"),
        complaints => l("投诉结构与热点", "Complaint mix and hot spots"),
        categories => l("投诉类别（件）", "Complaints by category"),
        hotspots => l("投诉热点（周投诉量远超近期水平）", "Hot spots (weekly complaints far above their trailing level)"),
        waits => l("分时段排队与接通", "Waits and answer rate by hour"),
        hall_wait => l("网点平均等候时间（分钟）", "Branch-hall average wait (minutes)"),
        hour_answer => l("热线分时接通率", "Hotline answer rate by hour"),
        churn => l("客户流失与流失前信号（前 90 天，人均）", "Churn and pre-churn signals (90 days before, per customer)"),
        churn_note => match lang {
            Lang::Zh => format!("流失客户：{}销户的客户；留存客户：期末仍在网的客户。", period.this(lang)),
            Lang::En => format!("Churned: customers who closed their account {}; retained: customers still open at its end.", period.this(lang)),
        },
        footer => l("本报告所有数字均来自 kefu 命名查询（见 tables/ 目录下的 CSV）。", "Every figure comes from kefu's named queries (the CSV files under tables/)."),
        target => l("目标", "target"),
        missed => l("未达标", "missed"),
        provisional => l("暂定", "provisional"),
        provisional_note => l("暂定：尚有结果未出（工单未到期、回访可能仍在进行），数值可能变化。", "Provisional: outcomes still to come (tickets not yet due, callbacks that may still be made); the figure may change."),
        service => l("服务过程", "Service process"),
        service_note => l("网点等候及重复、越级、监管转办投诉只统计本期，无环比、同比。", "Branch-hall waits and repeat, over-level and regulator-transferred complaints are counted for the period only, without comparisons."),
        rank_note => l("排名：按累计投诉量从多到少，1 为最多。", "Rank: by complaints year to date, 1 = the most."),
    };
    let mut env = Environment::new();
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| ReportError::Template(e.to_string()))?;
    let html = env
        .get_template("report.html")
        .and_then(|tpl| {
            tpl.render(context! {
                lang => lang.code(),
                version => env!("CARGO_PKG_VERSION"),
                title,
                subtitle,
                summary,
                kpis,
                trend_charts,
                regions_table,
                service_table,
                year_to_date_title,
                year_to_date_table,
                branch_top_svg => branch_chart("top", l("前 5 名", "Top 5")),
                branch_bottom_svg => branch_chart("bottom", l("后 5 名", "Bottom 5")),
                categories_svg,
                hotspots_table,
                hotspots_note,
                hall_wait_svg,
                hour_answer_svg,
                signals_table,
                data_as_of => data_as_of(snapshot, zone, lang),
                t,
            })
        })
        .map_err(|e| ReportError::Template(e.to_string()))?;
    // The glyphs of the rendered text, embedded (see `font`): Chinese renders where no
    // CJK font is installed.
    let face = crate::font::face_for(&html).unwrap_or_default();
    Ok(html.replacen("/*kefu:font-face*/", &face, 1))
}

/// The service-process KPIs as a table: the period's value, its changes, the target.
fn service_table(figures: &Figures, lang: Lang, annual: bool) -> Table {
    let l = |zh: &'static str, en: &'static str| lang.pick(zh, en);
    let mut columns = vec![l("指标", "KPI"), l("本期", "Value")];
    if !annual {
        columns.push(l("环比", "vs prev."));
    }
    columns.extend([l("同比", "YoY"), l("目标", "Target")]);
    let rows: Vec<Vec<String>> = figures
        .service
        .iter()
        .map(|k| {
            let mut label = k.label(lang).to_string();
            if k.is_provisional() {
                label.push_str(l("（暂定）", " (provisional)"));
            }
            let mut value = k.format(k.current());
            if k.missed() == Some(true) {
                value.push_str(l(" 未达标", " missed"));
            }
            let mut row = vec![label, value];
            if !annual {
                row.push(change_text(k, k.previous(), lang).0);
            }
            row.push(change_text(k, k.year_ago(), lang).0);
            row.push(k.target.map(|t| k.format(Some(t))).unwrap_or_default());
            row
        })
        .collect();
    table(&columns, &rows)
}

/// The headline cards of the month.
pub fn kpi_cards(figures: &Figures, lang: Lang) -> Vec<KpiCard> {
    figures
        .kpis
        .iter()
        .map(|k| {
            let (mom, mom_class) = change_text(k, k.previous(), lang);
            let (yoy, yoy_class) = change_text(k, k.year_ago(), lang);
            KpiCard {
                key: k.key,
                label: k.label(lang),
                value: k.format(k.current()),
                previous: k.format(k.previous()),
                year_ago: k.format(k.year_ago()),
                mom,
                yoy,
                mom_class,
                yoy_class,
                target: k.target.map(|t| k.format(Some(t))).unwrap_or_default(),
                missed: k.missed() == Some(true),
                provisional: k.is_provisional(),
            }
        })
        .collect()
}

/// The six 13-month trend charts: bars for counts, lines for rates.
pub fn trend_charts(figures: &Figures, lang: Lang) -> Vec<Chart> {
    [
        "calls_offered",
        "answer_rate",
        "complaints",
        "on_time_rate",
        "satisfaction",
        "churn_rate",
    ]
    .iter()
    .filter_map(|key| figures.kpi(key))
    .map(|k| {
        let title = k.label(lang).to_string();
        let svg = if k.kind == KpiKind::Count {
            charts::bars(&title, &figures.months, &k.series, k.kind.scale())
        } else {
            charts::line(&title, &figures.months, &k.series, k.kind.scale())
        };
        Chart { title, svg }
    })
    .collect()
}

/// "数据截至第 12 批（2026-12-01 02:00 入库）": which state of the warehouse the figures
/// come from, so a published report can be reproduced (`kefu report --as-of 12`).
fn data_as_of(snapshot: &kefu_storage::Cut, zone: chrono_tz::Tz, lang: Lang) -> String {
    let when = snapshot
        .committed_at
        .map(|t| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    match lang {
        Lang::Zh => format!(
            "数据截至第 {} 批（{when} 入库）；用 kefu report --as-of {} 可重现本报告，各表版本见 tables/_snapshot.json。",
            snapshot.seq, snapshot.seq
        ),
        Lang::En => format!(
            "Data as of batch {} (committed {when}, {}); kefu report --as-of {} reproduces this report; table versions in tables/_snapshot.json.",
            snapshot.seq,
            zone.name(),
            snapshot.seq
        ),
    }
}
