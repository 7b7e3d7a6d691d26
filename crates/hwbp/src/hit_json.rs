//! A hit as hwbp's documented JSON line, with the watch it belongs to: [`Hit::write_json`]
//! and the [`HitJsonWriter`] that writes a stream of them (`hwbp watch --json`, `hwbp
//! record`). Above the plan: a hit's line names its planned watch (label, id, address).

use std::sync::Arc;

use hwbp_core::Access;
use hwbp_symbols::cache::CodeInfo;
use hwbp_symbols::value::Value;

use crate::hit::{Hit, ValueSource};
use crate::json;
use crate::plan::PlannedWatch;
use crate::typed::TypedValue;

impl Hit {
    /// Appends hwbp's JSON object for this hit to `out` (one line of `hwbp watch --json`,
    /// without the newline). Fields, in order:
    /// `type` (`"hit"`), `time_ns`, `cpu` (absent in stop mode), `pid`, `tid`, `comm`,
    /// `watch` (the spec as written), `watch_id`, `address` (`0x...`; null for a watch that
    /// waited for its image, whose address is per process; absent for a local, whose address
    /// is the frame's), `field` (absent for a one-piece watch), `access`, `kernel`, `ip`,
    /// `instruction`, `function`, `module_offset`
    /// (`libc.so.6+0x27e66` when no symbol names the code; absent otherwise), `offset`, `file`,
    /// `line`, `value_after`, `value_before`, `exact`, `value_source` (`stopped`,
    /// `decoded-store`, `read-after`, `handler`; absent when no value is read), `callchain`
    /// (absent unless sampled). For a watch of a symbol or expression, the typed fields
    /// follow: `value_type` (the DWARF type's name, `null` when the symbol has no debug info),
    /// `old` and `new` (the whole value as the language prints it: `-1`, `115 's'`,
    /// `MODE_ON`, `(PERM_R | PERM_W)`, `0x4040a0 <nodes+16>`, `{a = 1, b = 2}`,
    /// `<unreadable>`), `changes` (for structs and arrays, each changed member as
    /// `{"member": "cfg.limits[2].max", "old": "3", "new": "7"}`), `bytes_before` and
    /// `bytes_after` (hex, lowest address first, for values wider than 8 bytes, whose raw
    /// integers are null; `??` for a byte not known, of a piece that was not armed), and for a value chain `moved_by` (the pointer whose write moved
    /// the watch) and `moved_to` (the value's new address, `null` while a pointer is NULL).
    /// For a local ([`crate::local`]), last: `frame` (`{"instance": N, "cfa": "0x...",
    /// "address": "0x..."}`).
    pub fn write_json(&self, watch: &PlannedWatch, out: &mut Vec<u8>) {
        HitJsonWriter::default().write(self, watch, out);
    }

    /// [`Hit::write_json`] as a `String`, without the newline.
    pub fn json_line(&self, watch: &PlannedWatch) -> String {
        let mut out = Vec::with_capacity(512);
        self.write_json(watch, &mut out);
        String::from_utf8(out).expect("the JSON writer writes UTF-8")
    }
}

/// Writes hits as [`Hit::write_json`] does, faster for a stream of them: the parts that repeat
/// from hit to hit are escaped once and kept (per watch: its label, id and address; per code
/// location: instruction, function, file and line; the thread's name), so a hit costs its
/// numbers and a few copies. `hwbp watch --json` and `hwbp record` write every hit through one.
#[derive(Debug, Default)]
pub struct HitJsonWriter {
    /// Per watch index: `,"watch":...,"watch_id":N,"address":"0x..."`.
    watches: Vec<Option<Box<[u8]>>>,
    /// Recent code locations and their `,"instruction":...,"line":N`. Holding the `Arc`
    /// keeps its address from being reused while it is a key.
    code: Recent<Arc<CodeInfo>>,
    /// Recent callchains (their frames, compared by address: the symbol cache hands out one
    /// `Arc` per frame text) and their JSON arrays: a hot loop's hits repeat a few chains.
    callchains: Recent<Vec<Arc<str>>>,
    /// The last thread name and its escaped form.
    comm: Option<(Arc<str>, Box<[u8]>)>,
    /// The last hit's middle part (see [`HitJsonWriter::write_middle`]) and what it was made
    /// of.
    middle: Option<(MiddleKey, Vec<u8>)>,
}

