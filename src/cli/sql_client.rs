//! `sluice sql`: sends one statement to a buck's read API and prints the rows as a table.

use std::io::Write;

use anyhow::{Context, bail};
use serde_json::Value;

/// Runs `sql` over `crawl` at the buck `url` and writes a table (or JSON lines) to `out`.
pub async fn run(
    url: &str,
    crawl: &str,
    sql: &str,
    token: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<usize> {
    let client = reqwest::Client::new();
    let endpoint = format!("{}/", url.trim_end_matches('/'));
    let mut req = client
        .post(&endpoint)
        .query(&[("segment", crawl)])
        .header("content-type", "application/sql;charset=utf-8");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.body(sql.to_owned()).send().await.with_context(|| {
        format!(
            "cannot reach the read API at {endpoint}: is `sluice up` (or a buck) running there?"
        )
    })?;
    let status = resp.status();
    let body = resp.text().await.context("reading the read API's reply")?;
    if !status.is_success() {
        bail!("{status}: {}", body.trim());
    }
    let rows: Vec<serde_json::Map<String, Value>> =
        serde_json::from_str(&body).with_context(|| {
            format!("the read API did not answer a JSON array of rows: {body:.200}")
        })?;
    if json {
        for r in &rows {
            writeln!(out, "{}", Value::Object(r.clone()))?;
        }
    } else {
        write_table(&rows, out)?;
    }
    Ok(rows.len())
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Writes rows as an aligned text table, columns in the first row's order.
pub fn write_table(
    rows: &[serde_json::Map<String, Value>],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let Some(first) = rows.first() else {
        return writeln!(out, "(no rows)");
    };
    let cols: Vec<&String> = first.keys().collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| cell(r.get(*c).unwrap_or(&Value::Null)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count().min(80))
                .max()
                .unwrap_or(0)
                .max(c.chars().count())
        })
        .collect();
    let line = |vals: Vec<&str>, out: &mut dyn Write| -> std::io::Result<()> {
        let parts: Vec<String> = vals
            .iter()
            .zip(&widths)
            .map(|(v, w)| {
                let v: String = v.chars().take(80).collect();
                format!("{v:<w$}")
            })
            .collect();
        writeln!(out, "{}", parts.join(" | ").trim_end())
    };
    line(cols.iter().map(|c| c.as_str()).collect(), out)?;
    writeln!(
        out,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    )?;
    for r in &cells {
        line(r.iter().map(String::as_str).collect(), out)?;
    }
    writeln!(
        out,
        "({} row{})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned() {
        let rows: Vec<serde_json::Map<String, Value>> =
            serde_json::from_str(r#"[{"status_code":200,"n":3},{"status_code":404,"n":12}]"#)
                .unwrap();
        let mut out = Vec::new();
        write_table(&rows, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "status_code | n\n------------+---\n200         | 3\n404         | 12\n(2 rows)\n"
        );
    }
}
