//! Display pictures as untrusted bytes: read the type from the bytes (the file name and the
//! declared content type are ignored), accept only PNG, JPEG, GIF and WebP, bound the
//! dimensions from the header before anything is decoded, and decode under an allocation
//! limit, so a small file that claims to be huge (a decompression bomb) is refused without
//! being inflated. The pixels are then cropped to a square, resized to [`PICTURE_SIZE`] and
//! encoded afresh as PNG: nothing of the original file (metadata, comments, trailing data,
//! other frames of an animation) survives.

use crate::protocol::PICTURE_SIZE;
use image::{imageops::FilterType, ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};
use std::io::Cursor;

/// Largest upload accepted, in bytes.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
/// Largest width or height accepted (read from the header, before decoding).
pub const MAX_SIDE: u32 = 4096;
/// Most memory the decoder may allocate: a 4096 x 4096 picture with 8-bit RGBA channels
/// (64 MiB) plus room for the decoder's own buffers.
const MAX_DECODE_ALLOC: u64 = 96 * 1024 * 1024;

/// Why an upload was refused; each says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PictureError {
    #[error("Choose a picture file: the upload was empty.")]
    Empty,
    #[error("That file is not a PNG, JPEG, GIF or WebP picture.")]
    NotAPicture,
    #[error("{0} pictures are not supported; use PNG, JPEG, GIF or WebP.")]
    Unsupported(String),
    #[error("The picture is {width} x {height} pixels; the most is {MAX_SIDE} x {MAX_SIDE}.")]
    TooBig { width: u32, height: u32 },
    #[error("The picture is too large to decode; use a smaller one.")]
    TooMuchMemory,
    #[error("The picture is damaged and could not be read ({0}).")]
    Damaged(String),
}

/// A picture ready to store: PNG bytes and a version that changes whenever they do.
#[derive(Debug, Clone)]
pub struct Processed {
    pub png: Vec<u8>,
    pub version: String,
}

/// Validates an upload and turns it into a [`PICTURE_SIZE`]-square PNG. CPU-bound: call it
/// off the async threads.
pub fn process(bytes: &[u8]) -> std::result::Result<Processed, PictureError> {
    if bytes.is_empty() {
        return Err(PictureError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| PictureError::NotAPicture)?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP
    ) {
        return Err(PictureError::Unsupported(
            format!("{format:?}").to_uppercase(),
        ));
    }
    let damaged = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => PictureError::TooMuchMemory,
        other => PictureError::Damaged(other.to_string()),
    };
    let reader = || {
        let mut limits = Limits::default();
        limits.max_alloc = Some(MAX_DECODE_ALLOC);
        let mut r = ImageReader::with_format(Cursor::new(bytes), format);
        r.limits(limits);
        r
    };
    // The header alone first, for a precise answer about size.
    let (width, height) = reader().into_dimensions().map_err(damaged)?;
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(PictureError::TooBig { width, height });
    }
    if width == 0 || height == 0 {
        return Err(PictureError::Damaged("it has no pixels".into()));
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    let mut r = ImageReader::with_format(Cursor::new(bytes), format);
    r.limits(limits);
    let decoded = r.decode().map_err(damaged)?;
    let square = decoded
        .resize_to_fill(PICTURE_SIZE, PICTURE_SIZE, FilterType::Lanczos3)
        .into_rgba8();
    let mut png = Vec::new();
    square
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| PictureError::Damaged(e.to_string()))?;
    let version = version_of(&png);
    Ok(Processed { png, version })
}

/// The version of a stored picture: 16 hex digits of its SHA-256.
pub fn version_of(png: &[u8]) -> String {
    Sha256::digest(png)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, Rgba, RgbaImage};

    fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img = RgbaImage::from_fn(w, h, |x, y| {
            Rgba([(x % 256) as u8, (y % 256) as u8, 90, 255])
        });
        let img = if format == ImageFormat::Jpeg {
            DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(img).into_rgb8())
        } else {
            DynamicImage::ImageRgba8(img)
        };
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format)
            .expect("encodes");
        out
    }

    #[test]
    fn every_accepted_format_becomes_a_square_png() {
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Gif,
            ImageFormat::WebP,
        ] {
            let p = process(&encoded(300, 200, format)).expect("accepted");
            assert_eq!(image::guess_format(&p.png).ok(), Some(ImageFormat::Png));
            let out = image::load_from_memory(&p.png).expect("decodes");
            assert_eq!(
                (out.width(), out.height()),
                (PICTURE_SIZE, PICTURE_SIZE),
                "{format:?}"
            );
            assert_eq!(p.version.len(), 16);
        }
    }

    #[test]
    fn the_same_picture_has_the_same_version_and_another_does_not() {
        let a = process(&encoded(50, 50, ImageFormat::Png)).unwrap();
        let b = process(&encoded(50, 50, ImageFormat::Png)).unwrap();
        let c = process(&encoded(51, 50, ImageFormat::Png)).unwrap();
        assert_eq!(a.version, b.version);
        assert_ne!(a.version, c.version);
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(process(b"").unwrap_err(), PictureError::Empty);
        assert_eq!(
            process(b"<svg xmlns='http://www.w3.org/2000/svg'/>").unwrap_err(),
            PictureError::NotAPicture
        );
        let mut bmp = b"BM".to_vec();
        bmp.extend([0u8; 60]);
        assert!(matches!(
            process(&bmp).unwrap_err(),
            PictureError::Unsupported(f) if f == "BMP"
        ));
        let png = encoded(40, 40, ImageFormat::Png);
        assert!(matches!(
            process(&png[..png.len() / 2]).unwrap_err(),
            PictureError::Damaged(_)
        ));
    }
}
