//! Perceptual hashes: two images that look alike (one a re-encoding, a resize or a slight
//! edit of the other) have hashes a few bits apart, whatever their bytes. A generation uses
//! them to refuse an image that repeats another result or an image already on the board.
//!
//! The hash is a 64-bit pHash (each of the lowest frequencies of a DCT of a small grey
//! image against their median), computed by `image_hasher`; it is kept with the asset as 16
//! hex digits.

use image::DynamicImage;
use image_hasher::{HashAlg, HasherConfig};

/// Hashes at most this many bits apart are the same picture. Measured on the built-in
/// provider's paintings (quire-app's `the_builtin_providers_paintings_are_not_near_duplicates_of_each_other`):
/// a resize saved as JPEG moves a hash by 0 to 2 bits; different paintings of one style
/// are 6 bits apart at the closest, most 10 or more.
pub const NEAR_DUPLICATE_BITS: u32 = 4;

/// The image's perceptual hash. A large image is first brought down to 256 pixels a side
/// by averaging (cheap), which changes no bit the 32×32 grey image the hash reads.
pub fn phash(image: &DynamicImage) -> u64 {
    let hasher = HasherConfig::new().hash_size(8, 8).hash_alg(HashAlg::Median).preproc_dct().to_hasher();
    let hash = if image.width().max(image.height()) > 256 {
        hasher.hash_image(&image.thumbnail(256, 256))
    } else {
        hasher.hash_image(image)
    };
    hash.as_bytes().iter().fold(0u64, |h, b| (h << 8) | u64::from(*b))
}

/// The hash as it is kept: 16 lower-case hex digits.
pub fn to_hex(hash: u64) -> String {
    format!("{hash:016x}")
}

/// A kept hash; `None` for anything else.
pub fn from_hex(hex: &str) -> Option<u64> {
    (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok()).flatten()
}

/// How many bits two hashes differ by.
pub fn distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// Whether two hashes are of the same picture.
pub fn near(a: u64, b: u64) -> bool {
    distance(a, b) <= NEAR_DUPLICATE_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(seed: u64, w: u32, h: u32) -> DynamicImage {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        // Blocks of colour, so that a resize keeps the picture.
        let blocks: Vec<[u8; 3]> = (0..64).map(|_| next().to_le_bytes()[..3].try_into().unwrap()).collect();
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb(blocks[((y * 8 / h) * 8 + x * 8 / w) as usize])
        }))
    }

    #[test]
    fn hashes_round_trip_as_hex() {
        for h in [0, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(from_hex(&to_hex(h)), Some(h));
        }
        assert_eq!(from_hex("xyz"), None);
        assert_eq!(from_hex("0123456789abcdeg"), None);
        assert_eq!(distance(0b1011, 0b0110), 3);
    }

    #[test]
    fn a_resized_or_reencoded_image_is_near_and_another_is_not() {
        let a = noise(1, 512, 512);
        let resized = a.resize_exact(300, 300, image::imageops::FilterType::Triangle);
        let mut jpeg = std::io::Cursor::new(Vec::new());
        a.to_rgb8().write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        let reencoded = image::load_from_memory(jpeg.get_ref()).unwrap();
        let h = phash(&a);
        assert!(near(h, phash(&resized)), "{} bits", distance(h, phash(&resized)));
        assert!(near(h, phash(&reencoded)), "{} bits", distance(h, phash(&reencoded)));
        for seed in 2..10 {
            let other = phash(&noise(seed, 512, 512));
            assert!(!near(h, other), "seed {seed}: {} bits", distance(h, other));
        }
    }
}
