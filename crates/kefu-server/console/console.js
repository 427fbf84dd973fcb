// kefu console: sign-in, uploads, SQL and the dashboard over the HTTP API. No build step
// and no dependencies; every value from the server is put in the page as text, except the
// charts, which are SVG the server renders with its text escaped.
"use strict";

const MESSAGES = {
  zh: {
    brand: "kefu 客服分析",
    page_home: "首页", page_upload: "上传数据", page_sql: "SQL 查询", page_dashboard: "指标看板",
    page_upload_about: "拖入本地导出的文件，查看入库状态与拒收记录",
    page_sql_about: "编写 SQL、运行命名查询、下载 CSV",
    page_dashboard_about: "月度核心指标与 13 个月趋势",
    home_title: "客服数据平台",
    home_intro: "请输入总部分配给您的访问令牌。令牌只保存在本标签页中。",
    token: "访问令牌", sign_in: "登录", sign_out: "退出", signed_in_as: "当前身份",
    role_office: "区域办公室", role_analyst: "分析师", role_admin: "管理员",
    need_token: "请先登录（首页输入令牌）。", bad_token: "令牌无效。", no_right: "此令牌无权访问本页。",
    upload_intro: "支持 CSV、TSV、JSON Lines、Excel 及其 zip / tar.gz 压缩包（GBK 或 UTF-8 均可）。",
    drop_here: "把文件拖到这里，或点击选择文件",
    history: "上传记录", no_uploads: "还没有上传记录。",
    col_file: "文件", col_received: "接收时间", col_status: "状态", col_landed: "入库行数",
    col_rejected: "拒收行数", col_duplicates: "重复行数", col_rejects: "拒收明细",
    status_queued: "排队中", status_ingesting: "入库中", status_done: "完成", status_failed: "失败",
    sending: "上传中", accepted: "已接收，排队入库", duplicate: "重复文件，未再次入库",
    download: "下载", network_error: "网络错误",
    run: "运行", download_csv: "下载 CSV", run_hint: "Ctrl+Enter 运行",
    named_queries: "命名查询", rows: "行", truncated: "结果已截断，仅显示前 {n} 行",
    seconds: "秒", month: "月份", region: "区域（可选）", show: "显示", loading: "加载中…",
    mom: "环比", yoy: "同比", language: "English",
    deliveries: "各区域数据送达（近 7 天）", col_region: "区域", deliveries_ok: "所有应到数据均已按时送达。",
    deliveries_problems: "{n} 项需要关注", deliveries_none: "尚无可识别的区域送达文件。",
    d_on_time: "按时", d_late: "迟到", d_missing: "缺失", d_pending: "未到期", d_low: "量偏低", d_high: "量偏高",
  },
  en: {
    brand: "kefu customer service",
    page_home: "Home", page_upload: "Upload", page_sql: "SQL", page_dashboard: "Dashboard",
    page_upload_about: "drop your office's exports, follow their ingest and rejects",
    page_sql_about: "write SQL, run the named queries, download CSV",
    page_dashboard_about: "the month's headline KPIs and 13-month trends",
    home_title: "Customer-service analytics",
    home_intro: "Enter the access token the head office gave you. It is kept in this tab only.",
    token: "Access token", sign_in: "Sign in", sign_out: "Sign out", signed_in_as: "Signed in as",
    role_office: "regional office", role_analyst: "analyst", role_admin: "admin",
    need_token: "Sign in first (enter your token on the home page).", bad_token: "Unknown token.",
    no_right: "This token may not use this page.",
    upload_intro: "CSV, TSV, JSON Lines, Excel, and zip / tar.gz archives of them (GBK or UTF-8).",
    drop_here: "Drop files here, or click to choose them",
    history: "Your uploads", no_uploads: "No uploads yet.",
    col_file: "File", col_received: "Received", col_status: "Status", col_landed: "Landed",
    col_rejected: "Rejected", col_duplicates: "Duplicates", col_rejects: "Rejects",
    status_queued: "queued", status_ingesting: "ingesting", status_done: "done", status_failed: "failed",
    sending: "sending", accepted: "accepted, queued for ingest", duplicate: "duplicate, not ingested again",
    download: "download", network_error: "network error",
    run: "Run", download_csv: "Download CSV", run_hint: "Ctrl+Enter runs",
    named_queries: "Named queries", rows: "rows", truncated: "Result cut: the first {n} rows only",
    seconds: "s", month: "Month", region: "Region (optional)", show: "Show", loading: "Loading…",
    mom: "vs last month", yoy: "vs last year", language: "中文",
    deliveries: "Office deliveries (last 7 days)", col_region: "Region", deliveries_ok: "Every delivery due has arrived on time.",
    deliveries_problems: "{n} need attention", deliveries_none: "No ingested file is named as a regional delivery yet.",
    d_on_time: "on time", d_late: "late", d_missing: "missing", d_pending: "not due", d_low: "low volume", d_high: "high volume",
  },
};

