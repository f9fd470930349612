//! What an uploaded image must be to be kept, and what is taken out of it first.
//!
//! In order, each step refusing with a reason a person can act on: the size; the type, from
//! the bytes and never the name (PNG, JPEG, WebP, GIF; SVG refused, since it can carry
//! script); the width and height from the header, before anything is decoded (a
//! decompression bomb claims a huge canvas in a small file); a full decode under an
//! allocation limit (a truncated or corrupt file fails here); then the metadata removed
//! without touching the compressed pixels: EXIF (with GPS), XMP, IPTC, comments and text
//! chunks. The EXIF orientation alone is kept (as a new, minimal EXIF block), so a phone
//! photo still stands the right way up.

use std::io::Cursor;

use bytes::{BufMut, Bytes, BytesMut};
use image::{ImageDecoder, ImageFormat, ImageReader, metadata::Orientation};

/// The limits an upload is held to.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Bytes of the file.
    pub max_bytes: usize,
    /// Width × height.
    pub max_pixels: u64,
    /// The longer side.
    pub max_side: u32,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits { max_bytes: 25 * 1024 * 1024, max_pixels: 50_000_000, max_side: 16_384 }
    }
}

/// An image fit to keep: its bytes with the metadata taken out.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub bytes: Bytes,
    pub media_type: &'static str,
    pub width: u32,
    pub height: u32,
    /// What was taken out (`EXIF`, `XMP`, `IPTC`, `comment`, `text`), for the record.
    pub removed: Vec<&'static str>,
    /// Its perceptual hash ([`crate::similar`]).
    pub phash: u64,
}

/// Why an upload was refused. `code` is the API's error code; the message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the file is empty")]
    Empty,
    #[error(
        "the file is {size} bytes; an image may be at most {max} bytes: make it smaller or export it at a lower quality"
    )]
    TooLarge { size: usize, max: usize },
    #[error("SVG images are not accepted (they can carry script): export the drawing as PNG or WebP")]
    Svg,
    #[error("{what} is not an image Quire keeps: upload a PNG, JPEG, WebP or GIF")]
    Unsupported { what: String },
    #[error(
        "the image is {width}×{height} pixels; at most {max_pixels} pixels and {max_side} on a side are accepted: scale it down"
    )]
    TooManyPixels { width: u32, height: u32, max_pixels: u64, max_side: u32 },
    #[error("the {format} file cannot be read ({reason}): it may be cut short or damaged; export it again")]
    Corrupt { format: &'static str, reason: String },
}

impl Rejected {
    /// The API's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Rejected::Empty | Rejected::Corrupt { .. } => "invalid_image",
            Rejected::TooLarge { .. } | Rejected::TooManyPixels { .. } => "too_large",
            Rejected::Svg | Rejected::Unsupported { .. } => "unsupported_media_type",
        }
    }
}

fn name_of(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Gif => "GIF",
        _ => "image",
    }
}

/// What the bytes look like, when they are not an accepted image.
fn describe(bytes: &[u8]) -> String {
    let known: &[(&[u8], &str)] = &[
        (b"%PDF", "a PDF document"),
        (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
        (b"II*\0", "a TIFF image"),
        (b"MM\0*", "a TIFF image"),
        (b"BM", "a BMP image"),
        (b"\0\0\0\x0cjP", "a JPEG 2000 image"),
    ];
    if let Some((_, what)) = known.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return what.to_string();
    }
    if bytes.len() > 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"avif" | b"avis" => "an AVIF image".into(),
            b"heic" | b"heix" | b"mif1" => "a HEIC image".into(),
            _ => "a video or ISO media file".into(),
        };
    }
    "This file".into()
}

fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
    (text.starts_with('<') && text.contains("<svg")) || text.starts_with("<?xml")
}

