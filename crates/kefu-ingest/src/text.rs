//! Text encodings of office exports: UTF-8 with or without a byte-order mark, UTF-16
//! with one (Excel's "Unicode text"), GBK / GB18030 (Excel on Chinese Windows) and Big5
//! (Taiwan and Hong Kong). Detected from the first bytes — a BOM, valid UTF-8, else
//! `chardetng`'s guess between the legacy encodings — or set by a profile. A file in an
//! encoding kefu does not expect is refused, naming what it looks like, unless a profile
//! names that encoding.

use std::io::{BufRead, BufReader, Read};

use encoding_rs::Encoding;

/// How a source's bytes are text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    Utf8Bom,
    /// UTF-16 little-endian, with its byte-order mark.
    Utf16Le,
    /// UTF-16 big-endian, with its byte-order mark.
    Utf16Be,
    /// GB18030, the superset of GBK and GB2312 (also 4-byte characters).
    Gb18030,
    /// Big5 (traditional Chinese), as encoding_rs reads it (with the HKSCS extensions).
    Big5,
    /// Another encoding, named by a profile (any WHATWG label, e.g. `windows-1252`).
    Other(&'static Encoding),
}

impl TextEncoding {
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Utf8Bom => "utf-8 (bom)",
            TextEncoding::Utf16Le => "utf-16le (bom)",
            TextEncoding::Utf16Be => "utf-16be (bom)",
            TextEncoding::Gb18030 => "gb18030",
            TextEncoding::Big5 => "big5",
            TextEncoding::Other(e) => e.name(),
        }
    }

    /// The encoding a profile names: `auto` is none; `utf-8`, `utf-16le`/`utf-16be`,
    /// `gbk`/`gb18030`/`gb2312`, `big5`, or any other WHATWG label.
    pub fn from_label(label: &str) -> Result<Option<TextEncoding>, String> {
        let lower = label.trim().to_ascii_lowercase();
        Ok(Some(match lower.as_str() {
            "auto" => return Ok(None),
            "utf-8" | "utf8" => TextEncoding::Utf8,
            "utf-16le" | "utf-16" | "unicode" => TextEncoding::Utf16Le,
            "utf-16be" => TextEncoding::Utf16Be,
            "gbk" | "gb18030" | "gb2312" | "cp936" => TextEncoding::Gb18030,
            "big5" | "big5-hkscs" | "cp950" => TextEncoding::Big5,
            other => match Encoding::for_label(other.as_bytes()) {
                Some(e) => TextEncoding::Other(e),
                None => {
                    return Err(format!(
                        "unknown encoding '{label}' (auto, utf-8, utf-16le, utf-16be, gbk, \
                         gb18030, big5, or a WHATWG label such as windows-1252)"
                    ));
                }
            },
        }))
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            TextEncoding::Utf8 | TextEncoding::Utf8Bom => encoding_rs::UTF_8,
            TextEncoding::Utf16Le => encoding_rs::UTF_16LE,
            TextEncoding::Utf16Be => encoding_rs::UTF_16BE,
            TextEncoding::Gb18030 => encoding_rs::GB18030,
            TextEncoding::Big5 => encoding_rs::BIG5,
            TextEncoding::Other(e) => e,
        }
    }
}