function language() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked === "zh" || asked === "en") localStorage.setItem("kefu-lang", asked);
  const kept = localStorage.getItem("kefu-lang");
  if (kept === "zh" || kept === "en") return kept;
  return (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
}

const LANG = language();

function t(key, values) {
  let text = MESSAGES[LANG][key] ?? MESSAGES.en[key] ?? key;
  for (const [k, v] of Object.entries(values || {})) text = text.replace("{" + k + "}", v);
  return text;
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

const token = {
  get: () => sessionStorage.getItem("kefu-token"),
  set: (v) => sessionStorage.setItem("kefu-token", v),
  clear: () => sessionStorage.removeItem("kefu-token"),
};

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers, { Authorization: "Bearer " + (token.get() || "") });
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  return response;
}

async function download(path, options, name) {
  const blob = await (await api(path, options)).blob();
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function translate() {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
}

function nav(who) {
  const header = document.getElementById("nav");
  const here = document.body.dataset.page;
  header.replaceChildren(el("a", { class: "brand", href: "/console/", text: t("brand") }));
  const pages = [["upload", "/console/upload", "page_upload", "may_upload"],
                 ["sql", "/console/sql", "page_sql", "may_query"],
                 ["dashboard", "/console/dashboard", "page_dashboard", "may_query"]];
  for (const [page, href, key, right] of pages) {
    if (!who || who[right]) header.append(el("a", { href, text: t(key), class: page === here ? "current" : "" }));
  }
  header.append(el("span", { class: "spacer" }));
  if (who) header.append(el("span", { class: "who", text: `${who.name} · ${t("role_" + who.role)}${who.region ? " · " + who.region : ""}` }));
  const other = LANG === "zh" ? "en" : "zh";
  header.append(el("button", { class: "link", type: "button", id: "lang", text: t("language"),
    onclick: () => { localStorage.setItem("kefu-lang", other); location.search = "?lang=" + other; } }));
}

/// The caller, or null after showing why the page cannot be used.
async function signedIn(right) {
  const stop = (message) => {
    nav(null);
    document.querySelector("main").replaceChildren(el("p", { class: "error", id: "signin-needed", text: message }),
      el("a", { href: "/console/", text: t("page_home") }));
    return null;
  };
  if (!token.get()) return stop(t("need_token"));
  let who;
  try { who = await (await api("/api/v1/whoami")).json(); } catch (e) { token.clear(); return stop(t("bad_token")); }
  nav(who);
  if (right && !who[right]) return stop(t("no_right"));
  return who;
}

// ---- home

async function home() {
  const form = document.getElementById("signin");
  const show = (who) => {
    nav(who);
    form.hidden = true;
    document.getElementById("who").hidden = false;
    document.getElementById("who-text").textContent = `${t("signed_in_as")}: ${who.name} (${t("role_" + who.role)}${who.region ? ", " + who.region : ""})`;
    for (const li of document.querySelectorAll("#pages li")) {
      li.hidden = !(li.dataset.needs === "upload" ? who.may_upload : who.may_query);
    }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    token.set(document.getElementById("token").value.trim());
    try { show(await (await api("/api/v1/whoami")).json()); } catch (e) {
      token.clear();
      document.getElementById("signin-error").textContent = t("bad_token");
    }
  });
  document.getElementById("signout").addEventListener("click", () => { token.clear(); location.reload(); });
  nav(null);
  if (token.get()) {
    try { show(await (await api("/api/v1/whoami")).json()); } catch (_) { token.clear(); }
  }
}

// ---- upload