/// What a hit's middle part depends on. It holds the name, member and code it was made
/// from, so their addresses cannot be reused by other values while they are compared.
#[derive(Debug)]
struct MiddleKey {
    pid: i32,
    tid: i32,
    comm: Arc<str>,
    watch: usize,
    member: Option<Arc<str>>,
    access: Access,
    kernel: bool,
    ip: u64,
    code: Arc<CodeInfo>,
}

impl MiddleKey {
    fn of(hit: &Hit, watch: &PlannedWatch) -> Self {
        MiddleKey {
            pid: hit.pid,
            tid: hit.tid,
            comm: hit.comm.clone(),
            watch: watch.id.index(),
            member: hit.member.clone(),
            access: hit.access,
            kernel: hit.kernel,
            ip: hit.ip,
            code: hit.code.clone(),
        }
    }

    fn matches(&self, hit: &Hit, watch: &PlannedWatch) -> bool {
        (
            self.pid,
            self.tid,
            self.watch,
            self.access,
            self.kernel,
            self.ip,
        ) == (
            hit.pid,
            hit.tid,
            watch.id.index(),
            hit.access,
            hit.kernel,
            hit.ip,
        ) && Arc::ptr_eq(&self.comm, &hit.comm)
            && Arc::ptr_eq(&self.code, &hit.code)
            && match (&self.member, &hit.member) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

/// Code locations a [`HitJsonWriter`] keeps (a hot loop writes from a few).
const CODE_FRAGMENTS: usize = 16;

/// Callchains a [`HitJsonWriter`] keeps (a hot loop's hits come through a few).
const CALLCHAIN_FRAGMENTS: usize = 32;

/// Values written recently and their JSON text, most recent last, at most a given number: the
/// oldest goes when a new one comes.
#[derive(Debug)]
struct Recent<K>(Vec<(K, Box<[u8]>)>);

impl<K> Default for Recent<K> {
    fn default() -> Self {
        Recent(Vec::new())
    }
}

impl<K> Recent<K> {
    /// The text kept for the value `is` accepts, else `write`'s text kept for `key()`.
    fn fragment(
        &mut self,
        limit: usize,
        is: impl Fn(&K) -> bool,
        key: impl FnOnce() -> K,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> &[u8] {
        let at = match self.0.iter().rposition(|(k, _)| is(k)) {
            Some(at) => at,
            None => {
                if self.0.len() == limit {
                    self.0.remove(0);
                }
                let mut text = Vec::new();
                write(&mut text);
                self.0.push((key(), text.into()));
                self.0.len() - 1
            }
        };
        &self.0[at].1
    }
}

impl HitJsonWriter {
    /// A writer with nothing cached.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `hit`'s JSON object (no newline) to `out`; `watch` is the hit's watch.
    pub fn write(&mut self, hit: &Hit, watch: &PlannedWatch, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"hit\",\"time_ns\":");
        json::push_u64(out, hit.time_ns);
        if let Some(cpu) = hit.cpu {
            out.extend_from_slice(b",\"cpu\":");
            json::push_u64(out, cpu.into());
        }
        if !self
            .middle
            .as_ref()
            .is_some_and(|(key, _)| key.matches(hit, watch))
        {
            let mut middle = self.middle.take().map(|(_, m)| m).unwrap_or_default();
            middle.clear();
            self.write_middle(hit, watch, &mut middle);
            self.middle = Some((MiddleKey::of(hit, watch), middle));
        }
        out.extend_from_slice(&self.middle.as_ref().expect("set above").1);
        out.extend_from_slice(b",\"value_after\":");
        push_opt_u64(out, hit.value.and_then(|v| v.new));
        out.extend_from_slice(b",\"value_before\":");
        push_opt_u64(out, hit.value.and_then(|v| v.old));
        out.extend_from_slice(match hit.value.map(|v| v.source) {
            None => b",\"exact\":false",
            Some(ValueSource::Stopped) => b",\"exact\":true,\"value_source\":\"stopped\"",
            Some(ValueSource::DecodedStore) => {
                b",\"exact\":true,\"value_source\":\"decoded-store\""
            }
            Some(ValueSource::ReadAfter) => b",\"exact\":false,\"value_source\":\"read-after\"",
            Some(ValueSource::Handler) => b",\"exact\":true,\"value_source\":\"handler\"",
        });
        let mut o = json::Object::continued(out);
        if !hit.callchain.is_empty() {
            let chain = self.callchain_fragment(&hit.callchain);
            o.key("callchain").extend_from_slice(chain);
        }
        if let Some(t) = &hit.typed {
            write_typed(&mut o, t);
        }
        if let Some(frame) = &hit.frame {
            let mut f = json::Object::open(o.key("frame"));
            f.u64("instance", frame.instance);
            f.hex("cfa", frame.cfa);
            f.hex("address", frame.address);
            f.close();
        }
        o.close();
    }

    /// From `,"pid":` to the code's fields: what stays the same from hit to hit of one thread
    /// at one instruction.
    fn write_middle(&mut self, hit: &Hit, watch: &PlannedWatch, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"pid\":");
        json::push_i64(out, hit.pid.into());
        out.extend_from_slice(b",\"tid\":");
        json::push_i64(out, hit.tid.into());
        out.extend_from_slice(b",\"comm\":");
        out.extend_from_slice(self.comm_fragment(&hit.comm));
        out.extend_from_slice(self.watch_fragment(watch));
        if let Some(member) = &hit.member {
            out.extend_from_slice(b",\"field\":");
            json::push_str(out, member);
        }
        out.extend_from_slice(match (hit.access, hit.kernel) {
            (Access::Read, false) => b",\"access\":\"r\",\"kernel\":false,\"ip\":",
            (Access::Read, true) => b",\"access\":\"r\",\"kernel\":true,\"ip\":",
            (Access::Write, false) => b",\"access\":\"w\",\"kernel\":false,\"ip\":",
            (Access::Write, true) => b",\"access\":\"w\",\"kernel\":true,\"ip\":",
            (Access::ReadWrite, false) => b",\"access\":\"rw\",\"kernel\":false,\"ip\":",
            (Access::ReadWrite, true) => b",\"access\":\"rw\",\"kernel\":true,\"ip\":",
            (Access::Execute, false) => b",\"access\":\"x\",\"kernel\":false,\"ip\":",
            (Access::Execute, true) => b",\"access\":\"x\",\"kernel\":true,\"ip\":",
        });
        json::push_hex(out, hit.ip);
        out.extend_from_slice(self.code_fragment(&hit.code));
    }

    fn comm_fragment(&mut self, comm: &Arc<str>) -> &[u8] {
        if !matches!(&self.comm, Some((last, _)) if Arc::ptr_eq(last, comm)) {
            let mut text = Vec::with_capacity(comm.len() + 2);
            json::push_str(&mut text, comm);
            self.comm = Some((comm.clone(), text.into()));
        }
        &self.comm.as_ref().expect("set above").1
    }

    fn watch_fragment(&mut self, watch: &PlannedWatch) -> &[u8] {
        let index = watch.id.index();
        if self.watches.len() <= index {
            self.watches.resize(index + 1, None);
        }
        self.watches[index].get_or_insert_with(|| {
            let mut text = Vec::new();
            let mut o = json::Object::continued(&mut text);
            o.str("watch", &watch.label);
            o.u64("watch_id", index as u64);
            // A local's address is its frame's (`frame.address`); a watch that waited for its
            // image has an address per process (crate::tree).
            if watch.local.is_none() {
                o.opt_hex(
                    "address",
                    (!watch.pieces.is_empty() || watch.addr != 0).then_some(watch.addr),
                );
            }
            text.into()
        })
    }

    fn code_fragment(&mut self, code: &Arc<CodeInfo>) -> &[u8] {
        self.code.fragment(
            CODE_FRAGMENTS,
            |c| Arc::ptr_eq(c, code),
            || code.clone(),
            |text| {
                let mut o = json::Object::continued(text);
                o.opt_hex("instruction", code.instruction);
                o.opt_str("function", code.function());
                if let Some(offset) = &code.module_offset {
                    o.str("module_offset", &offset.to_string());
                }
                o.opt_u64("offset", code.offset());
                let location = code.location.as_ref();
                o.opt_str("file", location.and_then(|l| l.file.as_deref()));
                o.opt_u64("line", location.and_then(|l| l.line).map(u64::from));
            },
        )
    }

    /// `callchain`'s JSON array.
    fn callchain_fragment(&mut self, callchain: &[Arc<str>]) -> &[u8] {
        self.callchains.fragment(
            CALLCHAIN_FRAGMENTS,
            |c| {
                c.len() == callchain.len()
                    && c.iter().zip(callchain).all(|(a, b)| Arc::ptr_eq(a, b))
            },
            || callchain.to_vec(),
            |text| json::push_array(text, callchain, |out, frame| json::push_str(out, frame)),
        )
    }
}

fn push_opt_u64(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        Some(v) => json::push_u64(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// The typed fields, in their documented order.
fn write_typed(o: &mut json::Object<'_>, t: &TypedValue) {
    o.opt_str("value_type", t.value_type.as_deref());
    o.opt_str("old", t.old.as_ref().map(Value::to_string).as_deref());
    o.opt_str("new", t.new.as_ref().map(Value::to_string).as_deref());
    if !t.changes.is_empty() {
        json::push_array(o.key("changes"), &t.changes, |out, change| {
            let mut c = json::Object::open(out);
            c.str("member", &change.path);
            c.str("old", &change.old.to_string());
            c.str("new", &change.new.to_string());
            c.close();
        });
    }
    if let Some(bytes) = &t.bytes_before {
        o.str("bytes_before", &hex(bytes, t.known_before.as_deref()));
    }
    if let Some(bytes) = &t.bytes_after {
        o.str("bytes_after", &hex(bytes, t.known_after.as_deref()));
    }
    if let Some(pointer) = &t.moved_by {
        o.str("moved_by", pointer);
        o.opt_hex("moved_to", t.moved_to);
    }
}

/// `bytes` in hex, `??` for each byte `known` says is not known.
fn hex(bytes: &[u8], known: Option<&[bool]>) -> String {
    bytes
        .iter()
        .enumerate()
        .map(|(i, b)| match known.and_then(|k| k.get(i)) {
            Some(false) => "??".to_string(),
            _ => format!("{b:02x}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hit::{HitValue, WatchId};
    use crate::typed::TypedValue;
    use hwbp_linux::perf::WatchRequest;
    use hwbp_symbols::process::ModuleOffset;
    use hwbp_symbols::types::Language;
    use hwbp_symbols::value::{Change, Member};
    use hwbp_symbols::CodeLocation;
    use serde_json::json;

    fn watch(label: &str) -> PlannedWatch {
        let piece = WatchRequest::new(0x404028, 8, Access::Write);
        PlannedWatch::untyped(WatchId(1), label, (0x404028, 8), Access::Write, vec![piece])
    }

    fn plain_hit() -> Hit {
        Hit {
            watch: WatchId(1),
            time_ns: 1_234_567,
            cpu: Some(3),
            pid: 100,
            tid: 101,
            comm: "wr\"iter\t1".into(),
            access: Access::Write,
            kernel: false,
            ip: 0x401136,
            code: Arc::new(CodeInfo {
                instruction: Some(0x401130),
                location: Some(CodeLocation {
                    function: "ns::bump<int>".into(),
                    offset: 0x10,
                    file: Some("/src/a b\\c.cc".into()),
                    line: Some(42),
                    module: "/bin/prog".into(),
                }),
                kernel_function: None,
                module_offset: None,
            }),
            member: None,
            value: Some(HitValue {
                old: Some(u64::MAX),
                new: Some(0),
                source: ValueSource::Handler,
            }),
            callchain: Vec::new(),
            typed: None,
            frame: None,
        }
    }

    /// The keys in the order the line has them.
    fn keys(line: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut de = serde_json::Deserializer::from_str(line);
        let value: serde_json::Map<String, serde_json::Value> =
            serde::Deserialize::deserialize(&mut de).unwrap();
        // serde_json's Map sorts keys; find each key's position in the text instead.
        let mut at: Vec<(usize, String)> = value
            .keys()
            .map(|k| (line.find(&format!("\"{k}\":")).unwrap(), k.clone()))
            .collect();
        at.sort();
        keys.extend(at.into_iter().map(|(_, k)| k));
        keys
    }

    #[test]
    fn a_plain_hit_is_the_documented_object_in_the_documented_order() {
        let line = plain_hit().json_line(&watch("mem:0x404028/8:w"));
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            json!({
                "type": "hit", "time_ns": 1_234_567, "cpu": 3, "pid": 100, "tid": 101,
                "comm": "wr\"iter\t1", "watch": "mem:0x404028/8:w", "watch_id": 1,
                "address": "0x404028", "access": "w", "kernel": false, "ip": "0x401136",
                "instruction": "0x401130", "function": "ns::bump<int>", "offset": 16,
                "file": "/src/a b\\c.cc", "line": 42, "value_after": 0,
                "value_before": u64::MAX, "exact": true, "value_source": "handler"
            })
        );
        assert_eq!(
            keys(&line),
            concat!(
                "type time_ns cpu pid tid comm watch watch_id address access kernel ip ",
                "instruction function offset file line value_after value_before exact ",
                "value_source",
            )
            .split(' ')
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn optional_fields_appear_as_documented() {
        let mut hit = plain_hit();
        hit.cpu = None;
        hit.member = Some("cfg.limits[2].max".into());
        hit.code = Arc::new(CodeInfo {
            instruction: None,
            location: None,
            kernel_function: None,
            module_offset: Some(ModuleOffset {
                module: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
                offset: 0x27e66,
            }),
        });
        hit.value = None;
        hit.callchain = vec!["main+0x5 (a.c:3)".into(), "\u{1}odd".into()];
        hit.typed = Some(TypedValue {
            value_type: None,
            old: Some(Value::Struct {
                name: "struct s".into(),
                members: vec![Member {
                    name: Some("a".into()),
                    base: false,
                    value: Value::Signed(1),
                }],
                language: Language::C,
            }),
            new: None,
            changes: vec![Change {
                path: "a".into(),
                old: Value::Signed(1),
                new: Value::CharArray(b"q".iter().copied().map(Some).collect()),
            }],
            bytes_before: Some(vec![0, 0xab]),
            bytes_after: Some(vec![0x10]),
            known_before: Some(vec![true, false]),
            known_after: None,
            moved_by: Some("p".into()),
            moved_to: None,
        });
        let line = hit.json_line(&watch("*p"));
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            json!({
                "type": "hit", "time_ns": 1_234_567, "pid": 100, "tid": 101,
                "comm": "wr\"iter\t1", "watch": "*p", "watch_id": 1, "address": "0x404028",
                "field": "cfg.limits[2].max", "access": "w", "kernel": false,
                "ip": "0x401136", "instruction": null, "function": null,
                "module_offset": "libc.so.6+0x27e66", "offset": null, "file": null,
                "line": null, "value_after": null, "value_before": null, "exact": false,
                "callchain": ["main+0x5 (a.c:3)", "\u{1}odd"], "value_type": null,
                "old": "{a = 1}", "new": null,
                "changes": [{"member": "a", "old": "1", "new": "\"q\""}],
                "bytes_before": "00??", "bytes_after": "10", "moved_by": "p", "moved_to": null
            })
        );
        assert_eq!(
            keys(&line),
            concat!(
                "type time_ns pid tid comm watch watch_id address field access kernel ",
                "ip instruction function module_offset offset file line value_after ",
                "value_before exact callchain value_type old new changes bytes_before ",
                "bytes_after moved_by moved_to",
            )
            .split(' ')
            .collect::<Vec<_>>()
        );
        hit.typed.as_mut().unwrap().moved_to = Some(0x5000);
        let parsed: serde_json::Value = serde_json::from_str(&hit.json_line(&watch("*p"))).unwrap();
        assert_eq!(parsed["moved_to"], "0x5000");
    }

    #[test]
    fn a_reused_writer_writes_each_callchain_as_a_fresh_one_does() {
        let w = watch("a");
        let mut writer = HitJsonWriter::new();
        let frames: Vec<Arc<str>> = (0..50)
            .map(|i| format!("{i:#x} f{i} (\"a\".c:{i})").into())
            .collect();
        // 40 chains (more than the writer keeps) of shared frames, one a prefix of another.
        let chains: Vec<Vec<Arc<str>>> = (0..40)
            .map(|c| {
                (0..1 + c % 6)
                    .map(|k| frames[(c + 3 * k) % 50].clone())
                    .collect()
            })
            .collect();
        for i in 0..300usize {
            let mut hit = plain_hit();
            hit.callchain = match i % 5 {
                // Three hot chains.
                0 | 1 => chains[i % 3].clone(),
                // The same texts in new `Arc`s.
                2 => chains[i % 40].iter().map(|f| Arc::from(&**f)).collect(),
                // Chains that come back after others pushed them out.
                _ => chains[(i * 7) % 40].clone(),
            };
            let mut out = Vec::new();
            writer.write(&hit, &w, &mut out);
            let line = String::from_utf8(out).unwrap();
            assert_eq!(line, hit.json_line(&w), "hit {i}");
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
            let texts: Vec<&str> = hit.callchain.iter().map(|f| &**f).collect();
            assert_eq!(parsed["callchain"], serde_json::json!(texts), "hit {i}");
        }
    }

    #[test]
    fn a_reused_writer_writes_each_hit_as_a_fresh_one_does() {
        let watches = [watch("a"), {
            let mut w = watch("b \"quoted\"");
            w.id = WatchId(3);
            w.addr = 0x5000;
            w
        }];
        let mut writer = HitJsonWriter::new();
        // 40 hits over 20 code locations (more than the writer keeps), two names, two watches,
        // two threads, four instructions and members that come and go.
        let codes: Vec<Arc<CodeInfo>> = (0..20u64)
            .map(|i| {
                Arc::new(CodeInfo {
                    instruction: Some(0x1000 + i),
                    ..CodeInfo::default()
                })
            })
            .collect();
        let names: [Arc<str>; 2] = ["one".into(), "tw\no".into()];
        let kept_member: Arc<str> = "cfg.a".into();
        for i in 0..40usize {
            let mut hit = plain_hit();
            hit.code = codes[(i * 7) % codes.len()].clone();
            hit.comm = names[i % 3 % 2].clone();
            let w = &watches[i % 2];
            hit.watch = w.id;
            hit.kernel = i % 5 == 0;
            hit.tid = 101 + (i % 4) as i32 / 3;
            // Members: none, one kept Arc, or a new Arc each time (same text or another).
            hit.member = match i % 4 {
                0 => None,
                1 => Some(kept_member.clone()),
                2 => Some("cfg.a".into()),
                _ => Some(format!("cfg.b[{}]", i % 3).into()),
            };
            hit.ip = 0x401136 + (i / 10) as u64;
            let mut out = Vec::new();
            writer.write(&hit, w, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), hit.json_line(w), "hit {i}");
            let parsed: serde_json::Value = serde_json::from_str(&hit.json_line(w)).unwrap();
            assert_eq!(
                parsed["instruction"],
                format!("{:#x}", 0x1000 + (i * 7) % 20)
            );
            assert_eq!(parsed["watch_id"], w.id.0);
            assert_eq!(parsed["kernel"], i % 5 == 0);
            assert_eq!(parsed["tid"], hit.tid);
            // The same hit again, later and with other values: the cached middle part.
            hit.time_ns += 7;
            hit.value = Some(HitValue {
                old: Some(i as u64),
                new: None,
                source: ValueSource::ReadAfter,
            });
            let mut again = Vec::new();
            writer.write(&hit, w, &mut again);
            assert_eq!(
                String::from_utf8(again).unwrap(),
                hit.json_line(w),
                "hit {i} again"
            );
            assert_eq!(parsed["ip"], format!("{:#x}", hit.ip));
            match &hit.member {
                Some(m) => assert_eq!(parsed["field"], **m),
                None => assert!(parsed.get("field").is_none()),
            }
        }
    }
}
