//! The header grammar, read with a cursor.

use crate::{Error, Result};

/// External data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcType {
    /// 8-bit signed (`NC_BYTE`).
    Byte,
    /// 8-bit character (`NC_CHAR`).
    Char,
    /// 16-bit signed.
    Short,
    /// 32-bit signed.
    Int,
    /// 32-bit float.
    Float,
    /// 64-bit float.
    Double,
    /// 8-bit unsigned (CDF-5).
    UByte,
    /// 16-bit unsigned (CDF-5).
    UShort,
    /// 32-bit unsigned (CDF-5).
    UInt,
    /// 64-bit signed (CDF-5).
    Int64,
    /// 64-bit unsigned (CDF-5).
    UInt64,
}

impl NcType {
    fn from_code(code: u32, at: usize) -> Result<Self> {
        Ok(match code {
            1 => Self::Byte,
            2 => Self::Char,
            3 => Self::Short,
            4 => Self::Int,
            5 => Self::Float,
            6 => Self::Double,
            7 => Self::UByte,
            8 => Self::UShort,
            9 => Self::UInt,
            10 => Self::Int64,
            11 => Self::UInt64,
            _ => return Err(Error::Corrupt { at, what: format!("unknown type code {code}") }),
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::Byte | Self::Char | Self::UByte => 1,
            Self::Short | Self::UShort => 2,
            Self::Int | Self::Float | Self::UInt => 4,
            Self::Double | Self::Int64 | Self::UInt64 => 8,
        }
    }
}

/// A dimension; the record dimension has `len == numrecs` and `is_record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    /// Name.
    pub name: String,
    /// Length (for the record dimension: the number of records).
    pub len: u64,
    /// Whether this is the unlimited (record) dimension.
    pub is_record: bool,
}

/// Attribute values, decoded from big-endian.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// `NC_CHAR` text.
    Text(String),
    /// Signed integers (byte, short, int, int64).
    Ints(Vec<i64>),
    /// Unsigned integers (ubyte, ushort, uint, uint64).
    UInts(Vec<u64>),
    /// Floats and doubles.
    Floats(Vec<f64>),
}

/// A named attribute with its external type.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// Name.
    pub name: String,
    /// External type.
    pub nc_type: NcType,
    /// Values.
    pub value: AttrValue,
}

/// A variable and where its data is.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// Name.
    pub name: String,
    /// Indices into [`Header::dims`].
    pub dim_ids: Vec<usize>,
    /// Attributes.
    pub attributes: Vec<Attribute>,
    /// External type.
    pub nc_type: NcType,
    /// File offset of the data (of record 0 for record variables).
    pub begin: u64,
    /// Whether the first dimension is the record dimension.
    pub is_record: bool,
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// 1 (classic), 2 (64-bit offset) or 5 (64-bit data).
    pub version: u8,
    /// Number of records.
    pub numrecs: u64,
    /// Dimensions in file order.
    pub dims: Vec<Dimension>,
    /// Global attributes.
    pub attributes: Vec<Attribute>,
    /// Variables in file order.
    pub variables: Vec<Variable>,
}

impl Header {
    /// The shape of `var` (the record dimension has `numrecs` entries).
    pub fn shape(&self, var: &Variable) -> Vec<u64> {
        var.dim_ids.iter().map(|&d| self.dims[d].len).collect()
    }

    /// Bytes of one record of `var` (of the whole variable if it is not a record
    /// variable), without padding; `None` when the size overflows (a hostile header: [`parse`]
    /// refuses those).
    pub fn slab_bytes(&self, var: &Variable) -> Option<u64> {
        let skip = usize::from(var.is_record);
        var.dim_ids[skip..].iter().try_fold(var.nc_type.size() as u64, |acc, &d| acc.checked_mul(self.dims[d].len))
    }

    /// The stride between records: the padded per-record sizes of all record variables,
    /// except that a file with a single record variable is not padded; `None` on overflow.
    pub fn record_size(&self) -> Option<u64> {
        let records: Vec<&Variable> = self.variables.iter().filter(|v| v.is_record).collect();
        match records.as_slice() {
            [only] => self.slab_bytes(only),
            all => {
                all.iter().try_fold(0u64, |acc, v| acc.checked_add(self.slab_bytes(v)?.checked_next_multiple_of(4)?))
            }
        }
    }

