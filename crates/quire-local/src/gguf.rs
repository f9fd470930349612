//! Reading a GGUF file's header: its version and its scalar metadata (architecture, name,
//! context length), without loading the model. Arrays (the vocabulary) are skipped.
//!
//! Layout (little-endian): `GGUF`, u32 version, u64 tensor count, u64 metadata count, then
//! each metadata entry as a string key, a u32 type and the value. Strings are a u64 length
//! and bytes.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::Path;

/// The most metadata entries or array items a header may declare (far above any real model).
const MAX_ENTRIES: u64 = 1 << 24;
/// The longest string read.
const MAX_STRING: u64 = 1 << 24;

/// A scalar metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    /// An array: its item count (the items are skipped).
    Array(u64),
}

/// A GGUF file's header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: u32,
    pub tensors: u64,
    pub metadata: BTreeMap<String, Value>,
}

impl Header {
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.metadata.get(key) {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        match self.metadata.get(key) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// `general.architecture` (`llama`, `bert`, `qwen2`, …).
    pub fn architecture(&self) -> Option<&str> {
        self.text("general.architecture")
    }

    /// The context length the model was trained with.
    pub fn context_length(&self) -> Option<i64> {
        self.int(&format!("{}.context_length", self.architecture()?))
    }
}

/// Why a file is not a readable GGUF model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct NotGguf {
    pub path: String,
    pub reason: String,
}

/// Reads the header of the GGUF file at `path`.
pub fn read_header(path: &Path) -> Result<Header, NotGguf> {
    let fail = |reason: String| NotGguf { path: path.display().to_string(), reason };
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    let mut r = Reader(BufReader::new(file));
    let truncated = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            fail("is truncated: its header ends early (download it again)".into())
        } else {
            fail(format!("is not a GGUF model: {e}"))
        }
    };
    let mut magic = [0u8; 4];
    r.0.read_exact(&mut magic).map_err(truncated)?;
    if &magic != b"GGUF" {
        return Err(fail("is not a GGUF model (its first bytes are not 'GGUF')".into()));
    }
    let version = r.u32().map_err(truncated)?;
    if !(2..=3).contains(&version) {
        return Err(fail(format!("is GGUF version {version}; versions 2 and 3 are read")));
    }
    let tensors = r.u64().map_err(truncated)?;
    let count = r.u64().map_err(truncated)?;
    if count > MAX_ENTRIES || tensors > MAX_ENTRIES {
        return Err(fail("is damaged: its header declares an impossible number of entries".into()));
    }
    let mut metadata = BTreeMap::new();
    for _ in 0..count {
        let key = r.string().map_err(truncated)?;
        let kind = r.u32().map_err(truncated)?;
        let value =
            r.value(kind).map_err(truncated)?.ok_or_else(|| fail(format!("has an unknown value type {kind}")))?;
        metadata.insert(key, value);
    }
    Ok(Header { version, tensors, metadata })
}

struct Reader<R>(R);

impl<R: Read> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.0.read_exact(&mut b)?;
        Ok(b)
    }

    fn u32(&mut self) -> std::io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> std::io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn string(&mut self) -> std::io::Result<String> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a string longer than 16 MiB"));
        }
        let mut buf = vec![0u8; len as usize];
        self.0.read_exact(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// A value of GGUF type `kind`; `None` for a type GGUF does not define.
    fn value(&mut self, kind: u32) -> std::io::Result<Option<Value>> {
        Ok(Some(match kind {
            0 => Value::Int(u8::from_le_bytes(self.bytes()?) as i64),
            1 => Value::Int(i8::from_le_bytes(self.bytes()?) as i64),
            2 => Value::Int(u16::from_le_bytes(self.bytes()?) as i64),
            3 => Value::Int(i16::from_le_bytes(self.bytes()?) as i64),
            4 => Value::Int(self.u32()? as i64),
            5 => Value::Int(i32::from_le_bytes(self.bytes()?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.bytes()?) as f64),
            7 => Value::Bool(self.bytes::<1>()?[0] != 0),
            8 => Value::Text(self.string()?),
            9 => {
                let item = self.u32()?;
                let n = self.u64()?;
                if n > MAX_ENTRIES * 4 {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "an array too long"));
                }
                for _ in 0..n {
                    if self.value(item)?.is_none() {
                        return Ok(None);
                    }
                }
                Value::Array(n)
            }
            10 => Value::Int(self.u64()? as i64),
            11 => Value::Int(i64::from_le_bytes(self.bytes()?)),
            12 => Value::Float(f64::from_le_bytes(self.bytes()?)),
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A GGUF header with `entries` (key, type, encoded value).
    pub(crate) fn header(entries: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.extend((entries.len() as u64).to_le_bytes());
        for (k, t, v) in entries {
            out.extend((k.len() as u64).to_le_bytes());
            out.extend(k.as_bytes());
            out.extend(t.to_le_bytes());
            out.extend(v);
        }
        out
    }

    pub(crate) fn string(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend(s.as_bytes());
        v
    }

    #[test]
    fn headers_are_read_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut tokens = 9u32.to_le_bytes().to_vec(); // an array of strings
        tokens.extend(8u32.to_le_bytes());
        tokens.extend(2u64.to_le_bytes());
        tokens.extend(string("a"));
        tokens.extend(string("b"));
        let bytes = header(&[
            ("general.architecture", 8, string("llama")),
            ("llama.context_length", 4, 8192u32.to_le_bytes().to_vec()),
            ("tokenizer.ggml.tokens", 9, tokens[4..].to_vec()),
            ("general.name", 8, string("Tiny")),
        ]);
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, &bytes).unwrap();
        let h = read_header(&path).unwrap();
        assert_eq!(
            (h.architecture(), h.context_length(), h.text("general.name")),
            (Some("llama"), Some(8192), Some("Tiny"))
        );
        assert_eq!(h.metadata["tokenizer.ggml.tokens"], Value::Array(2));

        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(read_header(&path).unwrap_err().reason.contains("truncated"));
        std::fs::write(&path, b"PK\x03\x04 a zip file").unwrap();
        assert!(read_header(&path).unwrap_err().reason.contains("not a GGUF model"));
        let e = read_header(&dir.path().join("missing.gguf")).unwrap_err();
        assert!(e.reason.contains("cannot be read"), "{e}");
    }
}

