//! `poc-bench-native-rust --criterion-summary DIR --out FILE`: summarises the criterion run of
//! `benches/micro.rs` into `micro-rust.json` (bench/native/README.md, "micro-rust.json").
//!
//! Walks DIR (criterion's output directory, `$CARGO_TARGET_DIR/criterion`) for
//! `<id>/new/estimates.json`, and reads `mean`, `std_dev` and `median` `.point_estimate` (ns) from
//! each with a minimal JSON reader (no JSON crate is a dependency). A malformed file, a missing
//! estimate, or no estimates at all is an error naming the file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{json_num_fine, json_str, Res};

/// What each benchmark of benches/micro.rs measures, keyed by its criterion id.
const WHAT: &[(&str, &str)] = &[
    ("port_try_send_try_recv_cpp", "PortSender::try_send(Message{id, empty payload}) then PortReceiver::try_recv() on one poc_cpp_channel_new channel (capacity 1024) owned by a poc_cpp_runtime (1 thread): the Rust import path's non-blocking calls through the C ABI into Asio's concurrent_channel, no waiting; ns per send+receive pair, called from the bench thread"),
    ("port_send_recv_await_cpp", "PortSender::send(msg).await then PortReceiver::recv().await on the same kind of C++-owned channel, driven by futures::executor::block_on on the bench thread: both complete in the port call (fast path, no PENDING, no wake); ns per send+receive pair, including block_on's own cost (see block_on_ready)"),
    ("call_cpp_square_ready", "one async call of the C++ \"square\" lent function (poc_cpp_square_fn, POC_SQUARE_READY) through the Rust import (AsyncFn::call + awaiting its ForeignFuture) under futures::executor::block_on: call through the C ABI, first poll answers OK; ns per call"),
    ("call_rust_square_ready_abi", "one async call of the Rust \"square\" lent function (poc_rust_square_fn, POC_SQUARE_READY) through the same C ABI import (AsyncFn::call + ForeignFuture) under futures::executor::block_on: Rust → C ABI → Rust; ns per call"),
    ("tokio_mpsc_try_send_try_recv", "native baseline, no Poc code: tokio::sync::mpsc::channel(1024) of {id: u64, payload: Vec<u8>} (empty payload), try_send then try_recv on the bench thread; ns per pair"),
    ("block_on_ready", "baseline: futures::executor::block_on(std::future::ready(x)): the executor's own cost per block_on, included in every row that uses block_on; ns per call"),
];

fn what_of(id: &str) -> &'static str {
    WHAT.iter().find(|(k, _)| *k == id).map_or("(no description: a benchmark id not listed in the summariser's table)", |(_, w)| w)
}

// ----------------------------------------------------------------------------------------------
// A minimal JSON reader: enough for criterion's estimates.json (objects, arrays, numbers,
// strings, true/false/null).
// ----------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Json {
    Null,
    Bool,
    Num(f64),
    Str,
    Arr,
    Obj(Vec<(String, Json)>),
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn err<T>(&self, what: &str) -> Res<T> {
        Err(format!("{what} at byte {}", self.i))
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> Res<()> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&format!("expected '{}'", c as char))
        }
    }
    fn lit(&mut self, word: &str, v: Json) -> Res<Json> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("unknown literal")
        }
    }
    fn string(&mut self) -> Res<String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let Some(&c) = self.s.get(self.i) else { return self.err("unterminated string") };
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else { return self.err("unterminated escape") };
                    self.i += 1;
                    match e {
                        b'u' => {
                            // Keys and values here are ASCII; keep the escape's code point if valid.
                            let hex = self.s.get(self.i..self.i + 4).and_then(|h| std::str::from_utf8(h).ok());
                            let Some(cp) = hex.and_then(|h| u32::from_str_radix(h, 16).ok()) else { return self.err("bad \\u escape") };
                            self.i += 4;
                            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                        }
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        other => out.push(other as char),
                    }
                }
                c => out.push(c as char), // bytes >= 0x80 are not expected in estimates.json
            }
        }
    }
    fn value(&mut self) -> Res<Json> {
        self.ws();
        match self.s.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    let k = self.string()?;
                    self.eat(b':')?;
                    fields.push((k, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(fields));
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr);
                }
                loop {
                    self.value()?;
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr);
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => self.string().map(|_| Json::Str),
            Some(b't') => self.lit("true", Json::Bool),
            Some(b'f') => self.lit("false", Json::Bool),
            Some(b'n') => self.lit("null", Json::Null),
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len() && matches!(self.s[self.i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                match text.parse::<f64>() {
                    Ok(x) if !text.is_empty() => Ok(Json::Num(x)),
                    _ => {
                        self.i = start;
                        self.err("expected a JSON value")
                    }
                }
            }
        }
    }
}

fn parse(text: &str) -> Res<Json> {
    let mut r = Reader { s: text.as_bytes(), i: 0 };
    let v = r.value()?;
    r.ws();
    if r.i != r.s.len() {
        return r.err("trailing characters");
    }
    Ok(v)
}