    /// Byte range `(offset, length)` of record `record` of `var` (record ignored for
    /// non-record variables); `None` when the offset overflows.
    pub fn range(&self, var: &Variable, record: u64) -> Option<(u64, u64)> {
        let length = self.slab_bytes(var)?;
        if var.is_record {
            Some((var.begin.checked_add(record.checked_mul(self.record_size()?)?)?, length))
        } else {
            Some((var.begin, length))
        }
    }

    /// The byte after the last one the data of `var` occupies; `None` on overflow.
    pub fn data_end(&self, var: &Variable) -> Option<u64> {
        let records = if var.is_record { self.numrecs } else { 1 };
        match records.checked_sub(1) {
            None => Some(var.begin),
            Some(last) => self.range(var, last).and_then(|(offset, length)| offset.checked_add(length)),
        }
    }
}

const NC_DIMENSION: u32 = 0x0A;
const NC_VARIABLE: u32 = 0x0B;
const NC_ATTRIBUTE: u32 = 0x0C;
const STREAMING: u64 = 0xFFFF_FFFF;

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    version: u8,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(Error::Truncated { at: self.at, needed: n });
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    /// NON_NEG / nelems: 4 bytes, 8 in CDF-5.
    fn count(&mut self) -> Result<u64> {
        if self.version == 5 {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }

    /// OFFSET: 4 bytes in CDF-1, 8 otherwise.
    fn offset(&mut self) -> Result<u64> {
        if self.version == 1 {
            self.u32().map(u64::from)
        } else {
            self.u64()
        }
    }

    fn padded(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| Error::Corrupt { at: self.at, what: "length overflows".into() })?;
        let data = self.take(n)?;
        self.take(n.next_multiple_of(4) - n)?;
        Ok(data)
    }

    fn name(&mut self) -> Result<String> {
        let at = self.at;
        let len = self.count()?;
        let bytes = self.padded(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Error::Corrupt { at, what: "name is not UTF-8".into() })
    }

    /// A list header: `ABSENT` (two zeros) or `tag nelems`; returns the element count.
    fn list(&mut self, tag: u32) -> Result<u64> {
        let at = self.at;
        let found = self.u32()?;
        let n = self.count()?;
        match found {
            0 if n == 0 => Ok(0),
            t if t == tag => Ok(n),
            t => Err(Error::Corrupt { at, what: format!("expected list tag {tag:#x}, found {t:#x}") }),
        }
    }

    fn attributes(&mut self) -> Result<Vec<Attribute>> {
        let n = self.list(NC_ATTRIBUTE)?;
        (0..n).map(|_| self.attribute()).collect()
    }

    fn attribute(&mut self) -> Result<Attribute> {
        let name = self.name()?;
        let at = self.at;
        let nc_type = NcType::from_code(self.u32()?, at)?;
        let n = self.count()?;
        let bytes = self.padded(n.saturating_mul(nc_type.size() as u64))?;
        let value = decode_values(nc_type, bytes);
        Ok(Attribute { name, nc_type, value })
    }
}

fn decode_values(nc_type: NcType, bytes: &[u8]) -> AttrValue {
    let words = |n: usize| bytes.chunks_exact(n);
    let be = |c: &[u8]| c.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    match nc_type {
        NcType::Char => {
            let text = String::from_utf8_lossy(bytes);
            AttrValue::Text(text.trim_end_matches('\0').to_owned())
        }
        NcType::Byte => AttrValue::Ints(bytes.iter().map(|&b| i64::from(b as i8)).collect()),
        NcType::Short => AttrValue::Ints(words(2).map(|c| i64::from(be(c) as u16 as i16)).collect()),
        NcType::Int => AttrValue::Ints(words(4).map(|c| i64::from(be(c) as u32 as i32)).collect()),
        NcType::Int64 => AttrValue::Ints(words(8).map(|c| be(c) as i64).collect()),
        NcType::UByte | NcType::UShort | NcType::UInt | NcType::UInt64 => {
            AttrValue::UInts(words(nc_type.size()).map(be).collect())
        }
        NcType::Float => AttrValue::Floats(words(4).map(|c| f64::from(f32::from_bits(be(c) as u32))).collect()),
        NcType::Double => AttrValue::Floats(words(8).map(|c| f64::from_bits(be(c))).collect()),
    }
}