/// How many bytes detection looks at.
pub const SNIFF_BYTES: usize = 64 * 1024;
/// How many of them tell GBK, Big5 and the rest apart.
const LEGACY_SAMPLE_BYTES: usize = 4 * 1024;
/// The longest physical line accepted. Exports have lines of a few hundred bytes; a much
/// longer one means the input is not a line-oriented export, and reading on would buffer
/// it whole.
pub const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// A BOM names the encoding; otherwise UTF-8 if the sample is valid UTF-8 (a character cut
/// at the end of the sample is allowed); otherwise GBK/GB18030 or Big5 where the sample
/// reads as only one of them, and `chardetng`'s guess where it reads as both or neither. Anything else it sees (Shift_JIS, EUC-KR, Windows-125x, …) is refused with its
/// name: reading it as Chinese would land garbled text silently.
pub fn detect(sample: &[u8]) -> Result<TextEncoding, String> {
    if sample.starts_with(b"\xEF\xBB\xBF") {
        return Ok(TextEncoding::Utf8Bom);
    }
    if sample.starts_with(b"\xFF\xFE") {
        return Ok(TextEncoding::Utf16Le);
    }
    if sample.starts_with(b"\xFE\xFF") {
        return Ok(TextEncoding::Utf16Be);
    }
    match std::str::from_utf8(sample) {
        Ok(_) => return Ok(TextEncoding::Utf8),
        Err(e) if e.error_len().is_none() => return Ok(TextEncoding::Utf8),
        Err(_) => {}
    }
    if sample.contains(&0) {
        return Err(nul_bytes(sample));
    }
    // A header and a few dozen records tell the legacy encodings apart; more only costs
    // time on every small file of an archive.
    let sample = &sample[..sample.len().min(LEGACY_SAMPLE_BYTES)];
    // Most legacy exports are GBK. Text that reads as GBK, mostly in GB2312's common
    // characters, and not as Big5 is GBK; text that reads only as Big5 is Big5. That tells
    // most files apart at memory speed; the rest (text that reads as both, or as neither,
    // or in other ranges: Shift_JIS and EUC-JP read as GBK too) is left to the detector.
    let valid = |e: &'static Encoding| {
        // Decoded as a stream that goes on: a character cut at the end is no error.
        let mut decoder = e.new_decoder_without_bom_handling();
        let room = decoder
            .max_utf8_buffer_length_without_replacement(sample.len())
            .unwrap_or(usize::MAX >> 1);
        let mut text = String::with_capacity(room);
        let (result, _) = decoder.decode_to_string_without_replacement(sample, &mut text, false);
        result == encoding_rs::DecoderResult::InputEmpty
    };
    match (valid(encoding_rs::GB18030), valid(encoding_rs::BIG5)) {
        (true, false) if mostly_gb2312(sample) => return Ok(TextEncoding::Gb18030),
        (false, true) => return Ok(TextEncoding::Big5),
        _ => {}
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(sample, sample.len() < LEGACY_SAMPLE_BYTES);
    // No top-level-domain hint: a `cn` hint would read Big5 and Shift_JIS as GBK.
    let guess = detector.guess(None, chardetng::Utf8Detection::Deny);
    if guess == encoding_rs::GBK || guess == encoding_rs::GB18030 {
        Ok(TextEncoding::Gb18030)
    } else if guess == encoding_rs::BIG5 {
        Ok(TextEncoding::Big5)
    } else {
        Err(format!(
            "the text looks like {} (not UTF-8, UTF-16, GBK/GB18030 or Big5): if that is \
             right, name it in a profile (encoding = \"{}\"); otherwise export as UTF-8",
            guess.name(),
            guess.name().to_ascii_lowercase()
        ))
    }
}

/// Whether nearly all of `sample`'s double-byte characters are GB2312's punctuation,
/// symbols and hanzi (lead bytes 0xA1-0xA3, 0xA6-0xA9, 0xB0-0xF7) — not kana (0xA4-0xA5,
/// which Japanese text is full of) nor GBK's rare extensions (Shift_JIS's leads).
fn mostly_gb2312(sample: &[u8]) -> bool {
    let (mut characters, mut elsewhere) = (0usize, 0usize);
    let mut i = 0;
    while i < sample.len() {
        let lead = sample[i];
        if lead < 0x80 {
            i += 1;
            continue;
        }
        characters += 1;
        if !matches!(lead, 0xA1..=0xA3 | 0xA6..=0xA9 | 0xB0..=0xF7) {
            elsewhere += 1;
        }
        // GB18030's four-byte characters have a digit as their second byte.
        i += match sample.get(i + 1) {
            Some(b'0'..=b'9') => 4,
            _ => 2,
        };
    }
    elsewhere * 50 <= characters
}

/// Why a sample with NUL bytes is refused: UTF-16 without its BOM, or binary data.
fn nul_bytes(sample: &[u8]) -> String {
    match utf16_without_bom(sample) {
        Some(label) => format!(
            "the text looks like {label} without a byte-order mark: name it in a profile \
             (encoding = \"{label}\")"
        ),
        None => "binary data (NUL bytes): not a text export".into(),
    }
}

/// `utf-16le` or `utf-16be` when NUL bytes keep to one side of the byte pairs of
/// `sample` (the high bytes of ASCII characters in UTF-16; CJK characters have none),
/// else none.
fn utf16_without_bom(sample: &[u8]) -> Option<&'static str> {
    let pairs = sample.len() / 2;
    if pairs < 8 {
        return None;
    }
    let zeros = |side: usize| sample.chunks_exact(2).filter(|p| p[side] == 0).count();
    let (odd, even) = (zeros(1), zeros(0));
    if odd * 4 >= pairs && even * 100 <= pairs {
        Some("utf-16le")
    } else if even * 4 >= pairs && odd * 100 <= pairs {
        Some("utf-16be")
    } else {
        None
    }
}

