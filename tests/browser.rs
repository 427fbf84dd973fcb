//! The report page in a real browser: headless Chromium (Debian's `chromium`, which
//! `.ci/run` installs). Where it is missing the check is skipped with a message, unless
//! KEFU_REQUIRE_CHROMIUM=1 (set by `.ci/run`) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("KEFU_CHROMIUM").map(PathBuf::from),
        Some("/usr/bin/chromium".into()),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("KEFU_REQUIRE_CHROMIUM").is_none(),
            "KEFU_REQUIRE_CHROMIUM is set but there is no /usr/bin/chromium (apt-get install chromium)"
        );
        eprintln!("SKIPPED: no Chromium (install Debian's chromium package, or set KEFU_CHROMIUM)");
    }
    found
}

fn headless(chromium: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// Loads `page` in headless Chromium: no script or console errors, the charts' SVG paths
/// in the rendered DOM, and a screenshot whose pixels show the chart colours.
pub fn renders_with_charts(page: &Path, scratch: &Path) {
    let Some(chromium) = chromium() else { return };
    let url = format!("file://{}", page.display());
    let dom = headless(&chromium, &scratch.join("chrome-dom"))
        .args(["--virtual-time-budget=3000", "--dump-dom", &url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "chromium --dump-dom: {stderr}");
    for bad in ["Uncaught", "CONSOLE(", "ERR_FILE_NOT_FOUND"] {
        assert!(!stderr.contains(bad), "browser reported '{bad}':\n{stderr}");
    }
    let html = String::from_utf8_lossy(&dom.stdout);
    // The service-process section: its table of twelve KPIs under a header row.
    let service = html
        .split("<section id=\"service\">")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .expect("a service section");
    assert_eq!(service.matches("<tr>").count(), 13, "{service}");
    assert!(html.contains("<section id=\"year-to-date\">"));
    let svgs = html.matches("<svg").count();
    assert!(svgs >= 10, "{svgs} charts in the rendered page");
    let paths: Vec<&str> = html
        .split("<path class=\"series\" d=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert!(paths.len() >= 20, "{} data paths", paths.len());
    assert!(
        paths.iter().all(|d| d.starts_with('M') && d.len() > 8),
        "empty path in {paths:?}"
    );

    let shot = scratch.join("report.png");
    let out = headless(&chromium, &scratch.join("chrome-shot"))
        .args(["--window-size=1280,2600", "--virtual-time-budget=3000"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success() && shot.is_file(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let count = |rgb: [u8; 3]| {
        pixels[..info.buffer_size()]
            .chunks(channels)
            .filter(|p| p[..3] == rgb)
            .count()
    };
    // The trend lines and their points (#1f6fb2), the month's bar (#d9822b), the other
    // months' bars (#7fa7cf).
    let (line, month_bar, bars) = (
        count([0x1f, 0x6f, 0xb2]),
        count([0xd9, 0x82, 0x2b]),
        count([0x7f, 0xa7, 0xcf]),
    );
    assert!(
        line > 200 && month_bar > 100 && bars > 100,
        "chart pixels: line {line}, month bars {month_bar}, other bars {bars}"
    );
}

/// Runs `probe` (a page whose script writes its findings as JSON into `#out`) in headless
/// Chromium and returns them. `fonts` is a fontconfig file to run under, if any.
fn probe(
    chromium: &Path,
    scratch: &Path,
    name: &str,
    probe: &str,
    fonts: Option<&Path>,
) -> serde_json::Value {
    let page = scratch.join(format!("{name}.html"));
    std::fs::write(&page, probe).unwrap();
    let mut cmd = headless(chromium, &scratch.join(format!("chrome-{name}")));
    if let Some(fonts) = fonts {
        cmd.env("FONTCONFIG_FILE", fonts);
    }
    let out = cmd
        .args([
            "--allow-file-access-from-files",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium ({name}): {stderr}");
    let dom = String::from_utf8_lossy(&out.stdout);
    let found = dom
        .split("<pre id=\"out\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_default()
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&found)
        .unwrap_or_else(|_| panic!("{name}: no findings in the page ({found:?}):\n{stderr}"))
}

/// The report's Chinese renders with no CJK font on the machine: under a fontconfig that
/// offers only DejaVu (Latin), two different characters draw the same box with the
/// system's fonts — the setting holds — but different glyphs with the report's own
/// embedded font.
pub fn renders_chinese_without_cjk_fonts(page: &Path, scratch: &Path) {
    let Some(chromium) = chromium() else { return };
    let html = std::fs::read_to_string(page).unwrap();
    let style = html
        .split("<style>")
        .nth(1)
        .and_then(|rest| rest.split("</style>").next())
        .expect("the report has a style sheet");
    assert!(style.contains("@font-face"), "the report embeds no font");
    let fonts_dir = scratch.join("latin-fonts");
    std::fs::create_dir_all(&fonts_dir).unwrap();
    let conf = scratch.join("fonts.conf");
    std::fs::write(
        &conf,
        format!(
            "<?xml version=\"1.0\"?><!DOCTYPE fontconfig SYSTEM \"fonts.dtd\"><fontconfig>\
             <dir>/usr/share/fonts/truetype/dejavu</dir><dir>{}</dir>\
             <cachedir>{}</cachedir></fontconfig>",
            fonts_dir.display(),
            scratch.join("font-cache").display()
        ),
    )
    .unwrap();
    let script = r#"
<pre id="out"></pre>
<script>
function draw(font, text) {
  const c = document.createElement('canvas');
  c.width = 120; c.height = 48;
  const g = c.getContext('2d');
  g.fillStyle = '#fff'; g.fillRect(0, 0, 120, 48);
  g.fillStyle = '#000'; g.font = font; g.fillText(text, 4, 38);
  return c.toDataURL();
}
document.fonts.load('32px KefuCJK', '客服').then(() => {
  document.getElementById('out').textContent = JSON.stringify({
    loaded: document.fonts.check('32px KefuCJK', '客服'),
    system_tells_apart: draw('32px sans-serif', '客') !== draw('32px sans-serif', '服'),
    embedded_tells_apart: draw('32px KefuCJK', '客') !== draw('32px KefuCJK', '服'),
  });
});
</script>"#;
    let found = probe(
        &chromium,
        scratch,
        "cjk-probe",
        &format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>{style}</style></head><body>{script}</body></html>"
        ),
        Some(&conf),
    );
    assert_eq!(
        found["system_tells_apart"], false,
        "the test's font setting still has a CJK font: {found}"
    );
    assert_eq!(found["loaded"], true, "{found}");
    assert_eq!(found["embedded_tells_apart"], true, "{found}");

    // The page itself under that setting: every heading, label, mark and table header in
    // Chinese alone is drawn as wide as the embedded font draws it — an empty box (tofu)
    // is narrower.
    let script = format!(
        r#"<pre id="out"></pre>
<iframe id="f" src="file://{}" style="width:1280px;height:900px;border:0"></iframe>
<script>
document.getElementById('f').addEventListener('load', async () => {{
  const d = document.getElementById('f').contentDocument;
  await d.fonts.ready;
  const g = d.createElement('canvas').getContext('2d');
  const checked = [], boxes = [];
  for (const el of d.querySelectorAll('h1, h2, h3, .mark, th, .kpi .name, figcaption')) {{
    const text = el.textContent;
    if (el.children.length || !/^[　-〿一-鿿＀-￯]+$/.test(text)) continue;
    const s = d.defaultView.getComputedStyle(el);
    g.font = `${{s.fontWeight}} ${{s.fontSize}} KefuCJK`;
    const range = d.createRange();
    range.selectNodeContents(el);
    const drawn = range.getBoundingClientRect().width, embedded = g.measureText(text).width;
    checked.push(text);
    if (Math.abs(drawn - embedded) > 1) boxes.push(`${{text}}: ${{drawn}} px, not ${{embedded}}`);
  }}
  document.getElementById('out').textContent = JSON.stringify({{ checked, boxes }});
}});
</script>"#,
        page.display()
    );
    let found = probe(
        &chromium,
        scratch,
        "cjk-page",
        &format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>{script}</body></html>"
        ),
        Some(&conf),
    );
    let checked = found["checked"].as_array().map_or(0, Vec::len);
    assert!(checked >= 10, "{found}");
    assert_eq!(found["boxes"], serde_json::json!([]), "{found}");
}

/// The report on a phone (390 px wide): nothing wider than the screen, every chart scaled
/// into it (the current month, at the right end, visible); and it prints to PDF.
pub fn fits_a_phone_and_prints(page: &Path, scratch: &Path) {
    let Some(chromium) = chromium() else { return };
    let probe_page = format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe id="f" src="file://{}" style="width:390px;height:844px;border:0"></iframe>
<pre id="out"></pre>
<script>
document.getElementById('f').addEventListener('load', () => {{
  const d = document.getElementById('f').contentDocument;
  const width = d.documentElement.clientWidth;
  const charts = [...d.querySelectorAll('svg')].map(s => s.getBoundingClientRect());
  document.getElementById('out').textContent = JSON.stringify({{
    width,
    scroll_width: d.documentElement.scrollWidth,
    charts: charts.length,
    widest_right: Math.max(...charts.map(r => r.right)),
    sections: [...d.querySelectorAll('section')].map(s => s.id),
  }});
}});
</script></body></html>"#,
        page.display()
    );
    let found = probe(&chromium, scratch, "phone-probe", &probe_page, None);
    let width = found["width"].as_f64().unwrap();
    assert!(width <= 390.0 && width > 300.0, "{found}");
    assert!(found["charts"].as_u64().unwrap() >= 10, "{found}");
    assert!(
        found["scroll_width"].as_f64().unwrap() <= width,
        "wider than a phone: {found}"
    );
    assert!(
        found["widest_right"].as_f64().unwrap() <= width + 0.5,
        "a chart overflows: {found}"
    );
    let sections = found["sections"].to_string();
    assert!(
        sections.contains("year-to-date") && sections.contains("headline"),
        "{found}"
    );

    let pdf = scratch.join("report.pdf");
    let out = headless(&chromium, &scratch.join("chrome-pdf"))
        .args(["--no-pdf-header-footer", "--virtual-time-budget=3000"])
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF"), "not a PDF");
    // A4 pages: 595 x 842 points (210 x 297 mm).
    let text = String::from_utf8_lossy(&bytes);
    let boxes: Vec<(f64, f64)> = text
        .split("/MediaBox")
        .skip(1)
        .filter_map(|rest| {
            let inside = rest.trim_start().strip_prefix('[')?.split(']').next()?;
            let n: Vec<f64> = inside
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (n.len() == 4).then(|| (n[2] - n[0], n[3] - n[1]))
        })
        .collect();
    assert!(!boxes.is_empty(), "no pages in the PDF");
    assert!(
        boxes
            .iter()
            .all(|(w, h)| (w - 595.3).abs() < 1.0 && (h - 841.9).abs() < 1.0),
        "pages are not A4: {boxes:?}"
    );
}
