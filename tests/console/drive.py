"""Drives the kefu console in headless Chromium (Playwright over Debian's chromium).

Usage: drive.py BASE_URL OFFICE_TOKEN ANALYST_TOKEN SHOTS_DIR FILE...

An office signs in, uploads FILEs through the upload page and waits until the history
shows each done; an analyst runs SQL and a named query on the SQL page, downloads the
CSV, and opens the dashboard in English and Chinese. Prints what it saw as JSON; every
console message of type error or warning, and every page error, is reported.
"""
import json
import os
import sys

from playwright.sync_api import sync_playwright

base, office, analyst, shots = sys.argv[1:5]
files = sys.argv[5:]
seen = {"console": []}


def watch(page):
    page.on("console", lambda m: m.type in ("error", "warning") and seen["console"].append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: seen["console"].append(f"pageerror: {e}"))


def sign_in(context, token, lang):
    page = context.new_page()
    watch(page)
    page.goto(f"{base}/console/?lang={lang}")
    page.fill("#token", token)
    page.click("#signin-button")
    page.wait_for_selector("#who:not([hidden])")
    return page


with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium"),
        args=["--no-sandbox"],
    )

    # An office uploads through the page.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = sign_in(context, office, "en")
    seen["office_pages"] = page.eval_on_selector_all("#pages li:not([hidden]) a", "as => as.map(a => a.textContent)")
    page.goto(f"{base}/console/upload")
    page.wait_for_selector("#history")
    page.set_input_files("#files", files)
    names = [os.path.basename(f) for f in files]
    for name in names:
        page.wait_for_selector(
            f'#history tbody tr[data-status="done"] >> text="{name}"', timeout=120_000
        )
    seen["history"] = page.eval_on_selector_all(
        "#history tbody tr",
        "rows => rows.map(r => [...r.cells].slice(0, 6).map(c => c.textContent))",
    )
    page.screenshot(path=f"{shots}/upload.png", full_page=True)
    context.close()

    # An analyst: SQL, a named query, the CSV, the dashboard.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = sign_in(context, analyst, "en")
    page.goto(f"{base}/console/sql")
    page.wait_for_selector("#queries li button")
    page.fill("#sql", "SELECT region, count(*) AS calls FROM calls GROUP BY region ORDER BY region")
    page.click("#run")
    page.wait_for_selector("#result tbody tr")
    seen["sql_rows"] = page.eval_on_selector_all(
        "#result tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    seen["sql_columns"] = page.eval_on_selector_all("#result thead th", "hs => hs.map(h => h.textContent)")
    with page.expect_download() as download:
        page.click("#csv")
    seen["csv"] = open(download.value.path(), encoding="utf-8").read()
    page.screenshot(path=f"{shots}/sql.png", full_page=True)
    page.click('#queries button[data-query="calls_kpis"]')
    page.wait_for_selector("#params:not([hidden])")
    seen["named_params"] = page.eval_on_selector_all("#params-fields input", "is => is.map(i => i.name)")
    page.fill("#param-from", "2026-01-01")
    page.fill("#param-to", "2026-03-01")
    page.fill("#param-period", "month")
    page.click("#run-named")
    page.wait_for_selector('#result thead th:text-is("period")')
    seen["named_rows"] = page.eval_on_selector_all("#result tbody tr", "rows => rows.length")
    page.screenshot(path=f"{shots}/sql-named.png", full_page=True)

    for lang in ("en", "zh"):
        page.goto(f"{base}/console/dashboard?lang={lang}")
        page.wait_for_selector("#charts figure svg", timeout=120_000)
        page.wait_for_function("document.getElementById('deliveries-summary').textContent.length > 0")
        seen[f"dashboard_{lang}"] = {
            "month": page.input_value("#month"),
            "cards": page.eval_on_selector_all("#cards .card", "cs => cs.map(c => [c.dataset.kpi, c.querySelector('.value').textContent])"),
            "charts": page.eval_on_selector_all("#charts figure svg", "ss => ss.length"),
            "paths": page.eval_on_selector_all("#charts svg path, #charts svg rect", "ps => ps.length"),
            "summary": page.text_content("#summary"),
            "nav": page.text_content("#nav"),
            "deliveries": page.text_content("#deliveries-summary"),
        }
        page.screenshot(path=f"{shots}/dashboard-{lang}.png", full_page=True)
    context.close()
    browser.close()

print(json.dumps(seen, ensure_ascii=False))
