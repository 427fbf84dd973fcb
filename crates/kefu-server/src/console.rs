//! The web console: static pages embedded in the binary (no Node build; plain HTML, CSS
//! and one script), in Chinese and English, over the same API and tokens.
//!
//! - `/console/`: sign in with a token (kept in the tab's session storage).
//! - `/console/upload`: offices drag and drop exports, see the progress, their upload
//!   history with statuses and counts, and download rejects.
//! - `/console/sql`: analysts write SQL (Ctrl+Enter runs it), see the results table,
//!   download CSV, and run the named queries with their parameters.
//! - `/console/dashboard`: the month's headline KPIs with 环比/同比 and the 13-month trend
//!   charts, from the monthly report's named queries.
//!
//! And the API the pages need: `GET /api/v1/whoami`, `GET /api/v1/queries` (the named
//! queries and their parameters) and `GET /api/v1/dashboard?month=YYYY-MM&lang=zh|en`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::Right;
use crate::http::{AppState, denied, error};

const PAGE_HOME: &str = include_str!("../console/index.html");
const PAGE_UPLOAD: &str = include_str!("../console/upload.html");
const PAGE_SQL: &str = include_str!("../console/sql.html");
const PAGE_DASHBOARD: &str = include_str!("../console/dashboard.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// Pages load only their own script and style; charts are inline SVG.
const POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

pub async fn root() -> Redirect {
    Redirect::to("/console/")
}

pub async fn home() -> Response {
    asset(PAGE_HOME, "text/html; charset=utf-8")
}

pub async fn upload_page() -> Response {
    asset(PAGE_UPLOAD, "text/html; charset=utf-8")
}

pub async fn sql_page() -> Response {
    asset(PAGE_SQL, "text/html; charset=utf-8")
}

pub async fn dashboard_page() -> Response {
    asset(PAGE_DASHBOARD, "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The caller's token name, role and region (what the console shows and offers).
pub async fn whoami(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match state.tokens.authenticate(authorization(&headers)) {
        Ok(p) => axum::Json(serde_json::json!({
            "name": p.name,
            "role": p.role.name(),
            "region": p.region,
            "may_upload": p.role.may(Right::Upload),
            "may_query": p.role.may(Right::Query),
        }))
        .into_response(),
        Err(d) => denied(d),
    }
}

/// The named queries with their purpose, formula, grain and parameters.
pub async fn queries(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(d) = state
        .tokens
        .authorize(authorization(&headers), Right::Query)
    {
        return denied(d);
    }
    let list: Vec<serde_json::Value> = state
        .library
        .iter()
        .map(|q| {
            serde_json::json!({
                "name": q.name,
                "purpose": q.purpose,
                "formula": q.formula,
                "grain": q.grain,
                "params": q.params.iter().map(|p| serde_json::json!({
                    "name": p.name,
                    "type": p.kind.name(),
                    "default": p.default,
                    "description": p.description,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "queries": list })).into_response()
}

#[derive(Debug, Deserialize)]
pub struct DashboardParams {
    month: Option<String>,
    lang: Option<String>,
    region: Option<String>,
}

/// The month's headline cards and trend charts, built by the monthly report from its
/// named queries. Without `month`, the latest month with calls.
pub async fn dashboard(
    State(state): State<Arc<AppState>>,
    Query(params): Query<DashboardParams>,
    headers: HeaderMap,
) -> Response {
    if let Err(d) = state
        .tokens
        .authorize(authorization(&headers), Right::Query)
    {
        return denied(d);
    }
    let lang: kefu_report::Lang = match params.lang.as_deref().unwrap_or("zh").parse() {
        Ok(l) => l,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string(), None),
    };
    let task = state.queries.spawn({
        let state = state.clone();
        async move { build_dashboard(&state, params.month, params.region, lang).await }
    });
    match tokio::time::timeout(state.sql.timeout, task).await {
        Ok(Ok(Ok(value))) => axum::Json(value).into_response(),
        Ok(Ok(Err((status, message)))) => error(status, &message, None),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "the dashboard's queries ran longer than the SQL timeout",
            None,
        ),
    }
}

async fn build_dashboard(
    state: &AppState,
    month: Option<String>,
    region: Option<String>,
    lang: kefu_report::Lang,
) -> Result<serde_json::Value, (StatusCode, String)> {
    let internal = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e);
    let engine = state.engine().await.map_err(|e| internal(e.to_string()))?;
    let month = match month.filter(|m| !m.is_empty()) {
        Some(m) => m,
        None => {
            let (_, batches) = engine
                .collect("SELECT max(month) AS m FROM calls")
                .await
                .map_err(|e| internal(e.to_string()))?;
            let latest = batches.first().and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .and_then(|a| {
                        (!arrow::array::Array::is_null(a, 0)).then(|| a.value(0).to_string())
                    })
            });
            match latest {
                Some(m) => m,
                None => {
                    return Err((
                        StatusCode::NOT_FOUND,
                        "the warehouse has no calls yet; upload some exports first".into(),
                    ));
                }
            }
        }
    };
    let request = kefu_report::ReportRequest {
        period: month
            .parse()
            .map_err(|e: kefu_report::ReportError| (StatusCode::BAD_REQUEST, e.to_string()))?,
        region: region.filter(|r| !r.is_empty()),
        lang,
        targets: kefu_report::Targets::usual(),
    };
    let report = kefu_report::build(
        &engine,
        &state.library,
        &request,
        &kefu_progress::NoProgress,
    )
    .await
    .map_err(|e| internal(e.to_string()))?;
    Ok(serde_json::json!({
        "month": request.label(),
        "months": report.figures.months,
        "summary": report.summary,
        "kpis": kefu_report::page::kpi_cards(&report.figures, lang),
        "charts": kefu_report::page::trend_charts(&report.figures, lang),
    }))
}

#[derive(Debug, Deserialize)]
pub struct DeliveriesParams {
    /// Data days to show, ending yesterday (default 7, at most 92).
    pub days: Option<u32>,
}

/// Which office delivered which day (an office's token sees its own region only).
pub async fn deliveries(
    State(state): State<Arc<AppState>>,
    Query(params): Query<DeliveriesParams>,
    headers: HeaderMap,
) -> Response {
    let principal = match state.tokens.authenticate(authorization(&headers)) {
        Ok(p) => p,
        Err(d) => return denied(d),
    };
    let days = params.days.unwrap_or(7);
    if !(1..=92).contains(&days) {
        return error(StatusCode::BAD_REQUEST, "days: 1 to 92", None);
    }
    let mut report = match state.recent_deliveries(days).await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), None),
    };
    if let Some(region) = &principal.region {
        report.keep_region(region);
    }
    let mut value = serde_json::to_value(&report).expect("the report serialises");
    value["problems"] = report.problems().count().into();
    value["missing"] = report.missing().count().into();
    axum::Json(value).into_response()
}
