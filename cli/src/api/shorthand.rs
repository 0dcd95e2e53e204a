//! The AWS CLI's shorthand syntax for structure arguments:
//! `Greengrass={TargetDevice=jetson_xavier,S3OutputLocation={Bucket=b},Tags=[{Key=k,Value=v}]}`.
//! Members are `Name=value` separated by commas; a value is a structure `{…}`, a list `[…]`, a
//! quoted string (`'…'` or `"…"`, backslash escapes the quote) or a bare word (up to the next
//! `,`, `}` or `]`). Every leaf is a string, as every leaf of the packaging configuration is.

use serde_json::{Map, Value};

/// Parses shorthand into JSON; the error names the shorthand syntax and the column.
pub fn parse(s: &str) -> Result<Value, String> {
    let mut p = Parser { s: s.as_bytes(), at: 0 };
    let v = p.members(None)?;
    p.skip_ws();
    if p.at < p.s.len() {
        return Err(p.error("expected ',' or the end"));
    }
    Ok(v)
}

/// Whether an argument looks like shorthand rather than JSON or a file.
pub fn looks_like(s: &str) -> bool {
    let t = s.trim_start();
    !t.starts_with('{') && !t.starts_with('[') && !t.starts_with("file://") && t.contains('=')
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("shorthand syntax: {what} at column {} of {:?}", self.at + 1, String::from_utf8_lossy(self.s))
    }

    fn skip_ws(&mut self) {
        while self.s.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.at).copied()
    }

    /// `Name=value` pairs up to `close` (or the end).
    fn members(&mut self, close: Option<u8>) -> Result<Value, String> {
        let mut m = Map::new();
        loop {
            if self.peek() == close {
                break;
            }
            let start = self.at;
            while self.s.get(self.at).is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                self.at += 1;
            }
            if self.at == start {
                return Err(self.error("expected a member name"));
            }
            let name = String::from_utf8_lossy(&self.s[start..self.at]).into_owned();
            if self.peek() != Some(b'=') {
                return Err(self.error(&format!("expected '=' after '{name}'")));
            }
            self.at += 1;
            let v = self.value()?;
            if m.insert(name.clone(), v).is_some() {
                return Err(self.error(&format!("'{name}' given twice")));
            }
            match self.peek() {
                Some(b',') => self.at += 1,
                c if c == close => break,
                _ if close.is_some() => return Err(self.error("expected ',' or '}'")),
                _ => return Err(self.error("expected ','")),
            }
        }
        Ok(Value::Object(m))
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'{') => {
                self.at += 1;
                let v = self.members(Some(b'}'))?;
                self.at += 1;
                Ok(v)
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                while self.peek() != Some(b']') {
                    if self.peek().is_none() {
                        return Err(self.error("expected ']'"));
                    }
                    items.push(self.value()?);
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => {}
                        _ => return Err(self.error("expected ',' or ']'")),
                    }
                }
                self.at += 1;
                Ok(Value::Array(items))
            }
            Some(q @ (b'\'' | b'"')) => {
                self.at += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.at) {
                        None => return Err(self.error("an unterminated quoted string")),
                        Some(b'\\') if self.s.get(self.at + 1) == Some(&q) => {
                            out.push(q);
                            self.at += 2;
                        }
                        Some(&b) if b == q => {
                            self.at += 1;
                            break;
                        }
                        Some(&b) => {
                            out.push(b);
                            self.at += 1;
                        }
                    }
                }
                Ok(Value::String(String::from_utf8_lossy(&out).into_owned()))
            }
            Some(b'}' | b']' | b',') | None => Ok(Value::String(String::new())),
            Some(_) => {
                let start = self.at;
                while self.s.get(self.at).is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b'{' | b'[')) {
                    self.at += 1;
                }
                Ok(Value::String(String::from_utf8_lossy(&self.s[start..self.at]).trim_end().to_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_configuration_of_the_aws_docs_parses() {
        let v = parse(
            "Greengrass={TargetDevice=jetson_xavier,S3OutputLocation={Bucket=my-bucket,Prefix=a/b},\
             ComponentName=line1.Defects,ComponentDescription='a, quoted {text}',Tags=[{Key=k1,Value=v1},{Key=k2,Value=}]}",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"Greengrass": {
                "TargetDevice": "jetson_xavier",
                "S3OutputLocation": {"Bucket": "my-bucket", "Prefix": "a/b"},
                "ComponentName": "line1.Defects",
                "ComponentDescription": "a, quoted {text}",
                "Tags": [{"Key": "k1", "Value": "v1"}, {"Key": "k2", "Value": ""}]
            }})
        );
        assert_eq!(parse("A = {B = \"x \\\" y\" , C=[1, 2]}").unwrap(), json!({"A": {"B": "x \" y", "C": ["1", "2"]}}));
    }

    #[test]
    fn errors_name_the_shorthand_syntax_and_the_column() {
        for (bad, want) in [
            ("Greengrass", "expected '=' after 'Greengrass'"),
            ("Greengrass={TargetDevice=x", "expected ',' or '}'"),
            ("A=[x,y", "expected ',' or ']'"),
            ("A='x", "unterminated"),
            ("A=1,A=2", "given twice"),
            ("=x", "expected a member name"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with("shorthand syntax: ") && e.contains(want) && e.contains("column"), "{bad}: {e}");
        }
        assert!(looks_like("Greengrass={A=b}") && !looks_like("{\"Greengrass\": {}}") && !looks_like("file://x.json"));
    }
}