function send(file, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/uploads?name=" + encodeURIComponent(file.name));
    xhr.setRequestHeader("Authorization", "Bearer " + token.get());
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) progress.value = e.loaded / e.total; });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = { error: xhr.responseText }; }
      if (xhr.status < 300) resolve(body); else reject(new Error(body.error || String(xhr.status)));
    });
    xhr.addEventListener("error", () => reject(new Error(t("network_error"))));
    xhr.send(file);
  });
}

async function upload() {
  if (!(await signedIn("may_upload"))) return;
  const drop = document.getElementById("drop");
  const input = document.getElementById("files");
  const sending = document.getElementById("sending");
  let timer = null;

  async function refresh() {
    clearTimeout(timer);
    const { uploads } = await (await api("/api/v1/uploads")).json();
    const body = document.querySelector("#history tbody");
    body.replaceChildren(...uploads.map((u) => {
      const rejects = u.counts.rejected > 0
        ? el("button", { class: "link", type: "button", text: t("download"),
            onclick: () => download(u.links.rejects, {}, `rejects-${u.file_name}.csv`).catch((e) => alert(e.message)) })
        : "";
      return el("tr", { "data-id": u.id, "data-status": u.status },
        el("td", { text: u.file_name }),
        el("td", { text: new Date(u.received_at).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB") }),
        el("td", { class: "status-" + u.status, text: t("status_" + u.status) + (u.error ? ": " + u.error : "") }),
        el("td", { class: "num", text: String(u.counts.landed) }),
        el("td", { class: "num", text: String(u.counts.rejected) }),
        el("td", { class: "num", text: String(u.counts.duplicates) }),
        el("td", {}, rejects));
    }));
    document.getElementById("history-empty").hidden = uploads.length > 0;
    const busy = uploads.some((u) => u.status === "queued" || u.status === "ingesting");
    timer = setTimeout(refresh, busy ? 1000 : 10000);
  }

  async function sendAll(files) {
    for (const file of files) {
      const progress = el("progress", { max: "1", value: "0" });
      const state = el("span", { text: t("sending") });
      sending.append(el("li", {}, el("span", { text: file.name }), progress, state));
      try {
        const answer = await send(file, progress);
        progress.value = 1;
        state.textContent = answer.duplicate ? t("duplicate") : t("accepted");
      } catch (e) {
        state.textContent = e.message;
        state.className = "error";
      }
      await refresh();
    }
  }

  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    sendAll([...e.dataTransfer.files]);
  });
  input.addEventListener("change", () => { sendAll([...input.files]); input.value = ""; });
  await refresh();
}

// ---- SQL

function showResult(result, seconds) {
  const table = document.getElementById("result");
  table.tHead.replaceChildren(el("tr", {}, ...result.columns.map((c) => el("th", { text: c.name }))));
  const numeric = result.columns.map((c) => /^(Int|UInt|Float|Decimal)/.test(c.type));
  table.tBodies[0].replaceChildren(...result.rows.map((row) =>
    el("tr", {}, ...result.columns.map((c, i) => {
      const v = row[c.name];
      return el("td", { class: numeric[i] ? "num" : "", text: v === null || v === undefined ? "" : String(v) });
    }))));
  let info = `${result.row_count} ${t("rows")} · ${seconds.toFixed(2)} ${t("seconds")}`;
  if (result.truncated) info += " · " + t("truncated", { n: result.row_count });
  document.getElementById("result-info").textContent = info;
}