/// Wraps `source` so that it yields UTF-8, detecting the encoding unless one is given.
/// UTF-8 passes through unchanged (invalid sequences are caught per record later); other
/// encodings are transcoded (a byte-order mark is dropped).
pub fn utf8_reader<'a>(
    source: impl Read + 'a,
    encoding: Option<TextEncoding>,
) -> std::io::Result<(TextEncoding, Box<dyn Read + 'a>)> {
    // The whole sample, however the source hands out its bytes (a tar member inside gzip
    // gives a few hundred at a time: a sample cut short, or mid-character, was taken for
    // another encoding).
    let mut sample = Vec::with_capacity(SNIFF_BYTES);
    let mut source = source;
    (&mut source)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut sample)?;
    let refuse = |reason: String| std::io::Error::new(std::io::ErrorKind::InvalidData, reason);
    let encoding = match encoding {
        Some(e) => e,
        None => detect(&sample).map_err(refuse)?,
    };
    let utf16 = matches!(encoding, TextEncoding::Utf16Le | TextEncoding::Utf16Be);
    if !utf16 && sample.contains(&0) {
        return Err(refuse(nul_bytes(&sample)));
    }
    let mut buffered =
        BufReader::with_capacity(SNIFF_BYTES, std::io::Cursor::new(sample).chain(source));
    let reader: Box<dyn Read + 'a> = match encoding {
        TextEncoding::Utf8 => Box::new(buffered),
        TextEncoding::Utf8Bom => {
            if buffered.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
                buffered.consume(3);
            }
            Box::new(buffered)
        }
        other => Box::new(Filling(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(other.encoding()))
                .build(buffered),
        )),
    };
    Ok((encoding, reader))
}

/// Reads until the buffer is full or the input ends. The decoder's first read returns only
/// the bytes it sniffed for a BOM: the delimiter, sniffed from the first buffer, would be
/// guessed from a character or two (a GBK or UTF-16 TSV was read as CSV).
struct Filling<R>(R);

impl<R: Read> Read for Filling<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.0.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
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
        assert_eq!(detect(&gbk), Ok(TextEncoding::Gb18030));
        assert_eq!(detect("客户号".as_bytes()), Ok(TextEncoding::Utf8));
        assert_eq!(
            detect(&"客户号".as_bytes()[..4]),
            Ok(TextEncoding::Utf8),
            "cut character"
        );
        assert_eq!(detect(b"\xEF\xBB\xBFa,b"), Ok(TextEncoding::Utf8Bom));
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

    /// A GBK export in a tar.gz was refused as EUC-JP: the gzip reader handed out a few
    /// hundred bytes first, and detection saw only those, cut mid-character. Big5 text of
    /// common words, which also reads as GBK, stays Big5.
    #[test]
    fn gbk_and_big5_that_read_as_both() {
        let mut text = String::from("工单号,地区,类别,状态,受理时间\n");
        for i in 0..60 {
            text.push_str(&format!(
                "T{i:06},shenzhen,账单争议,已结案,2026-09-20 08:{:02}:00\n",
                i % 60
            ));
        }
        let gbk = encoding_rs::GBK.encode(&text).0.into_owned();
        assert_eq!(detect(&gbk), Ok(TextEncoding::Gb18030));
        let generated = include_bytes!("../../../fixtures/encodings/gbk_tickets_head.csv");
        assert_eq!(detect(generated), Ok(TextEncoding::Gb18030));
        // Cut inside a character, and handed out a few bytes at a time (as a tar member
        // in gzip is).
        let odd = (1..generated.len())
            .rev()
            .find(|&n| {
                encoding_rs::GB18030
                    .decode_without_bom_handling_and_without_replacement(&generated[..n])
                    .is_none()
            })
            .unwrap();
        assert_eq!(detect(&generated[..odd]), Ok(TextEncoding::Gb18030));
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(7);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let (encoding, mut reader) = utf8_reader(Trickle(generated), None).unwrap();
        assert_eq!(encoding, TextEncoding::Gb18030);
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("工单号,地区,"), "{text}");
        let big5_text = "客戶編號,地區,類別\nA1,台北,這是一個不好的人了\n".repeat(40);
        let big5 = encoding_rs::BIG5.encode(&big5_text).0.into_owned();
        assert!(
            encoding_rs::GB18030
                .decode_without_bom_handling_and_without_replacement(&big5)
                .is_some(),
            "the Big5 sample reads as GBK too"
        );
        assert_eq!(detect(&big5), Ok(TextEncoding::Big5));
        // Japanese reads as GBK too (kana are in GB2312), but is not taken for it.
        let japanese =
            "お客様番号,地域\nA1,東京,ご請求の金額についてのお問い合わせです\n".repeat(20);
        let euc_jp = encoding_rs::EUC_JP.encode(&japanese).0.into_owned();
        let refused = detect(&euc_jp).unwrap_err();
        assert!(refused.contains("EUC-JP"), "{refused}");
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
