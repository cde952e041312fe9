//! Reading a records list answer (`{"items": [{...}, ...], "total": ...}`) one record at a
//! time: [`Items`] finds the next record by scanning only its bytes, so finding and decoding
//! 2,000 records can be spread over many short slices.

use crate::app::api::records::{DraftView, RecordRow};
use std::ops::Range;

/// The records of a list answer, walked one at a time (each is the byte range of one element
/// of `items`); then [`Items::rest`] gives the answer without them.
pub struct Items<'a> {
    json: &'a [u8],
    /// Where the `items` array opens (its `[`).
    open: usize,
    /// Where the next record starts.
    at: usize,
    /// Just after the array's `]`, once reached.
    close: Option<usize>,
    failed: bool,
}

impl<'a> Items<'a> {
    /// Finds the `items` array; `None` when `json` is not an object with one.
    pub fn new(json: &'a [u8]) -> Option<Self> {
        let mut at = skip_ws(json, 0);
        if json.get(at) != Some(&b'{') {
            return None;
        }
        at += 1;
        loop {
            at = skip_ws(json, at);
            if json.get(at) != Some(&b'"') {
                return None;
            }
            let key_end = skip_string(json, at)?;
            let key = &json[at + 1..key_end - 1];
            at = skip_ws(json, key_end);
            if json.get(at) != Some(&b':') {
                return None;
            }
            at = skip_ws(json, at + 1);
            if key == b"items" {
                if json.get(at) != Some(&b'[') {
                    return None;
                }
                let first = skip_ws(json, at + 1);
                let close = (json.get(first) == Some(&b']')).then_some(first + 1);
                return Some(Self {
                    json,
                    open: at,
                    at: first,
                    close,
                    failed: false,
                });
            }
            at = skip_ws(json, skip_value(json, at)?);
            if json.get(at) != Some(&b',') {
                return None;
            }
            at += 1;
        }
    }

    /// The answer with an empty `items`, once every record has been walked; `None` before,
    /// or when the array was malformed.
    pub fn rest(&self) -> Option<Vec<u8>> {
        let close = self.close.filter(|_| !self.failed)?;
        let mut rest = Vec::with_capacity(self.json.len() - (close - self.open) + 2);
        rest.extend_from_slice(&self.json[..self.open]);
        rest.extend_from_slice(b"[]");
        rest.extend_from_slice(&self.json[close..]);
        Some(rest)
    }
}

impl Iterator for Items<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        if self.close.is_some() || self.failed {
            return None;
        }
        let start = self.at;
        let Some(end) = skip_value(self.json, start) else {
            self.failed = true;
            return None;
        };
        let after = skip_ws(self.json, end);
        match self.json.get(after) {
            Some(b',') => self.at = skip_ws(self.json, after + 1),
            Some(b']') => self.close = Some(after + 1),
            _ => {
                self.failed = true;
                return None;
            }
        }
        Some(start..end)
    }
}

fn skip_ws(json: &[u8], mut at: usize) -> usize {
    while matches!(json.get(at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        at += 1;
    }
    at
}

/// The end of the string starting at `at` (after its closing quote).
fn skip_string(json: &[u8], mut at: usize) -> Option<usize> {
    at += 1;
    loop {
        match json.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
}

/// The end of the value starting at `at`.
fn skip_value(json: &[u8], at: usize) -> Option<usize> {
    match json.get(at)? {
        b'"' => skip_string(json, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match json.get(i)? {
                    b'"' => {
                        i = skip_string(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = at;
            while !matches!(
                json.get(i),
                None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            ) {
                i += 1;
            }
            (i > at).then_some(i)
        }
    }
}

/// One record of the list. The record's own fields are read straight into it (`RecordRow`
/// flattens, which buffers every field first and takes about half as long again); the saved
/// draft, when there is one, is read on its own.
pub fn decode_row(json: &[u8]) -> Result<RecordRow, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Draft {
        draft: Option<DraftView>,
    }
    let record = serde_json::from_slice(json)?;
    // A quote inside a string is escaped, so this can only be the key of the row's draft.
    let has_draft = json.windows(8).any(|w| w == b"\"draft\":");
    let draft = if has_draft {
        serde_json::from_slice::<Draft>(json)?.draft
    } else {
        None
    };
    Ok(RecordRow { record, draft })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::api::records::RecordPage;
    use serde_json::{json, Value};

    fn answer(items: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "categories": ["Cranes", "Trucks"],
            "items": items,
            "page": 1,
            "pageSize": 5000,
            "total": 2,
        }))
        .unwrap()
    }

    fn record(n: usize) -> Value {
        let mut r = crate::domain::demo_data::demo_records("org-rio", 2).remove(n);
        r.notes = "a \"quoted\" note, with {braces} and [brackets] \\ ".into();
        serde_json::to_value(r).unwrap()
    }

    #[test]
    fn a_list_is_walked_record_by_record_then_read_without_them() {
        let mut drafted = record(1);
        drafted["draft"] = json!({"changes": {"notes": "x"}, "baseVersion": 1, "reason": null});
        let json = answer(json!([record(0), drafted]));
        let mut items = Items::new(&json).unwrap();
        let ranges: Vec<_> = items.by_ref().collect();
        assert_eq!(ranges.len(), 2);
        for (range, expected) in ranges.into_iter().zip([record(0), drafted]) {
            let flattened: RecordRow = serde_json::from_value(expected).unwrap();
            assert_eq!(decode_row(&json[range]).unwrap(), flattened);
        }
        let page: RecordPage = serde_json::from_slice(&items.rest().unwrap()).unwrap();
        assert_eq!((page.total, page.items.len()), (2, 0));
        assert_eq!(page.categories, ["Cranes", "Trucks"]);
    }

    #[test]
    fn the_rest_is_only_there_once_every_record_was_walked() {
        let json = answer(json!([record(0), record(1)]));
        let mut items = Items::new(&json).unwrap();
        items.next();
        assert!(items.rest().is_none());
        items.next();
        assert!(items.rest().is_some());
    }

    #[test]
    fn an_empty_list_and_spaces_are_understood() {
        let json = b" { \"total\" : 0 , \"x\":[1,{\"a\":\"]\"}], \"items\" : [ ] } ";
        let mut items = Items::new(json).unwrap();
        assert_eq!(items.next(), None);
        assert_eq!(
            serde_json::from_slice::<Value>(&items.rest().unwrap()).unwrap(),
            json!({"total": 0, "items": [], "x": [1, {"a": "]"}]})
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [&b"[]"[..], b"{}", b"{\"items\": 3}", b"", b"{\"a\" 1}"] {
            assert!(
                Items::new(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [
            &b"{\"items\": [1,"[..],
            b"{\"items\": [1 2]}",
            b"{\"items\": [{]}",
        ] {
            let mut items = Items::new(bad).unwrap();
            while items.next().is_some() {}
            assert!(items.rest().is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