async function sql() {
  if (!(await signedIn("may_query"))) return;
  const editor = document.getElementById("sql");
  const error = document.getElementById("sql-error");
  let last = null;

  async function run(request) {
    last = request;
    error.textContent = "";
    const started = performance.now();
    try {
      const response = await api("/api/v1/sql", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign({ format: "json" }, request)) });
      showResult(await response.json(), (performance.now() - started) / 1000);
    } catch (e) {
      error.textContent = e.message;
    }
  }

  document.getElementById("run").addEventListener("click", () => run({ sql: editor.value }));
  editor.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run({ sql: editor.value }); }
  });
  document.getElementById("csv").addEventListener("click", async () => {
    // With a byte-order mark: Excel on Chinese Windows reads the text as UTF-8.
    const request = Object.assign({}, last || { sql: editor.value }, { format: "csv", bom: true });
    try {
      await download("/api/v1/sql", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(request) }, (request.query || "result") + ".csv");
    } catch (e) { error.textContent = e.message; }
  });

  const { queries } = await (await api("/api/v1/queries")).json();
  const list = document.getElementById("queries");
  const form = document.getElementById("params");
  let chosen = null;
  list.replaceChildren(...queries.map((q) => el("li", {}, el("button", { type: "button", "data-query": q.name, title: q.purpose, text: q.name,
    onclick: () => {
      chosen = q;
      form.hidden = false;
      document.getElementById("params-title").textContent = q.name;
      document.getElementById("params-purpose").textContent = q.purpose;
      document.getElementById("params-fields").replaceChildren(...q.params.flatMap((p) => [
        el("label", { for: "param-" + p.name, text: `${p.name} (${p.type})` }),
        el("input", { id: "param-" + p.name, name: p.name, value: p.default }),
        el("small", { text: p.description })]));
    } }))));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const params = {};
    for (const input of form.querySelectorAll("input")) params[input.name] = input.value;
    run({ query: chosen.name, params });
  });
}

// ---- dashboard

async function dashboard() {
  if (!(await signedIn("may_query"))) return;
  const month = document.getElementById("month");
  const region = document.getElementById("region");
  const error = document.getElementById("dashboard-error");
  const loading = document.getElementById("loading");

  async function load() {
    error.textContent = "";
    loading.hidden = false;
    const query = new URLSearchParams({ lang: LANG });
    if (month.value) query.set("month", month.value);
    if (region.value.trim()) query.set("region", region.value.trim());
    try {
      const d = await (await api("/api/v1/dashboard?" + query)).json();
      month.value = d.month;
      document.getElementById("summary").textContent = d.summary;
      document.getElementById("cards").replaceChildren(...d.kpis.map((k) => el("div", { class: "card", "data-kpi": k.key },
        el("div", { class: "label", text: k.label }),
        el("div", { class: "value", text: k.value }),
        el("div", {}, el("span", { text: t("mom") + " " }), el("span", { class: k.mom_class, text: k.mom })),
        el("div", {}, el("span", { text: t("yoy") + " " }), el("span", { class: k.yoy_class, text: k.yoy })))));
      const charts = document.getElementById("charts");
      charts.replaceChildren(...d.charts.map((c) => {
        const figure = el("figure", { "data-chart": c.title });
        // The server renders the SVG and escapes every text in it.
        figure.innerHTML = c.svg;
        figure.prepend(el("figcaption", { text: c.title }));
        return figure;
      }));
    } catch (e) {
      error.textContent = e.message;
    } finally {
      loading.hidden = true;
    }
  }

  document.getElementById("pick").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  await Promise.all([load(), deliveries()]);
}

// Which office delivered which day: a grid of regions × data days.
async function deliveries() {
  const summary = document.getElementById("deliveries-summary");
  const grid = document.getElementById("deliveries-grid");
  try {
    const d = await (await api("/api/v1/deliveries?days=7")).json();
    if (d.regions.length === 0) {
      summary.textContent = t("deliveries_none");
      return;
    }
    summary.textContent = d.problems === 0 ? t("deliveries_ok") : t("deliveries_problems", { n: d.problems });
    const days = d.days.filter((x) => x.region === d.regions[0]).map((x) => x.day);
    const cell = (x) => {
      const state = x.volume ? "d_" + x.volume : { on_time: "d_on_time", late: "d_late", missing: "d_missing", pending: "d_pending" }[x.status];
      const title = x.files.map((f) => f.name + " · " + f.arrived + " · " + f.records).join("\n");
      return el("td", { class: "delivery " + x.status, "data-region": x.region, "data-day": x.day, title, text: t(state) });
    };
    grid.replaceChildren(
      el("tr", {}, el("th", { text: t("col_region") }), ...days.map((day) => el("th", { text: day.slice(5) }))),
      ...d.regions.map((r) => el("tr", {}, el("th", { text: r }), ...d.days.filter((x) => x.region === r).map(cell))));
  } catch (e) {
    summary.textContent = e.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  translate();
  const page = { home, upload, sql, dashboard }[document.body.dataset.page];
  if (page) page().catch((e) => {
    const main = document.querySelector("main");
    main.prepend(el("p", { class: "error", text: e.message }));
  });
});
