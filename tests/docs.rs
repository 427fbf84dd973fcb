//! The documentation's commands, run: every ```sh block of README.md and docs/*.md, in
//! order, one page at a time in a fresh directory, with the built `kefu` first on PATH.
//!
//! A command must exit 0 unless its line ends with a comment `# exit N`, when it must exit
//! N. A command ending with `&` runs in the background and is stopped when its page ends.
//! Blocks marked ```sh ci hold commands CI runs itself (`.ci/run`, checked here): the
//! README's test command, the development page's lints. The README's demo command at
//! full size is measured by hand (its figures are in the README); the tour runs it small.

use std::path::PathBuf;
use std::process::Command;

/// One command of a page: its text (continued lines and here-documents included), the
/// line it starts on, and the exit code it must end with.
#[derive(Debug)]
struct DocCommand {
    text: String,
    line: usize,
    exit: i32,
}

/// The ```sh blocks of `markdown`, as commands; and the ```sh ci blocks' text apart.
fn commands(markdown: &str) -> (Vec<DocCommand>, Vec<String>) {
    let mut out = Vec::new();
    let mut ci = Vec::new();
    let mut lines = markdown.lines().enumerate().peekable();
    while let Some((_, line)) = lines.next() {
        let fence = line.trim_start();
        let Some(info) = fence.strip_prefix("```") else {
            continue;
        };
        let info = info.trim();
        let mut block = Vec::new();
        for (n, l) in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            block.push((n + 1, l));
        }
        match info {
            "sh" => {}
            "sh ci" => {
                ci.extend(block.iter().map(|(_, l)| l.trim().to_string()));
                continue;
            }
            _ => continue,
        }
        let mut i = 0;
        while i < block.len() {
            let (line, first) = block[i];
            i += 1;
            let trimmed = first.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut text = first.to_string();
            let mut last = first;
            // Continued lines.
            while last.trim_end().ends_with('\\') && i < block.len() {
                last = block[i].1;
                text.push('\n');
                text.push_str(last);
                i += 1;
            }
            // A here-document runs to its terminator.
            if let Some(at) = text.find("<<") {
                let word: String = text[at + 2..]
                    .trim_start_matches('-')
                    .trim_start()
                    .trim_matches(|c| c == '\'' || c == '"')
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !word.is_empty() {
                    while i < block.len() {
                        let l = block[i].1;
                        text.push('\n');
                        text.push_str(l);
                        i += 1;
                        if l.trim() == word {
                            break;
                        }
                    }
                }
            }
            let exit = last
                .rsplit_once("# exit ")
                .and_then(|(_, n)| n.trim().parse().ok())
                .unwrap_or(0);
            out.push(DocCommand { text, line, exit });
        }
    }
    (out, ci)
}

/// A bash script that runs `commands` in order and stops at the first whose exit code is
/// not the one documented, naming its page and line.
fn script(page: &str, commands: &[DocCommand]) -> String {
    let mut s = String::from("set -u\ntrap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT\n");
    for c in commands {
        let first = c.text.lines().next().unwrap_or("").replace('\'', "'\\''");
        s.push_str(&format!("echo '+ {page}:{}: {first}' >&2\n", c.line));
        s.push_str(&c.text);
        s.push('\n');
        s.push_str(&format!(
            "rc=$?; if [ $rc -ne {want} ]; then echo '{page}:{line}: exit '$rc', the docs say {want}: {first}' >&2; exit 1; fi\n",
            want = c.exit,
            line = c.line,
        ));
    }
    s
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs one page's commands in a fresh directory holding the checkout's `fixtures/` and
/// `queries/`, with `kefu` (and the test Python's directory) first on PATH.
fn run_page(page: &str) {
    let markdown = std::fs::read_to_string(root().join(page)).unwrap();
    let (commands, _) = commands(&markdown);
    assert!(!commands.is_empty(), "{page} has no ```sh commands");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for shared in ["fixtures", "queries"] {
        std::os::unix::fs::symlink(root().join(shared), dir.join(shared)).unwrap();
    }
    let kefu = assert_cmd::cargo::cargo_bin!("kefu");
    let bin = dir.join(".bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(kefu, bin.join("kefu")).unwrap();
    // The test Python's own directory (a virtualenv finds its packages only when run
    // from there).
    let python = std::env::var_os("KEFU_PYTHON")
        .map(PathBuf::from)
        .and_then(|p| p.parent().map(|d| format!("{}:", d.display())))
        .unwrap_or_default();
    let path = format!(
        "{}:{python}{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script(page, &commands))
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir)
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{page}: a documented command failed\n--- stderr\n{}\n--- stdout (last 4 kB)\n{}",
        String::from_utf8_lossy(&out.stderr),
        {
            let s = String::from_utf8_lossy(&out.stdout);
            let cut = s.len().saturating_sub(4096);
            s[s.floor_char_boundary(cut)..].to_string()
        }
    );
}

#[test]
fn the_parser_takes_continued_lines_here_documents_and_exit_codes() {
    let (c, ci) = commands(
        "text\n```sh\n# a comment\nkefu a \\\n  --b\ncat > f <<'EOF'\nx = 1\nEOF\nkefu check x   # exit 3\n```\n```toml\nnot = 'run'\n```\n```sh ci\ncargo test --workspace\n```\n",
    );
    assert_eq!(c.len(), 3);
    assert_eq!((c[0].text.as_str(), c[0].line), ("kefu a \\\n  --b", 4));
    assert_eq!(c[1].text, "cat > f <<'EOF'\nx = 1\nEOF");
    assert_eq!((c[2].exit, c[2].line), (3, 9));
    assert_eq!(ci, vec!["cargo test --workspace"]);
}

#[test]
fn the_readmes_test_command_is_what_ci_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines < 250,
        "README.md has {lines} lines; the issue asks under 250"
    );
    let (_, ci) = commands(&readme);
    assert_eq!(
        ci,
        vec!["cargo run --release -- demo", "cargo test --workspace"],
        "the README's two commands"
    );
    let run = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        run.lines()
            .any(|l| l.trim() == "cargo test --workspace --locked"),
        ".ci/run runs the README's test command"
    );
    // Elsewhere a ```sh ci command is one .ci/run runs (which adds --locked).
    let ci_lines: Vec<String> = run
        .lines()
        .map(|l| l.trim().replace(" --locked", ""))
        .collect();
    let pages: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".md"))
        .collect();
    for page in &pages {
        assert!(
            readme.contains(&format!("docs/{page}")),
            "README.md does not point to docs/{page}"
        );
        let text = std::fs::read_to_string(root().join("docs").join(page)).unwrap();
        for command in commands(&text).1 {
            if command.is_empty() || command.starts_with('#') {
                continue;
            }
            assert!(
                ci_lines.contains(&command),
                "docs/{page}: `{command}` is marked as run by CI, but .ci/run does not run it"
            );
        }
    }
}

macro_rules! page_test {
    ($name:ident, $page:literal) => {
        #[test]
        fn $name() {
            run_page($page);
        }
    };
}

page_test!(readme_tour, "README.md");
page_test!(docs_ingest, "docs/ingest.md");
page_test!(docs_sql, "docs/sql.md");
page_test!(docs_jobs, "docs/jobs.md");
page_test!(docs_server, "docs/server.md");
page_test!(docs_operations, "docs/operations.md");
page_test!(docs_development, "docs/development.md");
#[cfg(feature = "cluster")]
page_test!(docs_cluster, "docs/cluster.md");
