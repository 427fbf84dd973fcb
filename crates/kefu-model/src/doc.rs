//! Renders the model as Markdown, so the documentation is generated from the same
//! definitions that build the schemas and cannot drift from them.

use std::fmt::Write;

use crate::table::{ColumnKind, Table};
use crate::vocab::ALL_VOCABULARIES;

/// The whole model as a Markdown document: one section per table, then the vocabularies.
pub fn model_markdown() -> String {
    let mut out = String::new();
    out.push_str("# kefu canonical model\n\n");
    out.push_str(
        "Timestamps are UTC instants (Arrow `Timestamp(µs, \"UTC\")`); offices export local \
         time (the profile's zone, else the warehouse's calendar, Asia/Shanghai by default) and \
         ingest converts. Enum columns store the English code; \
         ingest also accepts the Chinese label.\n",
    );
    for table in Table::ALL {
        let versions: Vec<String> = table
            .version_rule()
            .iter()
            .map(|p| match p {
                crate::VersionPart::Latest(c) => format!("later `{c}`"),
                crate::VersionPart::Present(c) => format!("`{c}` present"),
                crate::VersionPart::Workflow(c) => format!("further in the workflow (`{c}`)"),
            })
            .collect();
        let _ = write!(
            out,
            "\n## `{}` ({})\n\n{} Key: `{}`; event time: `{}`. A record exported again \
             replaces the stored one when it is newer: {}, in that order; an equal version \
             with other content goes to the later batch.\n\n",
            table.name(),
            table.zh(),
            table.doc(),
            table.key_column(),
            table.event_time_column(),
            versions.join(", then ")
        );
        out.push_str("| column | type | null | 中文 | meaning |\n|---|---|---|---|---|\n");
        for c in table.columns() {
            let ty = match c.kind {
                ColumnKind::Enum(v) => format!("enum `{}`", v.name),
                _ => format!("{}", c.kind.data_type()),
            };
            let unit = c.unit().map(|u| format!(" ({u})")).unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{}` | {ty}{unit} | {} | {} | {} |",
                c.name,
                if c.nullable { "yes" } else { "no" },
                c.zh,
                c.doc
            );
        }
    }
    out.push_str("\n## Vocabularies\n");
    for v in ALL_VOCABULARIES {
        let _ = write!(
            out,
            "\n### `{}`\n\n{}\n\n| code | 中文 | meaning |\n|---|---|---|\n",
            v.name, v.doc
        );
        for t in v.terms {
            let _ = writeln!(out, "| `{}` | {} | {} |", t.code, t.zh, t.doc);
        }
    }
    out
}

/// The model as Markdown ([`model_markdown`]), or only `table`'s section of it.
pub fn model_markdown_of(table: Option<Table>) -> String {
    let md = model_markdown();
    let Some(table) = table else {
        return md;
    };
    let heading = format!("\n## `{}`", table.name());
    let start = md.find(&heading).unwrap_or(0);
    let rest = &md[start + 1..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |i| i + 1);
    format!("{}\n", &rest[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn documents_every_column() {
        let md = super::model_markdown();
        for table in crate::Table::ALL {
            for c in table.columns() {
                assert!(md.contains(&format!("| `{}` |", c.name)));
            }
        }
        assert!(md.contains("| `over_level` | 越级 |"));
    }
}
