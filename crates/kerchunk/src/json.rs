//! kerchunk JSON: spec version 1 (`refs`, `templates`, `gen`) and version 0 (the references
//! themselves), read within limits and written as version 1.

use base64::Engine as _;
use cloudify_sdk::hyperslab::unravel;
use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use crate::{is_document, Error, Reference, ReferenceSet, Result};

/// What reading a JSON set may cost: a set is data from anywhere.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Most references, `gen` entries expanded.
    pub max_references: u64,
    /// Most jinja2 evaluation steps per template (minijinja fuel).
    pub max_template_steps: u64,
}

/// Inline data: `base64:` text, else the text's own bytes.
fn inline(text: &str) -> Result<Vec<u8>, String> {
    match text.strip_prefix("base64:") {
        Some(encoded) => {
            base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| format!("bad base64: {e}"))
        }
        None => Ok(text.as_bytes().to_vec()),
    }
}

/// jinja2 rendering of kerchunk's `{{name}}` templates and `gen` expressions, each bounded by
/// the evaluation steps the limits allow.
struct Templates {
    env: minijinja::Environment<'static>,
    values: Map<String, Value>,
}

impl Templates {
    fn new(values: Map<String, Value>, limits: ReadLimits) -> Self {
        let mut env = minijinja::Environment::new();
        env.set_fuel(Some(limits.max_template_steps));
        Self { env, values }
    }

    fn render(&self, text: &str, extra: &Map<String, Value>) -> Result<String, String> {
        if !text.contains("{{") {
            return Ok(text.to_owned());
        }
        let mut context = self.values.clone();
        context.extend(extra.clone());
        self.env.render_str(text, &context).map_err(|e| format!("template {text:?}: {e}"))
    }
}

fn integer(value: &Value, what: &str) -> Result<u64, String> {
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("{what} is not a byte count: {n}")),
        Value::String(s) => s.trim().parse().map_err(|_| format!("{what} is not a byte count: {s:?}")),
        other => Err(format!("{what} is not a byte count: {other}")),
    }
}

fn reference(value: &Value, templates: &Templates) -> Result<Reference, String> {
    let none = Map::new();
    match value {
        Value::String(text) => inline(text).map(Reference::Inline),
        // Some writers keep metadata documents as JSON objects.
        Value::Object(_) => Ok(Reference::Inline(value.to_string().into_bytes())),
        Value::Array(parts) => {
            let url = parts.first().and_then(Value::as_str).ok_or("a reference without a URL")?;
            let url = templates.render(url, &none)?;
            match parts.as_slice() {
                [_] => Ok(Reference::Range { url, offset: 0, length: None }),
                [_, offset, length] => Ok(Reference::Range {
                    url,
                    offset: integer(offset, "offset")?,
                    length: Some(integer(length, "length")?),
                }),
                _ => Err(format!("a reference of {} parts", parts.len())),
            }
        }
        other => Err(format!("unexpected reference {other}")),
    }
}

/// The values a `gen` dimension takes: `{start, stop, step}` or a list, at most `max`.
fn dimension_values(spec: &Value, max: u64) -> Result<Vec<Value>, String> {
    let too_many = |n: u64| format!("a gen dimension of {n} values, over the limit of {max} references");
    match spec {
        Value::Array(values) if values.len() as u64 > max => Err(too_many(values.len() as u64)),
        Value::Array(values) => Ok(values.clone()),
        Value::Object(range) => {
            let get = |key: &str, default: i64| range.get(key).and_then(Value::as_i64).unwrap_or(default);
            let (start, stop, step) = (get("start", 0), get("stop", 0), get("step", 1));
            if step <= 0 {
                return Err("a gen dimension with a step below 1".to_owned());
            }
            let span = (i128::from(stop) - i128::from(start)).max(0);
            let count = (span + i128::from(step) - 1) / i128::from(step);
            if count > i128::from(max) {
                return Err(too_many(u64::try_from(count).unwrap_or(u64::MAX)));
            }
            Ok((start..stop).step_by(usize::try_from(step).unwrap_or(usize::MAX)).map(Value::from).collect())
        }
        other => Err(format!("unexpected gen dimension {other}")),
    }
}

