//! Text encodings of office exports: UTF-8 with or without a byte-order mark, or GBK /
//! GB18030 (Excel on Chinese Windows). Detected from the first bytes, or set by a profile.

use std::io::{BufRead, BufReader, Read};

/// How a source's bytes are text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    Utf8Bom,
    /// GB18030, the superset of GBK and GB2312.
    Gb18030,
}

impl TextEncoding {
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Utf8Bom => "utf-8 (bom)",
            TextEncoding::Gb18030 => "gb18030",
        }
    }
}

/// How many bytes detection looks at.
pub const SNIFF_BYTES: usize = 64 * 1024;
/// The longest physical line accepted. Exports have lines of a few hundred bytes; a much
/// longer one means the input is not a line-oriented export, and reading on would buffer
/// it whole.
pub const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// BOM → UTF-8; otherwise UTF-8 if the sample is valid UTF-8 (a character cut at the end of
/// the sample is allowed), else GB18030.
pub fn detect(sample: &[u8]) -> TextEncoding {
    if sample.starts_with(b"\xEF\xBB\xBF") {
        return TextEncoding::Utf8Bom;
    }
    match std::str::from_utf8(sample) {
        Ok(_) => TextEncoding::Utf8,
        Err(e) if e.error_len().is_none() => TextEncoding::Utf8,
        Err(_) => TextEncoding::Gb18030,
    }
}

/// Wraps `source` so that it yields UTF-8, detecting the encoding unless one is given.
/// UTF-8 passes through unchanged (invalid sequences are caught per record later);
/// GB18030 is transcoded.
pub fn utf8_reader<'a>(
    source: impl Read + 'a,
    encoding: Option<TextEncoding>,
) -> std::io::Result<(TextEncoding, Box<dyn Read + 'a>)> {
    let mut buffered = BufReader::with_capacity(SNIFF_BYTES, source);
    let sample = buffered.fill_buf()?;
    if sample.contains(&0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "binary data (NUL bytes): not a text export",
        ));
    }
    let encoding = match encoding {
        Some(e) => e,
        None => detect(sample),
    };
    let reader: Box<dyn Read + 'a> = match encoding {
        TextEncoding::Utf8 => Box::new(buffered),
        TextEncoding::Utf8Bom => {
            if buffered.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
                buffered.consume(3);
            }
            Box::new(buffered)
        }
        TextEncoding::Gb18030 => Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(encoding_rs::GB18030))
                .build(buffered),
        ),
    };
    Ok((encoding, reader))
}

/// Counts physical lines of the text passing through, so that a record's line number can
/// be told from its byte offset. (The csv reader's own line count lags by one after a CRLF
/// terminator, and exports are full of CRLF.)
pub struct LineIndex<R> {
    inner: R,
    read: u64,
    /// Offsets of '\n' not yet passed by [`LineIndex::line_at`].
    pending: std::collections::VecDeque<u64>,
    lines_before: u64,
    /// Offset just after the last '\n' seen.
    line_start: u64,
}

impl<R: Read> LineIndex<R> {
    pub fn new(inner: R) -> Self {
        LineIndex {
            inner,
            read: 0,
            pending: std::collections::VecDeque::new(),
            lines_before: 0,
            line_start: 0,
        }
    }

    /// The 1-based line of the record starting at `offset`. Offsets must not decrease
    /// between calls. A record never starts with a line break, so a break at `offset`
    /// itself belongs to the previous record's terminator.
    pub fn line_at(&mut self, offset: u64) -> u64 {
        while self.pending.front().is_some_and(|&n| n <= offset) {
            self.pending.pop_front();
            self.lines_before += 1;
        }
        self.lines_before + 1
    }
}

impl<R: Read> Read for LineIndex<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for i in memchr::memchr_iter(b'\n', &buf[..n]) {
            self.pending.push_back(self.read + i as u64);
            self.line_start = self.read + i as u64 + 1;
        }
        self.read += n as u64;
        if self.read - self.line_start > MAX_LINE_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "line {} is longer than {} MiB: not a line-oriented export",
                    self.lines_before + self.pending.len() as u64 + 1,
                    MAX_LINE_BYTES / (1024 * 1024)
                ),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_and_decodes() {
        let gbk = encoding_rs::GBK.encode("客户号,地区\n").0.into_owned();
        assert_eq!(detect(&gbk), TextEncoding::Gb18030);
        assert_eq!(detect("客户号".as_bytes()), TextEncoding::Utf8);
        assert_eq!(
            detect(&"客户号".as_bytes()[..4]),
            TextEncoding::Utf8,
            "cut character"
        );
        assert_eq!(detect(b"\xEF\xBB\xBFa,b"), TextEncoding::Utf8Bom);
        let (enc, mut r) = utf8_reader(&gbk[..], None).unwrap();
        let mut text = String::new();
        r.read_to_string(&mut text).unwrap();
        assert_eq!(
            (enc, text.as_str()),
            (TextEncoding::Gb18030, "客户号,地区\n")
        );
        let (_, mut r) = utf8_reader(&b"\xEF\xBB\xBFa,b"[..], None).unwrap();
        text.clear();
        r.read_to_string(&mut text).unwrap();
        assert_eq!(text, "a,b");
    }

    #[test]
    fn line_index_counts_lf_and_crlf() {
        let text = b"h1,h2\r\na,\"x\r\ny\"\r\nb,c\r\n";
        let mut idx = LineIndex::new(&text[..]);
        std::io::copy(&mut idx, &mut std::io::sink()).unwrap();
        assert_eq!(idx.line_at(0), 1);
        // The csv reader reports the second record at the '\n' of the first CRLF.
        assert_eq!(idx.line_at(6), 2);
        assert_eq!(idx.line_at(18), 4);
    }
}