fn field<'a>(v: &'a Json, key: &str) -> Option<&'a Json> {
    match v {
        Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

/// `estimates[key].point_estimate` (ns), finite and non-negative.
fn point(est: &Json, key: &str) -> Res<f64> {
    match field(est, key).and_then(|o| field(o, "point_estimate")) {
        Some(Json::Num(x)) if x.is_finite() && *x >= 0.0 => Ok(*x),
        Some(other) => Err(format!("\"{key}\".point_estimate is not a non-negative number ({other:?})")),
        None => Err(format!("no \"{key}\".point_estimate")),
    }
}

/// (mean, std_dev, median) in ns from the text of one estimates.json.
fn estimates(text: &str) -> Res<(f64, f64, f64)> {
    let v = parse(text)?;
    Ok((point(&v, "mean")?, point(&v, "std_dev")?, point(&v, "median")?))
}

/// Every `<id>/new/estimates.json` under `dir` (sorted by id; the id is the path of `<id>`
/// relative to `dir`, with '/' separators).
fn find(dir: &Path) -> Res<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("reading {}: {e}", d.display()))?;
        for e in entries {
            let p = e.map_err(|e| format!("reading {}: {e}", d.display()))?.path();
            if !p.is_dir() {
                continue;
            }
            let est = p.join("new").join("estimates.json");
            if p.file_name().is_some_and(|n| n != "report") && est.is_file() {
                let rel = p.strip_prefix(dir).unwrap_or(&p);
                let id = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/");
                out.push((id, est));
            }
            if p.file_name().is_some_and(|n| n != "new" && n != "base" && n != "change" && n != "report") {
                stack.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Writes micro-rust.json from criterion's directory `dir`.
pub fn summarise(dir: &str, out_path: &str) -> Res<()> {
    let dir = Path::new(dir);
    let found = find(dir)?;
    if found.is_empty() {
        return Err(format!("no <id>/new/estimates.json under {} (did the criterion run happen?)", dir.display()));
    }
    let mut rows = Vec::new();
    for (id, path) in &found {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let (mean, sd, median) = estimates(&text).map_err(|e| format!("{}: malformed criterion estimates: {e}", path.display()))?;
        println!("[native-rust micro] {id}: mean {mean:.2} ns, std dev {sd:.2} ns, median {median:.2} ns");
        rows.push(format!(
            "    {{\"benchmark\": {}, \"what\": {}, \"mean_ns\": {}, \"stddev_ns\": {}, \"median_ns\": {}}}",
            json_str(id), json_str(what_of(id)), json_num_fine(mean), json_num_fine(sd), json_num_fine(median)
        ));
    }
    let quick = std::env::var_os("POC_MICRO_QUICK").is_some_and(|v| v == "1");
    let mut json = String::from("{\n  \"runtime\": \"Rust\",\n");
    let _ = writeln!(json, "  \"tool\": {},", json_str(&format!("criterion 0.3.6 ({})", settings(quick))));
    let _ = writeln!(json, "  \"micro\": [\n{}\n  ]\n}}", rows.join(",\n"));
    std::fs::write(out_path, json).map_err(|e| format!("writing {out_path}: {e}"))?;
    println!("[native-rust micro] wrote {out_path} ({} benchmarks)", rows.len());
    Ok(())
}

/// The criterion settings of benches/micro.rs (kept in step with its `config()`).
pub fn settings(quick: bool) -> String {
    let (warm, meas, samples, resamples) = if quick { ("0.5 s", "1.5 s", 20, "5 000") } else { ("1 s", "5 s", 50, "20 000") };
    format!(
        "{} settings, POC_MICRO_QUICK={}: warm-up {warm}, measurement {meas}, {samples} samples, {resamples} bootstrap resamples per benchmark, plots off; mean/std_dev/median point estimates of the time per iteration from criterion's estimates.json, in ns",
        if quick { "quick" } else { "full" },
        if quick { "1" } else { "unset" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":10.5,"upper_bound":11.5},"point_estimate":11.0,"standard_error":0.25},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":9.0,"upper_bound":10.0},"point_estimate":9.5,"standard_error":0.2},"median_abs_dev":{"confidence_interval":{"confidence_level":0.95,"lower_bound":0.1,"upper_bound":0.3},"point_estimate":0.2,"standard_error":0.05},"slope":null,"std_dev":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":1.5e0,"standard_error":0.1}}"#;

    #[test]
    fn reads_the_three_estimates() {
        assert_eq!(estimates(SAMPLE).unwrap(), (11.0, 1.5, 9.5));
        // median_abs_dev (listed first here) is not taken for median.
        let t = r#"{"median_abs_dev":{"point_estimate":0.5},"std_dev":{"point_estimate":2},"median":{"point_estimate":3},"mean":{"point_estimate":4}}"#;
        assert_eq!(estimates(t).unwrap(), (4.0, 2.0, 3.0));
    }

    #[test]
    fn rejects_malformed_files() {
        assert!(estimates("").is_err());
        assert!(estimates("{\"mean\":{\"point_estimate\":1}").is_err()); // truncated
        assert!(estimates("{\"mean\":{\"point_estimate\":1},\"std_dev\":{\"point_estimate\":2}}").unwrap_err().contains("median"));
        assert!(estimates("{\"mean\":{\"point_estimate\":\"x\"},\"std_dev\":{},\"median\":{}}").is_err());
        assert!(estimates("[1, 2]").is_err());
    }
}