/// Expands one `gen` entry: a key, URL, offset and length template over the product of its
/// dimensions.
fn expand_gen(
    gen: &Value,
    templates: &Templates,
    out: &mut IndexMap<String, Reference>,
    limits: ReadLimits,
) -> Result<(), String> {
    let text = |key: &str| -> String {
        match &gen[key] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    };
    let dims: Vec<(String, Vec<Value>)> = gen["dimensions"]
        .as_object()
        .ok_or("a gen entry without dimensions")?
        .iter()
        .map(|(name, spec)| Ok((name.clone(), dimension_values(spec, limits.max_references)?)))
        .collect::<Result<_, String>>()?;
    let grid: Vec<u64> = dims.iter().map(|(_, values)| values.len() as u64).collect();
    let count = grid
        .iter()
        .try_fold(1u64, |acc, &n| acc.checked_mul(n))
        .filter(|&n| n.saturating_add(out.len() as u64) <= limits.max_references)
        .ok_or_else(|| format!("gen entries of {grid:?} are over the limit of {} references", limits.max_references))?;
    for flat in 0..count {
        let position = unravel(flat, &grid);
        let context: Map<String, Value> =
            dims.iter().zip(&position).map(|((name, values), &i)| (name.clone(), values[i as usize].clone())).collect();
        let key = templates.render(&text("key"), &context)?;
        let url = templates.render(&text("url"), &context)?;
        let reference = match (gen.get("offset"), gen.get("length")) {
            (Some(_), Some(_)) => Reference::Range {
                url,
                offset: integer(&Value::from(templates.render(&text("offset"), &context)?), "offset")?,
                length: Some(integer(&Value::from(templates.render(&text("length"), &context)?), "length")?),
            },
            _ => Reference::Range { url, offset: 0, length: None },
        };
        out.insert(key, reference);
    }
    Ok(())
}

fn parse(text: &[u8], limits: ReadLimits) -> Result<IndexMap<String, Reference>, String> {
    let doc: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let (refs, template_values, gens) = match doc.get("version") {
        Some(version) if version == 1 => (
            doc["refs"].as_object().ok_or("version 1 without refs")?,
            doc.get("templates").and_then(Value::as_object).cloned().unwrap_or_default(),
            doc.get("gen").and_then(Value::as_array).cloned().unwrap_or_default(),
        ),
        Some(other) => return Err(format!("unknown version {other}")),
        None => (doc.as_object().ok_or("not a JSON object")?, Map::new(), Vec::new()),
    };
    let templates = Templates::new(template_values, limits);
    let mut refs_out = IndexMap::new();
    for gen in &gens {
        expand_gen(gen, &templates, &mut refs_out, limits)?;
    }
    if (refs_out.len() + refs.len()) as u64 > limits.max_references {
        return Err(format!("{} references, over the limit of {}", refs_out.len() + refs.len(), limits.max_references));
    }
    for (key, value) in refs {
        refs_out.insert(key.clone(), reference(value, &templates).map_err(|e| format!("key {key}: {e}"))?);
    }
    Ok(refs_out)
}

impl ReferenceSet {
    /// Parses kerchunk JSON: version 1 (`refs`, `templates`, `gen`) or version 0 (the
    /// references themselves), within `limits`.
    ///
    /// # Errors
    /// [`Error::Invalid`]: text that is no reference set, or a set over the limits.
    pub fn from_json(text: &[u8], limits: ReadLimits) -> Result<Self> {
        parse(text, limits).map(|refs| Self { refs }).map_err(Error::invalid)
    }

