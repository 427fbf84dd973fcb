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
