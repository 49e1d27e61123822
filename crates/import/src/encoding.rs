//! The text encoding of an uploaded file. Spreadsheets and CRMs write CSV in UTF-8 (with or
//! without a byte-order mark), in UTF-16 with a byte-order mark ("Unicode text"), or in the
//! system's legacy code page (Excel's plain "CSV" on Windows writes Windows-1252 in the West).
//! [`detect`] says which; [`Decoded`] turns the file into UTF-8 as it streams, so the reader and
//! everything after it only ever see UTF-8.

use std::io::{self, Read, Seek, SeekFrom};

use encoding_rs::{CoderResult, Decoder, Encoding};

/// How a file's bytes are read as text. Only the encodings a user can pick in the wizard
/// ([`TextEncoding::CHOICES`]) parse; the rest of the WHATWG list (ISO-2022-JP, `replacement`,
/// …) is not what a lead export is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextEncoding(&'static Encoding);

impl TextEncoding {
    /// UTF-8, the default.
    pub const UTF_8: TextEncoding = TextEncoding(encoding_rs::UTF_8);

    /// The encodings offered to users, by their WHATWG names.
    pub const CHOICES: [&'static str; 12] = [
        "UTF-8",
        "UTF-16LE",
        "UTF-16BE",
        "windows-1252",
        "ISO-8859-15",
        "windows-1250",
        "ISO-8859-2",
        "windows-1251",
        "windows-1253",
        "windows-1254",
        "windows-1257",
        "macintosh",
    ];

    /// An encoding by name or WHATWG label (`utf-8`, `UTF-16LE`, `windows-1252`, `latin1`,
    /// `iso-8859-1`, `cp1252`…), if it is one of [`Self::CHOICES`].
    #[must_use]
    pub fn from_label(label: &str) -> Option<TextEncoding> {
        let e = Encoding::for_label(label.trim().as_bytes())?;
        Self::CHOICES.contains(&e.name()).then_some(TextEncoding(e))
    }

    /// The WHATWG name: `UTF-8`, `UTF-16LE`, `windows-1252`…
    #[must_use]
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    fn is_utf8(self) -> bool {
        self.0 == encoding_rs::UTF_8
    }
}

/// At most this much of a file that is not UTF-8 is given to the detector (about 16 MB/s): a
/// megabyte of a CSV's non-ASCII pieces holds every accented letter its encoding will show.
const DETECT_BYTES: u64 = 1 << 20;
const CHUNK: usize = 64 * 1024;

/// Says how `input` is encoded, reading it from the start (and leaving it at an unspecified
/// position): a byte-order mark decides (UTF-8, UTF-16LE, UTF-16BE); otherwise a file that is
/// valid UTF-8 throughout is UTF-8; otherwise the legacy encoding chardetng guesses from its
/// bytes (Windows-1252 for Western European text, which ISO-8859-1 files also decode as).
///
/// # Errors
/// Reading or seeking `input` failed.
pub fn detect<R: Read + Seek>(input: &mut R) -> io::Result<TextEncoding> {
    input.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; CHUNK + 4];
    let mut head = 0;
    while head < 3 {
        let n = input.read(&mut buf[head..CHUNK])?;
        if n == 0 {
            break;
        }
        head += n;
    }
    if let Some((e, _)) = Encoding::for_bom(&buf[..head]) {
        return Ok(TextEncoding(e));
    }
    // Pass 1: is it UTF-8 throughout? A sequence cut by a read is carried into the next one.
    let mut len = head;
    let valid = loop {
        let carry = match std::str::from_utf8(&buf[..len]) {
            Ok(_) => 0,
            Err(e) if e.error_len().is_none() => len - e.valid_up_to(),
            Err(_) => break false,
        };
        buf.copy_within(len - carry..len, 0);
        let n = input.read(&mut buf[carry..carry + CHUNK])?;
        if n == 0 {
            break carry == 0;
        }
        len = carry + n;
    };
    if valid {
        return Ok(TextEncoding::UTF_8);
    }
    // Pass 2: which legacy encoding.
    input.seek(SeekFrom::Start(0))?;
    let mut detector = chardetng::EncodingDetector::new();
    let mut fed = 0u64;
    loop {
        let n = input.read(&mut buf[..CHUNK])?;
        // Plain ASCII says nothing about a legacy encoding; skip it rather than spend the budget.
        if n > 0 && buf[..n].is_ascii() {
            continue;
        }
        fed += n as u64;
        let last = n == 0 || fed >= DETECT_BYTES;
        detector.feed(&buf[..n], last);
        if last {
            break;
        }
    }
    let guess = detector.guess(None, false);
    // The detector knows encodings the wizard does not offer; Western text is the safe reading.
    Ok(TextEncoding::offered(guess))
}

impl TextEncoding {
    fn offered(e: &'static Encoding) -> TextEncoding {
        if Self::CHOICES.contains(&e.name()) {
            TextEncoding(e)
        } else {
            TextEncoding(encoding_rs::WINDOWS_1252)
        }
    }
}

/// `inner` read as UTF-8: passed through when it is UTF-8 (the reader then reports invalid bytes
/// itself, with their line), transcoded otherwise, with the byte-order mark removed. Malformed
/// sequences of a legacy encoding become U+FFFD, as every decoder of the WHATWG standard does.
pub struct Decoded<R: Read> {
    inner: R,
    decoder: Option<Decoder>,
    src: Vec<u8>,
    src_pos: usize,
    src_len: usize,
    eof: bool,
    out: Vec<u8>,
    out_pos: usize,
    out_len: usize,
    source_bytes: u64,
}