    /// The set as kerchunk JSON, version 1: metadata documents as text, other inline bytes
    /// as `base64:`, ranges as `[url, offset, length]` (`[url]` for a whole object).
    pub fn to_json(&self) -> Vec<u8> {
        let refs: Map<String, Value> = self
            .iter()
            .map(|(key, reference)| {
                let value = match reference {
                    Reference::Inline(bytes) if is_document(key) => {
                        Value::from(String::from_utf8_lossy(bytes).into_owned())
                    }
                    Reference::Inline(bytes) => {
                        Value::from(format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
                    }
                    Reference::Range { url, offset, length: Some(length) } => json!([url, offset, length]),
                    Reference::Range { url, length: None, .. } => json!([url]),
                };
                (key.to_owned(), value)
            })
            .collect();
        json!({"version": 1, "refs": refs}).to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReadLimits = ReadLimits { max_references: 1 << 20, max_template_steps: 100_000 };

    #[test]
    fn versions_templates_and_gen() {
        let v1 = br#"{"version": 1,
            "templates": {"u": "https://h/data/f.nc"},
            "gen": [{"key": "x/{{i}}", "url": "{{u}}", "offset": "{{1000 + i * 10}}", "length": "10",
                     "dimensions": {"i": {"stop": 3}}}],
            "refs": {".zgroup": "{\"zarr_format\": 2}", "y/0": ["{{u}}", 5, 6], "y/1": "base64:AAH/",
                     "z/0": ["/data/whole.bin"], "w/.zattrs": {"a": 1}}}"#;
        let set = ReferenceSet::from_json(v1, LIMITS).unwrap();
        let url = "https://h/data/f.nc".to_owned();
        assert_eq!(set.get("x/2"), Some(&Reference::Range { url: url.clone(), offset: 1020, length: Some(10) }));
        assert_eq!(set.get("y/0"), Some(&Reference::Range { url, offset: 5, length: Some(6) }));
        assert_eq!(set.inline("y/1"), Some([0u8, 1, 255].as_slice()));
        assert_eq!(
            set.get("z/0"),
            Some(&Reference::Range { url: "/data/whole.bin".to_owned(), offset: 0, length: None })
        );
        assert_eq!(set.inline(".zgroup"), Some(br#"{"zarr_format": 2}"#.as_slice()));
        assert_eq!(set.inline("w/.zattrs"), Some(br#"{"a":1}"#.as_slice()));
        let v0 = ReferenceSet::from_json(br#"{".zgroup": "{}", "a/0": ["s3://b/k", 1, 2]}"#, LIMITS).unwrap();
        assert_eq!(v0.len(), 2);
        for bad in [br#"{"version": 2, "refs": {}}"#.as_slice(), br#"{"a/0": ["u", 1]}"#, b"[1]"] {
            assert!(matches!(ReferenceSet::from_json(bad, LIMITS), Err(Error::Invalid { .. })));
        }
        let tight = ReadLimits { max_references: 4, ..LIMITS };
        assert!(ReferenceSet::from_json(v1, tight).is_err());
    }

    #[test]
    fn written_json_reads_back_the_same() {
        let mut set = ReferenceSet::new();
        set.insert(".zgroup", Reference::Inline(br#"{"zarr_format":2}"#.to_vec()));
        set.insert("a/1", Reference::Range { url: "/data/f.nc".to_owned(), offset: 100, length: Some(4) });
        set.insert("a/2", Reference::Range { url: "s3://b/whole".to_owned(), offset: 0, length: None });
        set.insert("h/0", Reference::Inline(vec![0, 1, 255]));
        let doc: Value = serde_json::from_slice(&set.to_json()).unwrap();
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["refs"][".zgroup"], r#"{"zarr_format":2}"#);
        assert_eq!(doc["refs"]["a/1"], json!(["/data/f.nc", 100, 4]));
        assert_eq!(doc["refs"]["a/2"], json!(["s3://b/whole"]));
        assert_eq!(doc["refs"]["h/0"], "base64:AAH/");
        assert_eq!(ReferenceSet::from_json(&set.to_json(), LIMITS).unwrap(), set);
    }
}