/// A metadata value to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Put {
    U32(u32),
    F32(f32),
    Bool(bool),
    Text(String),
    Texts(Vec<String>),
    I32s(Vec<i32>),
}

/// A tensor to write: its name, its shape as PyTorch gives it (outermost first) and its
/// values (f32; written as GGML type F32).
pub struct Tensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub data: Vec<f32>,
}

const ALIGNMENT: u64 = 32;

/// Writes a GGUF version 3 file: `metadata`, then `tensors` (dimensions in GGML's order,
/// innermost first; data aligned to 32 bytes).
pub fn write(path: &Path, metadata: &[(&str, Put)], tensors: &[Tensor]) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let string = |w: &mut dyn Write, s: &str| -> std::io::Result<()> {
        w.write_all(&(s.len() as u64).to_le_bytes())?;
        w.write_all(s.as_bytes())
    };
    w.write_all(b"GGUF")?;
    w.write_all(&3u32.to_le_bytes())?;
    w.write_all(&(tensors.len() as u64).to_le_bytes())?;
    w.write_all(&(metadata.len() as u64).to_le_bytes())?;
    for (key, value) in metadata {
        string(&mut w, key)?;
        match value {
            Put::U32(v) => {
                w.write_all(&4u32.to_le_bytes())?;
                w.write_all(&v.to_le_bytes())?;
            }
            Put::F32(v) => {
                w.write_all(&6u32.to_le_bytes())?;
                w.write_all(&v.to_le_bytes())?;
            }
            Put::Bool(v) => {
                w.write_all(&7u32.to_le_bytes())?;
                w.write_all(&[*v as u8])?;
            }
            Put::Text(v) => {
                w.write_all(&8u32.to_le_bytes())?;
                string(&mut w, v)?;
            }
            Put::Texts(items) => {
                w.write_all(&9u32.to_le_bytes())?;
                w.write_all(&8u32.to_le_bytes())?;
                w.write_all(&(items.len() as u64).to_le_bytes())?;
                for item in items {
                    string(&mut w, item)?;
                }
            }
            Put::I32s(items) => {
                w.write_all(&9u32.to_le_bytes())?;
                w.write_all(&5u32.to_le_bytes())?;
                w.write_all(&(items.len() as u64).to_le_bytes())?;
                for item in items {
                    w.write_all(&item.to_le_bytes())?;
                }
            }
        }
    }
    let padded = |n: u64| n.div_ceil(ALIGNMENT) * ALIGNMENT;
    let mut offset = 0u64;
    for t in tensors {
        string(&mut w, &t.name)?;
        w.write_all(&(t.shape.len() as u32).to_le_bytes())?;
        for d in t.shape.iter().rev() {
            w.write_all(&d.to_le_bytes())?;
        }
        w.write_all(&0u32.to_le_bytes())?; // F32
        w.write_all(&offset.to_le_bytes())?;
        offset += padded(t.data.len() as u64 * 4);
    }
    w.flush()?;
    let mut written = w.get_ref().metadata()?.len();
    let zeros = [0u8; ALIGNMENT as usize];
    w.write_all(&zeros[..(padded(written) - written) as usize])?;
    for t in tensors {
        for v in &t.data {
            w.write_all(&v.to_le_bytes())?;
        }
        written = t.data.len() as u64 * 4;
        w.write_all(&zeros[..(padded(written) - written) as usize])?;
    }
    w.flush()
}
