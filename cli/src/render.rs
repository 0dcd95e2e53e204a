//! Output the way the AWS CLI prints it: `--output json|yaml|text|table`, `--query`
//! (JMESPath) applied first, timestamps as ISO 8601.

use clap::ValueEnum;
use serde_json::Value;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Indented JSON.
    Json,
    /// YAML.
    Yaml,
    /// Tab-separated values.
    Text,
    /// A boxed table.
    Table,
}

/// Epoch-second members named `…Timestamp` become ISO 8601 strings, as the AWS CLI shows them.
pub fn iso_timestamps(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k.ends_with("Timestamp") {
                    if let Some(secs) = x.as_f64() {
                        let ms = (secs * 1e3).round() as i64;
                        if let Some(t) = chrono::DateTime::from_timestamp_millis(ms) {
                            *x = t.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string().into();
                            continue;
                        }
                    }
                }
                iso_timestamps(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(iso_timestamps),
        _ => {}
    }
}

/// Longest `--query` accepted, in characters, and its deepest nesting of brackets, parentheses
/// and braces: the JMESPath parser and interpreter recurse once per level, and an expression
/// nested thousands deep would overflow the stack instead of failing with a message.
const QUERY_MAX_CHARS: usize = 4096;
const QUERY_MAX_DEPTH: usize = 128;

/// Refuses a `--query` too long or nested too deep to evaluate safely (quoted text and
/// literals do not count towards the nesting).
fn query_bounds(expr: &str) -> Result<(), String> {
    let chars = expr.chars().count();
    if chars > QUERY_MAX_CHARS {
        return Err(format!("--query: {chars} characters; at most {QUERY_MAX_CHARS} are accepted"));
    }
    let (mut depth, mut quote, mut escaped) = (0usize, None, false);
    for ch in expr.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if ch == '\\' => escaped = true,
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None => match ch {
                '\'' | '"' | '`' => quote = Some(ch),
                '[' | '(' | '{' => depth += 1,
                ']' | ')' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        if depth > QUERY_MAX_DEPTH {
            return Err(format!("--query: nested deeper than {QUERY_MAX_DEPTH} levels"));
        }
    }
    Ok(())
}