/// Parses the header at the start of `bytes` (the whole header must be there; reading the
/// first 64 KiB or so of a file is usually enough, [`Error::Truncated`] says when not).
///
/// # Errors
/// [`Error::NotNetcdf3`], [`Error::Truncated`], [`Error::Corrupt`].
pub fn parse(bytes: &[u8]) -> Result<Header> {
    let magic: [u8; 4] = bytes.get(..4).and_then(|m| m.try_into().ok()).ok_or(Error::Truncated { at: 0, needed: 4 })?;
    let version = match magic {
        [b'C', b'D', b'F', v @ (1 | 2 | 5)] => v,
        other => return Err(Error::NotNetcdf3(other)),
    };
    let mut cur = Cursor { bytes, at: 4, version };
    let mut numrecs = cur.count()?;
    if version != 5 && numrecs == STREAMING {
        // A file still being written: the record count is unknown; serve none.
        numrecs = 0;
    }
    let ndims = cur.list(NC_DIMENSION)?;
    let mut dims = Vec::new();
    for _ in 0..ndims {
        let name = cur.name()?;
        let len = cur.count()?;
        dims.push(Dimension { name, len: if len == 0 { numrecs } else { len }, is_record: len == 0 });
    }
    let attributes = cur.attributes()?;
    let nvars = cur.list(NC_VARIABLE)?;
    let mut variables = Vec::new();
    for _ in 0..nvars {
        let name = cur.name()?;
        let ndims = cur.count()?;
        let mut dim_ids = Vec::new();
        for _ in 0..ndims {
            let at = cur.at;
            let id = cur.count()?;
            let id = usize::try_from(id).ok().filter(|&i| i < dims.len());
            dim_ids.push(id.ok_or_else(|| Error::Corrupt { at, what: format!("variable {name}: bad dimension id") })?);
        }
        let attributes = cur.attributes()?;
        let at = cur.at;
        let nc_type = NcType::from_code(cur.u32()?, at)?;
        let _vsize = cur.count()?; // recomputed: it saturates for variables over 4 GiB
        let begin = cur.offset()?;
        let is_record = dim_ids.first().is_some_and(|&d| dims[d].is_record);
        if dim_ids.iter().skip(1).any(|&d| dims[d].is_record) {
            return Err(Error::Corrupt { at, what: format!("variable {name}: record dimension not first") });
        }
        variables.push(Variable { name, dim_ids, attributes, nc_type, begin, is_record });
    }
    let header = Header { version, numrecs, dims, attributes, variables };
    // Sizes and offsets come from whoever wrote the file: refuse any that overflow, and data
    // that would start inside the header.
    let header_end = cur.at as u64;
    for var in &header.variables {
        let corrupt = |what: String| Error::Corrupt { at: cur.at, what: format!("variable {}: {what}", var.name) };
        if var.begin < header_end {
            return Err(corrupt(format!("data at byte {} inside the {header_end}-byte header", var.begin)));
        }
        if header.data_end(var).is_none() {
            return Err(corrupt("its size or offset overflows".to_owned()));
        }
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz target (`cargo bolero test -p cloudify-netcdf3 fuzz_header`): any bytes after a
    /// CDF magic give a header or an error, never a panic, and every range of a header that
    /// parses is computable.
    #[test]
    fn fuzz_header() {
        bolero::check!().for_each(|input: &[u8]| {
            let version = [1u8, 2, 5][usize::from(input.first().copied().unwrap_or(0)) % 3];
            let mut bytes = vec![b'C', b'D', b'F', version];
            bytes.extend_from_slice(input.get(1..).unwrap_or_default());
            if let Ok(header) = parse(&bytes) {
                for var in &header.variables {
                    assert_eq!(header.shape(var).len(), var.dim_ids.len());
                    assert!(header.data_end(var).is_some(), "parse checks every range");
                }
            }
        });
    }
}
