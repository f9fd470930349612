//! Thumbnails: the image decoded (turned upright by its EXIF orientation), scaled so its
//! longer side is at most the size asked (Lanczos3, SIMD through fast_image_resize; never
//! enlarged), and encoded as lossy WebP (libwebp).

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::upload::{UploadLimits, decode};

/// The two sizes Quire makes: for a board's canvas and lists, and for a closer look.
pub const SIZES: [(&str, u32); 2] = [("small", 320), ("large", 1280)];

/// WebP quality (0–100): libwebp's default, where artefacts are hard to see at these sizes.
pub const QUALITY: f32 = 80.0;

/// A thumbnail: WebP bytes and their size in pixels.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Thumbnails of `bytes` (an image [`crate::upload::accept`] took) at each longer side in
/// `sizes`, decoded once.
pub fn thumbnails(bytes: &[u8], sizes: &[u32]) -> Result<Vec<Thumbnail>, String> {
    let format = image::guess_format(bytes).map_err(|e| e.to_string())?;
    let (orientation, mut image) = decode(bytes, format, &UploadLimits::default()).map_err(|e| e.to_string())?;
    image.apply_orientation(orientation);
    let alpha = image.color().has_alpha();
    let (width, height) = (image.width(), image.height());
    let (pixels, pixel_type) = if alpha {
        (image.into_rgba8().into_raw(), PixelType::U8x4)
    } else {
        (image.into_rgb8().into_raw(), PixelType::U8x3)
    };
    let source = Image::from_vec_u8(width, height, pixels, pixel_type).map_err(|e| e.to_string())?;
    let mut resizer = Resizer::new();
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    let mut out = Vec::with_capacity(sizes.len());
    for &long in sizes {
        let scale = (f64::from(long) / f64::from(width.max(height))).min(1.0);
        let tw = ((f64::from(width) * scale).round() as u32).max(1);
        let th = ((f64::from(height) * scale).round() as u32).max(1);
        let target = if (tw, th) == (width, height) {
            None
        } else {
            let mut target = Image::new(tw, th, pixel_type);
            resizer.resize(&source, &mut target, &options).map_err(|e| e.to_string())?;
            Some(target)
        };
        let buffer = target.as_ref().map_or(source.buffer(), |t| t.buffer());
        let encoder =
            if alpha { webp::Encoder::from_rgba(buffer, tw, th) } else { webp::Encoder::from_rgb(buffer, tw, th) };
        let webp = encoder.encode_simple(false, QUALITY).map_err(|e| format!("WebP encoding failed: {e:?}"))?;
        out.push(Thumbnail { bytes: webp.to_vec(), width: tw, height: th });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
    use std::io::Cursor;

    #[test]
    fn thumbnails_keep_the_aspect_and_never_enlarge() {
        let photo = RgbImage::from_fn(1600, 900, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        let mut jpeg = Cursor::new(Vec::new());
        photo.write_to(&mut jpeg, ImageFormat::Jpeg).unwrap();
        let thumbs = thumbnails(jpeg.get_ref(), &[320, 1280, 4000]).unwrap();
        let sizes: Vec<_> = thumbs.iter().map(|t| (t.width, t.height)).collect();
        assert_eq!(sizes, [(320, 180), (1280, 720), (1600, 900)]);
        for t in &thumbs {
            assert_eq!(image::guess_format(&t.bytes).unwrap(), ImageFormat::WebP);
            let back = image::load_from_memory(&t.bytes).unwrap();
            assert_eq!((back.width(), back.height()), (t.width, t.height));
        }
        // Lossy: the small one is a few kilobytes, not a raw bitmap.
        assert!(thumbs[0].bytes.len() < 20_000, "{} bytes", thumbs[0].bytes.len());
    }

    #[test]
    fn transparency_is_kept() {
        let logo = RgbaImage::from_fn(600, 600, |x, _| Rgba([200, 30, 30, if x < 300 { 0 } else { 255 }]));
        let mut png = Cursor::new(Vec::new());
        logo.write_to(&mut png, ImageFormat::Png).unwrap();
        let thumb = &thumbnails(png.get_ref(), &[100]).unwrap()[0];
        let back = image::load_from_memory(&thumb.bytes).unwrap().to_rgba8();
        assert_eq!((back.width(), back.height()), (100, 100));
        assert!(back.get_pixel(10, 50)[3] < 10, "the left half stays transparent");
        assert!(back.get_pixel(90, 50)[3] > 245, "the right half stays opaque");
    }
}