/// JMESPath's legacy literals, as the AWS CLI accepts them: a backtick literal that is not
/// JSON (`` `SUCCEEDED` ``) is the string it spells (`` `"SUCCEEDED"` ``).
fn legacy_literals(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    // Outside literals, quoted strings ('…', "…") are copied as they are.
    while let Some(i) = rest.find(['`', '\'', '"']) {
        let quote = rest.as_bytes()[i] as char;
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        // The closing quote: the next one not escaped by a backslash.
        let mut end = None;
        let mut escaped = false;
        for (j, c) in rest.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                c if c == quote && !escaped => {
                    end = Some(j);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else { break };
        let body = &rest[..end];
        if quote == '`' && serde_json::from_str::<Value>(&body.replace("\\`", "`")).is_err() {
            let s = body.trim().replace("\\`", "`");
            out.push_str(&serde_json::to_string(&s).expect("a string").replace('`', "\\`"));
        } else {
            out.push_str(body);
        }
        out.push(quote);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Applies `--query`.
pub fn query(v: Value, expr: Option<&str>) -> Result<Value, String> {
    let Some(expr) = expr else { return Ok(v) };
    query_bounds(expr)?;
    let e = jmespath::compile(&legacy_literals(expr)).map_err(|e| format!("--query: {e}"))?;
    let out = e.search(v).map_err(|e| format!("--query: {e}"))?;
    serde_json::to_value(&*out).map_err(|e| format!("--query: {e}"))
}

/// The response in `format` (a table without a title).
pub fn render(v: &Value, format: Format) -> String {
    render_titled(v, format, "")
}

/// The response in `format`; a table is titled with the operation's name, as the AWS CLI's.
pub fn render_titled(v: &Value, format: Format, operation: &str) -> String {
    match format {
        Format::Json => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(v, &mut ser).expect("JSON");
            String::from_utf8(buf).expect("UTF-8") + "\n"
        }
        Format::Yaml => serde_norway::to_string(v).expect("YAML"),
        Format::Text => {
            let mut out = String::new();
            text(v, None, &mut out);
            out
        }
        Format::Table => table(v, operation),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some("None".into()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.into()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The AWS CLI's text format: an object's scalars on one tab-separated line (sorted by key,
/// prefixed by the member's name in capitals when nested), then its nested members. The
/// objects of one list share their columns: every scalar member any of them has, an absent
/// one written as an empty column (so every row of a list has the same field count).
fn text(v: &Value, name: Option<&str>, out: &mut String) {
    text_with(v, name, None, out)
}

fn text_with(v: &Value, name: Option<&str>, columns: Option<&[String]>, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let scalars: Vec<String> = match columns {
                Some(cols) => cols.iter().map(|k| m.get(k).and_then(scalar).unwrap_or_default()).collect(),
                None => keys.iter().filter_map(|k| scalar(&m[*k])).collect(),
            };
            if !scalars.is_empty() {
                if let Some(n) = name {
                    out.push_str(&n.to_uppercase());
                    out.push('\t');
                }
                out.push_str(&scalars.join("\t"));
                out.push('\n');
            }
            for k in keys {
                if scalar(&m[k]).is_none() {
                    text(&m[k], Some(k), out);
                }
            }
        }
        Value::Array(a) if a.iter().all(|x| scalar(x).is_some()) => {
            if let Some(n) = name {
                out.push_str(&n.to_uppercase());
                out.push('\t');
            }
            out.push_str(&a.iter().filter_map(scalar).collect::<Vec<_>>().join("\t"));
            out.push('\n');
        }
        Value::Array(a) => {
            let mut cols: Vec<String> = a
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|m| m.iter().filter(|(_, v)| scalar(v).is_some()).map(|(k, _)| k.clone()))
                .collect();
            cols.sort();
            cols.dedup();
            a.iter().for_each(|x| text_with(x, name, Some(&cols), out))
        }
        other => {
            out.push_str(&scalar(other).unwrap_or_default());
            out.push('\n');
        }
    }
}

/// The AWS CLI's table format: the operation's name as the title; an object's scalars as
/// key/value rows; each nested object or list a titled section inside its parent, framed by
/// one more border on each side (`||`); a list of objects as rows under a header of their
/// scalar members (every member any of them has).
fn table(v: &Value, title: &str) -> String {
    let s = section(title, v);
    let width = s.natural();
    let mut lines = vec!["-".repeat(width)];
    s.draw(width, &mut lines);
    lines.join("\n") + "\n"
}

/// A titled section of a table.
struct Section {
    title: String,
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
    children: Vec<Section>,
}

fn section(title: &str, v: &Value) -> Section {
    let mut s = Section { title: title.to_owned(), header: None, rows: Vec::new(), children: Vec::new() };
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                match scalar(&m[k]) {
                    Some(x) => s.rows.push(vec![k.clone(), x]),
                    None => s.children.push(section(k, &m[k])),
                }
            }
        }
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object) => {
            let mut cols: Vec<String> = a
                .iter()
                .flat_map(|x| x.as_object().expect("object").iter())
                .filter(|(_, y)| scalar(y).is_some())
                .map(|(k, _)| k.clone())
                .collect();
            cols.sort();
            cols.dedup();
            for x in a {
                s.rows.push(cols.iter().map(|c| x.get(c).and_then(scalar).unwrap_or_default()).collect());
                let m = x.as_object().expect("object");
                s.children.extend(m.iter().filter(|(_, y)| scalar(y).is_none()).map(|(k, y)| section(k, y)));
            }
            s.header = Some(cols).filter(|c| !c.is_empty());
        }
        Value::Array(a) => {
            for x in a {
                match scalar(x) {
                    Some(v) => s.rows.push(vec![v]),
                    None => s.children.push(section(title, x)),
                }
            }
        }
        other => s.rows.push(vec![scalar(other).unwrap_or_default()]),
    }
    // Empty members (`"Datasets": []`) get no section, as in the AWS CLI's tables.
    s.children.retain(|c| !c.rows.is_empty() || !c.children.is_empty());
    s
}