/// Checks an upload and takes its metadata out; see the module's description.
pub fn accept(bytes: &[u8], limits: &UploadLimits) -> Result<Accepted, Rejected> {
    if bytes.is_empty() {
        return Err(Rejected::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(Rejected::TooLarge { size: bytes.len(), max: limits.max_bytes });
    }
    if looks_like_svg(bytes) {
        return Err(Rejected::Svg);
    }
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif)) => f,
        Ok(other) => {
            let what = describe(bytes);
            let what = if what == "This file" { format!("A {other:?} image") } else { capitalise(&what) };
            return Err(Rejected::Unsupported { what });
        }
        Err(_) => return Err(Rejected::Unsupported { what: capitalise(&describe(bytes)) }),
    };
    let name = name_of(format);
    let corrupt = |e: image::ImageError| Rejected::Corrupt { format: name, reason: e.to_string() };
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format).into_dimensions().map_err(corrupt)?;
    if u64::from(width) * u64::from(height) > limits.max_pixels || width.max(height) > limits.max_side {
        return Err(Rejected::TooManyPixels {
            width,
            height,
            max_pixels: limits.max_pixels,
            max_side: limits.max_side,
        });
    }
    let (orientation, decoded) = decode(bytes, format, limits).map_err(corrupt)?;
    let phash = crate::similar::phash(&decoded);
    drop(decoded);
    let (bytes, removed) = match format {
        ImageFormat::Jpeg => strip_jpeg(bytes, orientation),
        ImageFormat::Png => strip_png(bytes, orientation),
        ImageFormat::WebP => strip_webp(bytes, orientation),
        _ => strip_gif(bytes, limits),
    }
    .map_err(|reason| Rejected::Corrupt { format: name, reason })?;
    let media_type = match format {
        ImageFormat::Png => "image/png",
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::WebP => "image/webp",
        _ => "image/gif",
    };
    Ok(Accepted { bytes, media_type, width, height, removed, phash })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Decodes the whole image under the limits (its first frame, for an animation), with the
/// orientation its EXIF gives.
pub(crate) fn decode(
    bytes: &[u8],
    format: ImageFormat,
    limits: &UploadLimits,
) -> image::ImageResult<(Orientation, image::DynamicImage)> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    // RGBA at 16 bits per channel, plus the decoder's own buffers.
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(l);
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = image::DynamicImage::from_decoder(decoder)?;
    Ok((orientation, image))
}

/// A TIFF block holding one tag, the orientation (EXIF's 0x0112), as EXIF blocks are laid out.
fn orientation_exif(orientation: Orientation) -> Option<Bytes> {
    let value: u16 = orientation.to_exif().into();
    if value == 1 {
        return None;
    }
    let mut b = BytesMut::with_capacity(26);
    b.put_slice(b"MM\0\x2a");
    b.put_u32(8); // the first IFD
    b.put_u16(1); // one entry
    b.put_u16(0x0112);
    b.put_u16(3); // SHORT
    b.put_u32(1);
    b.put_u16(value);
    b.put_u16(0);
    b.put_u32(0); // no next IFD
    Some(b.freeze())
}

fn strip_jpeg(bytes: &[u8], orientation: Orientation) -> Result<(Bytes, Vec<&'static str>), String> {
    use img_parts::ImageEXIF;
    use img_parts::jpeg::{Jpeg, markers};
    let mut jpeg = Jpeg::from_bytes(Bytes::copy_from_slice(bytes)).map_err(|e| e.to_string())?;
    let mut removed = Vec::new();
    jpeg.segments_mut().retain(|s| {
        let contents = s.contents();
        let what = match s.marker() {
            markers::APP1 if contents.starts_with(b"Exif\0") => Some("EXIF"),
            markers::APP1 if contents.starts_with(b"http://ns.adobe.com/") => Some("XMP"),
            markers::APP13 => Some("IPTC"),
            markers::COM => Some("comment"),
            _ => None,
        };
        if let Some(what) = what
            && !removed.contains(&what)
        {
            removed.push(what);
        }
        what.is_none()
    });
    if let Some(exif) = orientation_exif(orientation) {
        jpeg.set_exif(Some(exif));
    }
    Ok((jpeg.encoder().bytes(), removed))
}

fn strip_png(bytes: &[u8], orientation: Orientation) -> Result<(Bytes, Vec<&'static str>), String> {
    use img_parts::ImageEXIF;
    use img_parts::png::Png;
    let mut png = Png::from_bytes(Bytes::copy_from_slice(bytes)).map_err(|e| e.to_string())?;
    let mut removed = Vec::new();
    for (kind, what) in
        [(*b"eXIf", "EXIF"), (*b"tEXt", "text"), (*b"zTXt", "text"), (*b"iTXt", "text"), (*b"tIME", "text")]
    {
        if png.chunk_by_type(kind).is_some() {
            png.remove_chunks_by_type(kind);
            if !removed.contains(&what) {
                removed.push(what);
            }
        }
    }
    if let Some(exif) = orientation_exif(orientation) {
        png.set_exif(Some(exif));
    }
    Ok((png.encoder().bytes(), removed))
}

