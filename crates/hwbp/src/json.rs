//! The JSON line writer of hits: objects written field by field straight into a byte buffer,
//! with no value tree and no allocation per hit. `hwbp watch --json` writes one line per hit,
//! hundreds of thousands a second, where `serde_json`'s generic serializer spent half of
//! hwbp's CPU (string escaping through its formatter, one call per field).
//!
//! Strings are escaped as `serde_json` escapes them (RFC 8259: `"` and `\` with a backslash,
//! `\b \t \n \f \r` by name, other control characters as `\u00XX` with lowercase hex digits,
//! everything else as is), so its readers and ours see the same text; the tests pin that.

/// Appends `s` as a JSON string, quotes included.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most text needs no escape: one scan to find out, then one copy.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends an unsigned integer in decimal (`itoa`: two digits a step from a table).
pub(crate) fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends a signed integer in decimal.
pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends `"0x..."`: an address as a JSON string, lowercase hex, as `{:#x}` prints it.
pub(crate) fn push_hex(out: &mut Vec<u8>, v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let len = (v.checked_ilog2().unwrap_or(0) / 4 + 1) as usize;
    let start = out.len();
    out.extend_from_slice(b"\"0x0000000000000000\"");
    let mut rest = v;
    for digit in out[start + 3..start + 3 + len].iter_mut().rev() {
        *digit = HEX[(rest & 0xf) as usize];
        rest >>= 4;
    }
    out.truncate(start + 3 + len);
    out.push(b'"');
}

/// Appends a JSON array of `items`, each written by `item`.
pub(crate) fn push_array<T>(
    out: &mut Vec<u8>,
    items: &[T],
    mut item: impl FnMut(&mut Vec<u8>, &T),
) {
    out.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, x);
    }
    out.push(b']');
}

/// Writes one JSON object's fields in order: `{` at creation, `,` between fields, `}` at
/// [`Object::close`].
pub(crate) struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    /// Starts an object.
    pub(crate) fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, first: true }
    }

    /// Continues an object whose `{` and first field are already in `out`: every field
    /// written is preceded by `,`. (Also makes fragments that go after a first field.)
    pub(crate) fn continued(out: &'a mut Vec<u8>) -> Self {
        Object { out, first: false }
    }

    /// Starts field `name` (a plain ASCII key, written as is) and returns the buffer for its
    /// value.
    pub(crate) fn key(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    pub(crate) fn str(&mut self, name: &str, value: &str) {
        push_str(self.key(name), value);
    }

    pub(crate) fn opt_str(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => self.str(name, v),
            None => self.null(name),
        }
    }

    pub(crate) fn u64(&mut self, name: &str, value: u64) {
        push_u64(self.key(name), value);
    }

    pub(crate) fn opt_u64(&mut self, name: &str, value: Option<u64>) {
        match value {
            Some(v) => self.u64(name, v),
            None => self.null(name),
        }
    }

    pub(crate) fn hex(&mut self, name: &str, value: u64) {
        push_hex(self.key(name), value);
    }

    pub(crate) fn opt_hex(&mut self, name: &str, value: Option<u64>) {
        match value {
            Some(v) => self.hex(name, v),
            None => self.null(name),
        }
    }

    pub(crate) fn null(&mut self, name: &str) {
        self.key(name).extend_from_slice(b"null");
    }

    /// Ends the object.
    pub(crate) fn close(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_byte_for_byte_as_serde_json_escapes_them() {
        let mut every_char: String = (0u32..0x300).filter_map(char::from_u32).collect();
        every_char.push_str("\u{2028}\u{fffd}😀 end");
        for s in [
            "",
            "main",
            "a\"b\\c",
            "tab\there\nnew\rline\x08\x0c\x00\x1f\x7f",
            "/tmp/dir with space/ü.c",
            &every_char,
        ] {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn numbers_and_addresses_print_as_serde_json_and_format_do() {
        for v in [0u64, 1, 9, 10, 99, 100, 4_294_967_295, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
            out.clear();
            push_hex(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), format!("\"{v:#x}\""));
        }
        for v in [0i64, -1, 42, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            push_i64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }

    #[test]
    fn an_object_separates_and_closes_its_fields() {
        let mut out = Vec::new();
        let mut o = Object::open(&mut out);
        o.str("a", "x");
        o.opt_u64("b", None);
        o.hex("c", 0);
        o.opt_hex("e", Some(255));
        o.close();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":"x","b":null,"c":"0x0","e":"0xff"}"#
        );
    }
}