impl Section {
    /// Column widths of the header and rows.
    fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = Vec::new();
        for r in self.header.iter().chain(self.rows.iter()) {
            for (i, c) in r.iter().enumerate() {
                if w.len() <= i {
                    w.push(0);
                }
                w[i] = w[i].max(c.chars().count());
            }
        }
        w
    }

    /// The width that fits it all, borders included.
    fn natural(&self) -> usize {
        let w = self.widths();
        let cells = w.iter().map(|c| c + 2).sum::<usize>() + w.len().saturating_sub(1);
        let own = cells.max(self.title.chars().count() + 2) + 2;
        self.children.iter().map(|c| c.natural() + 2).fold(own, usize::max)
    }

    /// Its lines at `width`; the last column takes what is left.
    fn draw(&self, width: usize, out: &mut Vec<String>) {
        let inner = width - 2;
        let rule = format!("+{}+", "-".repeat(inner));
        if !self.title.is_empty() {
            let pad = inner - self.title.chars().count();
            out.push(format!("|{}{}{}|", " ".repeat(pad / 2), self.title, " ".repeat(pad - pad / 2)));
        }
        let mut w = self.widths();
        let used = w.iter().map(|c| c + 2).sum::<usize>() + w.len().saturating_sub(1);
        if let Some(last) = w.last_mut() {
            *last += inner - used;
        }
        let grid = || {
            let cells: Vec<String> = w.iter().map(|c| "-".repeat(c + 2)).collect();
            format!("+{}+", cells.join("+"))
        };
        let line = |r: &[String]| {
            let cells: Vec<String> = w
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let x = r.get(i).map_or("", String::as_str);
                    format!(" {x}{} ", " ".repeat(c - x.chars().count()))
                })
                .collect();
            format!("|{}|", cells.join("|"))
        };
        if !w.is_empty() {
            out.push(grid());
            if let Some(h) = &self.header {
                out.push(line(h));
                out.push(grid());
            }
            out.extend(self.rows.iter().map(|r| line(r)));
            out.push(grid());
        } else {
            out.push(rule);
        }
        for c in &self.children {
            let mut lines = Vec::new();
            c.draw(width - 2, &mut lines);
            out.extend(lines.into_iter().map(|l| format!("|{l}|")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_and_query() {
        let mut v = json!({"ModelPackagingJobs": [
            {"JobName": "a", "Status": "SUCCEEDED", "CreationTimestamp": 1.5},
            {"JobName": "b", "Status": "FAILED", "CreationTimestamp": 0.0}]});
        iso_timestamps(&mut v);
        assert_eq!(v["ModelPackagingJobs"][0]["CreationTimestamp"], "1970-01-01T00:00:01.500+00:00");
        let q = query(v.clone(), Some("ModelPackagingJobs[?Status=='FAILED'].JobName")).unwrap();
        assert_eq!(q, json!(["b"]));
        assert!(query(v.clone(), Some("[[")).unwrap_err().contains("--query"));
        // Nesting that would overflow the parser's stack is refused with a message.
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(query(v.clone(), Some(&deep)).unwrap_err().contains("nested deeper than 128"));
        let deeper = "[".repeat(20_000) + &"]".repeat(20_000);
        assert!(query(v.clone(), Some(&deeper)).unwrap_err().contains("at most 4096"));
        let long = "a.".repeat(3000) + "a";
        assert!(query(v.clone(), Some(&long)).unwrap_err().contains("at most 4096"));
        // Brackets inside quoted text do not count.
        let quoted = format!("ModelPackagingJobs[?JobName=='{}'].JobName", "[".repeat(200));
        assert_eq!(query(v.clone(), Some(&quoted)).unwrap(), json!([]));
        assert_eq!(render(&json!({"JobName": "j"}), Format::Text), "j\n");
        let t = render(&v, Format::Text);
        assert_eq!(t.lines().next().unwrap(), "MODELPACKAGINGJOBS\t1970-01-01T00:00:01.500+00:00\ta\tSUCCEEDED");
        let table = render_titled(&v, Format::Table, "ListModelPackagingJobs");
        assert!(table.contains("| JobName ") && table.contains("| b "), "{table}");
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].starts_with("|") && lines[1].contains("ListModelPackagingJobs"), "{table}");
        assert!(
            lines[3].starts_with("||") && lines[3].contains("ModelPackagingJobs"),
            "a nested, titled section:\n{table}"
        );
        let widths: Vec<usize> = table.lines().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "ragged table:\n{table}");
        assert!(render(&v, Format::Yaml).contains("JobName: a"));
        // Legacy literals (the AWS CLI's): a backtick literal that is not JSON is a string.
        let q = query(v.clone(), Some("ModelPackagingJobs[?Status==`FAILED`].JobName")).unwrap();
        assert_eq!(q, json!(["b"]));
        assert_eq!(query(json!({"a": 1}), Some("a == `1`")).unwrap(), json!(true));
        assert_eq!(query(json!({}), Some("`[1, 2]`")).unwrap(), json!([1, 2]));
        assert_eq!(query(json!({}), Some("'`x`'")).unwrap(), json!("`x`"), "inside a raw string, untouched");
        assert_eq!(query(json!({}), Some("`a\\`b`")).unwrap(), json!("a`b"), "an escaped backtick");
        assert!(render(&v, Format::Json).starts_with("{\n    \"ModelPackagingJobs\""));
    }

    #[test]
    fn text_rows_of_one_list_have_the_same_columns() {
        // The second model has no Description: its row keeps an empty column for it.
        let v = json!({"Models": [
            {"ModelVersion": "1", "Description": "first", "Status": "TRAINED"},
            {"ModelVersion": "2", "Status": "TRAINED"},
            {"ModelVersion": "3", "Description": null, "Status": "TRAINED", "Extra": {"K": "v"}}]});
        let t = render(&v, Format::Text);
        let rows: Vec<Vec<&str>> =
            t.lines().filter(|l| l.starts_with("MODELS")).map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows[0], ["MODELS", "first", "1", "TRAINED"]);
        assert_eq!(rows[1], ["MODELS", "", "2", "TRAINED"]);
        assert_eq!(rows[2], ["MODELS", "None", "3", "TRAINED"]);
        assert!(t.contains("EXTRA\tv\n"), "{t}");
    }
}