/// WebP is a RIFF file: its `EXIF` and `XMP ` chunks go, and the VP8X header's flags for
/// them are cleared (img-parts leaves those flags alone).
fn strip_webp(bytes: &[u8], orientation: Orientation) -> Result<(Bytes, Vec<&'static str>), String> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return Err("not a RIFF WebP file".into());
    }
    let mut chunks: Vec<([u8; 4], &[u8])> = Vec::new();
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let end = at + 8 + size;
        if end > bytes.len() {
            return Err(format!("the chunk {} runs past the end of the file", String::from_utf8_lossy(&id)));
        }
        chunks.push((id, &bytes[at + 8..end]));
        at = end + (size & 1);
    }
    let mut removed = Vec::new();
    let keep_exif = orientation_exif(orientation);
    let mut out = BytesMut::with_capacity(bytes.len());
    out.put_slice(b"RIFF\0\0\0\0WEBP");
    for (id, data) in chunks {
        let data: Bytes = match &id {
            b"EXIF" => {
                removed.push("EXIF");
                match &keep_exif {
                    Some(exif) => exif.clone(),
                    None => continue,
                }
            }
            b"XMP " => {
                removed.push("XMP");
                continue;
            }
            b"VP8X" if !data.is_empty() => {
                let mut d = data.to_vec();
                d[0] &= !0x04; // XMP
                if keep_exif.is_none() {
                    d[0] &= !0x08; // EXIF
                }
                d.into()
            }
            _ => Bytes::copy_from_slice(data),
        };
        out.put_slice(&id);
        out.put_u32_le(data.len() as u32);
        out.put_slice(&data);
        if data.len() & 1 == 1 {
            out.put_u8(0);
        }
    }
    let riff_size = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff_size.to_le_bytes());
    Ok((out.freeze(), removed))
}