impl<R: Read> Decoded<R> {
    /// Reads `inner` as `encoding`.
    pub fn new(inner: R, encoding: TextEncoding) -> Decoded<R> {
        let transcode = !encoding.is_utf8();
        Decoded {
            inner,
            decoder: transcode.then(|| encoding.0.new_decoder_with_bom_removal()),
            src: if transcode {
                vec![0; CHUNK]
            } else {
                Vec::new()
            },
            src_pos: 0,
            src_len: 0,
            eof: false,
            out: if transcode {
                vec![0; CHUNK * 3]
            } else {
                Vec::new()
            },
            out_pos: 0,
            out_len: 0,
            source_bytes: 0,
        }
    }

    /// Bytes of the file consumed so far (progress is measured against the file's size).
    pub fn source_bytes(&self) -> u64 {
        self.source_bytes
    }

    /// Decodes the next piece of the file into `out`; `false` at the end.
    fn fill(&mut self) -> io::Result<bool> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(false);
        };
        loop {
            if self.src_pos == self.src_len && !self.eof {
                self.src_len = self.inner.read(&mut self.src)?;
                self.src_pos = 0;
                self.eof = self.src_len == 0;
                self.source_bytes += self.src_len as u64;
            }
            let (result, read, written, _) = decoder.decode_to_utf8(
                &self.src[self.src_pos..self.src_len],
                &mut self.out,
                self.eof,
            );
            self.src_pos += read;
            self.out_pos = 0;
            self.out_len = written;
            if written > 0 {
                return Ok(true);
            }
            if self.eof && result == CoderResult::InputEmpty {
                return Ok(false);
            }
        }
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.decoder.is_none() {
            let n = self.inner.read(buf)?;
            self.source_bytes += n as u64;
            return Ok(n);
        }
        if self.out_pos == self.out_len && !self.fill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.out_len - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn decode(bytes: &[u8], e: TextEncoding) -> String {
        let mut s = String::new();
        Decoded::new(Cursor::new(bytes.to_vec()), e)
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    const TEXT: &str = "first_name;last_name;company\r\nRenée;Müller;Café Français & Fils\r\nJosé;Peña;Ærø ApS\r\n";

    #[test]
    fn byte_order_marks_decide() {
        let mut le = vec![0xFF, 0xFE];
        le.extend(TEXT.encode_utf16().flat_map(u16::to_le_bytes));
        let mut be = vec![0xFE, 0xFF];
        be.extend(TEXT.encode_utf16().flat_map(u16::to_be_bytes));
        let mut utf8 = b"\xEF\xBB\xBF".to_vec();
        utf8.extend_from_slice(TEXT.as_bytes());
        for (bytes, name) in [(le, "UTF-16LE"), (be, "UTF-16BE"), (utf8, "UTF-8")] {
            let e = detect(&mut Cursor::new(&bytes)).unwrap();
            assert_eq!(e.name(), name);
            let text = decode(&bytes, e);
            assert_eq!(text.trim_start_matches('\u{feff}'), TEXT, "{name}");
        }
    }

    #[test]
    fn windows_1252_is_told_from_utf8_and_decoded() {
        let (bytes, _, lossy) = encoding_rs::WINDOWS_1252.encode(TEXT);
        assert!(!lossy);
        let e = detect(&mut Cursor::new(bytes.as_ref())).unwrap();
        assert_eq!(e.name(), "windows-1252");
        assert_eq!(decode(&bytes, e), TEXT);
        assert_eq!(
            detect(&mut Cursor::new(TEXT.as_bytes())).unwrap(),
            TextEncoding::UTF_8
        );
        // A non-UTF-8 byte far into an otherwise ASCII file still counts.
        let mut late = "a,b\r\n".repeat(40_000).into_bytes();
        late.extend_from_slice(&bytes);
        assert_eq!(
            detect(&mut Cursor::new(&late)).unwrap().name(),
            "windows-1252"
        );
    }

    #[test]
    fn a_utf8_sequence_cut_by_a_read_is_still_utf8() {
        // 'é' straddles the 64 KiB read boundary.
        let mut s = "x".repeat(CHUNK - 1);
        s.push_str("é tail");
        assert_eq!(
            detect(&mut Cursor::new(s.as_bytes())).unwrap(),
            TextEncoding::UTF_8
        );
    }

    #[test]
    fn labels_parse_to_offered_encodings_only() {
        assert_eq!(
            TextEncoding::from_label("latin1").map(TextEncoding::name),
            Some("windows-1252")
        );
        assert_eq!(
            TextEncoding::from_label("ISO-8859-1").map(TextEncoding::name),
            Some("windows-1252")
        );
        assert_eq!(
            TextEncoding::from_label(" utf-16le ").map(TextEncoding::name),
            Some("UTF-16LE")
        );
        assert_eq!(
            TextEncoding::from_label("utf8").map(TextEncoding::name),
            Some("UTF-8")
        );
        assert_eq!(TextEncoding::from_label("iso-2022-jp"), None);
        assert_eq!(TextEncoding::from_label("ebcdic"), None);
    }

    #[test]
    fn large_transcoded_input_streams_whole_and_counts_source_bytes() {
        let text = TEXT.repeat(5_000);
        let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
        let cp1252 = TextEncoding::from_label("cp1252").unwrap();
        // Small reads, as a parser refilling a nearly full buffer makes.
        let mut d = Decoded::new(Cursor::new(bytes.to_vec()), cp1252);
        let mut out = Vec::new();
        let mut chunk = [0u8; 7];
        loop {
            let n = d.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(String::from_utf8(out).unwrap(), text);
        let mut all = String::new();
        let mut d2 = Decoded::new(Cursor::new(bytes.to_vec()), cp1252);
        d2.read_to_string(&mut all).unwrap();
        assert_eq!(all, text);
        assert_eq!(d2.source_bytes(), bytes.len() as u64);
    }
}
