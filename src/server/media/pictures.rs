//! Shared photos: what the server makes of a PNG, JPEG, GIF or WebP file, read from its
//! bytes (the name and declared type are not trusted). The size is read from the header
//! first; the pixels are decoded under an allocation limit (a small file that claims to be
//! huge is refused without being inflated), then encoded afresh twice: a copy for viewing
//! at full size and a thumbnail. Nothing of the original file (metadata, comments, other
//! frames) is in either; the original itself is only ever downloaded as an attachment.

use image::{codecs::jpeg::JpegEncoder, DynamicImage, ImageFormat, ImageReader, Limits};
use std::io::{BufRead, Seek};

/// The longest side a thumbnail has.
pub const THUMB_SIDE: u32 = 320;
/// Most pixels a shared picture may have (a 40-megapixel photo passes).
pub const MAX_PIXELS: u64 = 40_000_000;
/// Most memory decoding one picture may take: its pixels as RGBA and the decoder's own.
const MAX_DECODE_ALLOC: u64 = MAX_PIXELS * 4 + 32 * 1024 * 1024;

/// The picture formats shown inline, and their types.
pub fn picture_type(format: ImageFormat) -> Option<&'static str> {
    match format {
        ImageFormat::Png => Some("image/png"),
        ImageFormat::Jpeg => Some("image/jpeg"),
        ImageFormat::Gif => Some("image/gif"),
        ImageFormat::WebP => Some("image/webp"),
        _ => None,
    }
}

/// Why a picture was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PictureError {
    #[error("The picture is {width} x {height} pixels; the most is {} megapixels.", MAX_PIXELS / 1_000_000)]
    TooBig { width: u32, height: u32 },
    #[error("The picture is too large to decode; send a smaller one.")]
    TooMuchMemory,
    #[error("The picture is damaged or cut short and could not be read ({0}).")]
    Damaged(String),
}

/// The copies made of a picture: encoded bytes and their type.
pub struct Derived {
    pub width: u32,
    pub height: u32,
    pub view: (Vec<u8>, &'static str),
    pub thumb: (Vec<u8>, &'static str),
}

fn damaged(e: image::ImageError) -> PictureError {
    match e {
        image::ImageError::Limits(_) => PictureError::TooMuchMemory,
        other => PictureError::Damaged(other.to_string()),
    }
}

/// Decodes the picture `format` from `source` and makes its view copy and thumbnail.
/// CPU-bound and blocking: call it off the async threads.
pub fn derive<R: BufRead + Seek>(
    mut source: impl FnMut() -> std::io::Result<R>,
    format: ImageFormat,
) -> Result<Derived, PictureError> {
    let io = |e: std::io::Error| PictureError::Damaged(e.to_string());
    let limited = |r: R| {
        let mut limits = Limits::default();
        limits.max_alloc = Some(MAX_DECODE_ALLOC);
        let mut reader = ImageReader::with_format(r, format);
        reader.limits(limits);
        reader
    };
    let (width, height) = limited(source().map_err(io)?)
        .into_dimensions()
        .map_err(damaged)?;
    if width == 0 || height == 0 {
        return Err(PictureError::Damaged("it has no pixels".into()));
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(PictureError::TooBig { width, height });
    }
    let decoded = limited(source().map_err(io)?).decode().map_err(damaged)?;
    let encode = |img: &DynamicImage| -> Result<(Vec<u8>, &'static str), PictureError> {
        let mut out = Vec::new();
        let failed = |e: image::ImageError| PictureError::Damaged(e.to_string());
        if format == ImageFormat::Jpeg {
            let rgb = img.to_rgb8();
            JpegEncoder::new_with_quality(&mut out, 88)
                .encode_image(&rgb)
                .map_err(failed)?;
            Ok((out, "image/jpeg"))
        } else {
            img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
                .map_err(failed)?;
            Ok((out, "image/png"))
        }
    };
    let thumb = decoded.thumbnail(THUMB_SIDE, THUMB_SIDE);
    Ok(Derived {
        width,
        height,
        thumb: encode(&thumb)?,
        view: encode(&decoded)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgba, RgbaImage};
    use std::io::Cursor;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbaImage::from_fn(w, h, |x, y| {
            Rgba([(x % 256) as u8, (y % 256) as u8, 9, 255])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgba8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_picture_gets_a_view_copy_and_a_bounded_thumbnail() {
        let bytes = png(900, 300);
        let d = derive(|| Ok(Cursor::new(bytes.as_slice())), ImageFormat::Png).unwrap();
        assert_eq!((d.width, d.height), (900, 300));
        let thumb = image::load_from_memory(&d.thumb.0).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 107));
        let view = image::load_from_memory(&d.view.0).unwrap();
        assert_eq!((view.width(), view.height()), (900, 300));
    }

    #[test]
    fn a_bomb_or_a_cut_picture_is_refused() {
        // A PNG header claiming 100,000 x 100,000 pixels.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let e = derive(|| Ok(Cursor::new(bomb.as_slice())), ImageFormat::Png)
            .err()
            .unwrap();
        assert!(
            matches!(e, PictureError::TooBig { .. } | PictureError::Damaged(_)),
            "{e:?}"
        );
        let whole = png(200, 200);
        let cut = &whole[..whole.len() / 2];
        let e = derive(|| Ok(Cursor::new(cut)), ImageFormat::Png)
            .err()
            .unwrap();
        assert!(matches!(e, PictureError::Damaged(_)), "{e:?}");
    }
}