/// A GIF is written again frame by frame (its pixels and palettes as they were), without
/// comment, XMP or other application extensions; the loop count is kept.
fn strip_gif(bytes: &[u8], limits: &UploadLimits) -> Result<(Bytes, Vec<&'static str>), String> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    options.set_memory_limit(gif::MemoryLimit::Bytes(
        std::num::NonZeroU64::new(limits.max_pixels.saturating_mul(4)).unwrap(),
    ));
    let mut decoder = options.read_info(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let (width, height) = (decoder.width(), decoder.height());
    let palette = decoder.global_palette().map(<[u8]>::to_vec);
    let mut frames = Vec::new();
    let mut canvas_pixels: u64 = 0;
    while let Some(frame) = decoder.read_next_frame().map_err(|e| e.to_string())? {
        // An animation of many full frames is a bomb of another kind.
        canvas_pixels += u64::from(frame.width) * u64::from(frame.height);
        if canvas_pixels > limits.max_pixels.saturating_mul(4) {
            return Err(format!("its frames hold more than {} pixels in all", limits.max_pixels * 4));
        }
        frames.push(frame.clone());
    }
    let repeat = decoder.repeat();
    let mut removed = Vec::new();
    if bytes.windows(2).any(|w| w == [0x21, 0xfe]) {
        removed.push("comment");
    }
    if bytes.windows(11).any(|w| w == b"XMP DataXMP") {
        removed.push("XMP");
    }
    let mut out = Vec::with_capacity(bytes.len());
    {
        let mut encoder =
            gif::Encoder::new(&mut out, width, height, palette.as_deref().unwrap_or(&[])).map_err(|e| e.to_string())?;
        if frames.len() > 1 {
            encoder.set_repeat(repeat).map_err(|e| e.to_string())?;
        }
        for frame in &frames {
            encoder.write_frame(frame).map_err(|e| e.to_string())?;
        }
    }
    Ok((out.into(), removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    fn photo(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, ((x + y) % 256) as u8]))
    }

    fn encoded(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        match format {
            ImageFormat::WebP | ImageFormat::Png => {
                RgbaImage::from_fn(w, h, |x, y| Rgba([x as u8, y as u8, 90, 255])).write_to(&mut out, format).unwrap()
            }
            _ => photo(w, h).write_to(&mut out, format).unwrap(),
        }
        out.into_inner()
    }

    /// A JPEG with EXIF (GPS in it), XMP, IPTC and a comment after its SOI marker.
    fn jpeg_with_metadata(orientation: u16) -> Vec<u8> {
        let plain = encoded(ImageFormat::Jpeg, 64, 48);
        let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x02".to_vec();
        tiff.extend([0x01, 0x12, 0, 3, 0, 0, 0, 1]);
        tiff.extend(orientation.to_be_bytes());
        tiff.extend([0, 0]);
        tiff.extend([0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0]); // a GPS IFD pointer
        tiff.extend([0, 0, 0, 0]);
        tiff.extend(b"GPS 52.5200 N 13.4050 E");
        let segment = |marker: u8, body: &[u8]| {
            let mut s = vec![0xff, marker];
            s.extend(((body.len() + 2) as u16).to_be_bytes());
            s.extend(body);
            s
        };
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend(&tiff);
        let mut out = plain[..2].to_vec();
        out.extend(segment(0xe1, &exif));
        out.extend(segment(0xe1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>secret</x:xmpmeta>"));
        out.extend(segment(0xed, b"Photoshop 3.0\0IPTC by-line"));
        out.extend(segment(0xfe, b"taken at home"));
        out.extend(&plain[2..]);
        out
    }

    #[test]
    fn each_accepted_type_is_kept_with_its_size() {
        for (format, media_type) in [
            (ImageFormat::Png, "image/png"),
            (ImageFormat::Jpeg, "image/jpeg"),
            (ImageFormat::WebP, "image/webp"),
            (ImageFormat::Gif, "image/gif"),
        ] {
            let bytes = encoded(format, 40, 30);
            let a = accept(&bytes, &UploadLimits::default()).unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!((a.media_type, a.width, a.height), (media_type, 40, 30));
            // What is kept still decodes to the same size.
            let back = image::load_from_memory(&a.bytes).unwrap();
            assert_eq!((back.width(), back.height()), (40, 30));
        }
    }

    #[test]
    fn metadata_is_removed_and_the_orientation_kept() {
        let bytes = jpeg_with_metadata(6);
        assert!(bytes.windows(3).any(|w| w == b"GPS"));
        let a = accept(&bytes, &UploadLimits::default()).unwrap();
        assert_eq!(a.removed, ["EXIF", "XMP", "IPTC", "comment"]);
        for secret in [&b"GPS"[..], b"xmpmeta", b"IPTC", b"taken at home"] {
            assert!(!a.bytes.windows(secret.len()).any(|w| w == secret), "{:?} is still there", secret);
        }
        // The pixels are those of the original (nothing re-encoded), and it still turns.
        let original = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(image::load_from_memory(&a.bytes).unwrap().to_rgb8(), original);
        let mut d = ImageReader::new(Cursor::new(&a.bytes[..])).with_guessed_format().unwrap().into_decoder().unwrap();
        assert_eq!(d.orientation().unwrap(), Orientation::Rotate90);
        // Upright photos keep no EXIF at all.
        let upright = accept(&jpeg_with_metadata(1), &UploadLimits::default()).unwrap();
        assert!(!upright.bytes.windows(4).any(|w| w == b"Exif"));
    }

    #[test]
    fn png_text_and_webp_xmp_are_removed() {
        let png = encoded(ImageFormat::Png, 8, 8);
        // A tEXt chunk after IHDR (8 + 25 bytes in).
        let text = b"Comment\0made on my laptop";
        let mut chunk = (text.len() as u32).to_be_bytes().to_vec();
        chunk.extend(b"tEXt");
        chunk.extend(text);
        let crc = crc32fast::hash(&chunk[4..]);
        chunk.extend(crc.to_be_bytes());
        let mut with = png[..33].to_vec();
        with.extend(&chunk);
        with.extend(&png[33..]);
        let a = accept(&with, &UploadLimits::default()).unwrap();
        assert_eq!(a.removed, ["text"]);
        assert!(!a.bytes.windows(6).any(|w| w == b"laptop"));

        // A WebP made extended (VP8X) with an XMP chunk and its flag.
        let webp = encoded(ImageFormat::WebP, 8, 8);
        let image_chunk = &webp[12..];
        let mut vp8x = vec![0x04u8, 0, 0, 0];
        vp8x.extend([7, 0, 0, 7, 0, 0]);
        let mut body = b"WEBP".to_vec();
        for (id, data) in [(&b"VP8X"[..], &vp8x[..]), (b"XMP ", b"<x:xmpmeta>where</x:xmpmeta>")] {
            body.extend(id);
            body.extend((data.len() as u32).to_le_bytes());
            body.extend(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        body.extend(image_chunk);
        let mut file = b"RIFF".to_vec();
        file.extend((body.len() as u32).to_le_bytes());
        file.extend(body);
        let a = accept(&file, &UploadLimits::default()).unwrap();
        assert_eq!(a.removed, ["XMP"]);
        assert!(!a.bytes.windows(5).any(|w| w == b"where"));
        let vp8x_at = a.bytes.windows(4).position(|w| w == b"VP8X").unwrap();
        assert_eq!(a.bytes[vp8x_at + 8] & 0x04, 0, "the XMP flag is cleared");
        assert_eq!(u32::from_le_bytes(a.bytes[4..8].try_into().unwrap()) as usize, a.bytes.len() - 8);
        assert_eq!(image::load_from_memory(&a.bytes).unwrap().width(), 8);
    }

    #[test]
    fn bad_uploads_are_refused_with_a_reason() {
        let limits = UploadLimits::default();
        assert_eq!(accept(b"", &limits).unwrap_err(), Rejected::Empty);
        let svg = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
        assert_eq!(accept(svg, &limits).unwrap_err(), Rejected::Svg);
        assert_eq!(accept(b"  <svg onload=alert(1)>", &limits).unwrap_err(), Rejected::Svg);
        let pdf = accept(b"%PDF-1.7 ...", &limits).unwrap_err();
        assert_eq!(pdf.to_string(), "A PDF document is not an image Quire keeps: upload a PNG, JPEG, WebP or GIF");
        assert_eq!(pdf.code(), "unsupported_media_type");
        // The type comes from the bytes: a PNG is a PNG whatever it is called.
        let small = UploadLimits { max_bytes: 100, ..limits };
        let png = encoded(ImageFormat::Png, 64, 64);
        assert!(matches!(accept(&png, &small), Err(Rejected::TooLarge { max: 100, .. })));
        // Truncated: the header is there, the pixels are not.
        let jpeg = encoded(ImageFormat::Jpeg, 64, 64);
        let cut = accept(&jpeg[..jpeg.len() / 2], &limits).unwrap_err();
        assert!(matches!(cut, Rejected::Corrupt { format: "JPEG", .. }), "{cut:?}");
        assert_eq!(cut.code(), "invalid_image");
        let png_cut = accept(&png[..png.len() - 30], &limits).unwrap_err();
        assert!(matches!(png_cut, Rejected::Corrupt { format: "PNG", .. }), "{png_cut:?}");
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_it_is_decoded() {
        // A 60,000 × 60,000 PNG header (3.6 gigapixels) over a few bytes of data.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(60_000u32.to_be_bytes());
        ihdr.extend(60_000u32.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        png.extend(13u32.to_be_bytes());
        png.extend(&ihdr);
        png.extend(crc32fast::hash(&ihdr).to_be_bytes());
        let idat = b"IDAT\x78\x9c\x63\x00\x00\x00\x01\x00\x01";
        png.extend(((idat.len() - 4) as u32).to_be_bytes());
        png.extend(idat);
        png.extend(crc32fast::hash(idat).to_be_bytes());
        png.extend(b"\0\0\0\0IEND\xae\x42\x60\x82");
        let e = accept(&png, &UploadLimits::default()).unwrap_err();
        assert!(matches!(e, Rejected::TooManyPixels { width: 60_000, height: 60_000, .. }), "{e:?}");
        assert_eq!(e.code(), "too_large");
        // Within the side limit but past the pixel count.
        let tight = UploadLimits { max_pixels: 1_000, ..UploadLimits::default() };
        let e = accept(&encoded(ImageFormat::Png, 40, 40), &tight).unwrap_err();
        assert!(matches!(e, Rejected::TooManyPixels { width: 40, height: 40, .. }));
    }
}
