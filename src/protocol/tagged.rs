//! Reads an internally tagged JSON object (`{"t": "msg", ...fields}`, the server's frames)
//! into an enum whose `Deserialize` is serde's default, externally tagged one.
//!
//! Why: serde's derive for an internally tagged enum first buffers the whole object into a
//! generic `Content` tree, then reads the variant from that tree, so every type inside the
//! enum gets a second deserializer. In the islands' WASM that machinery was ~70 KB of code.
//! The server writes the tag first (serde's internally tagged serializer always does), so
//! the client can read the tag, then hand the rest of the same object straight to the
//! variant: no buffer, one deserializer per type. `protocol::ServerFrame` is declared
//! internally tagged everywhere except in the browser builds, which read it through here.

use serde::de::{
    self, value::MapAccessDeserializer, DeserializeSeed, Deserializer, EnumAccess,
    IntoDeserializer, MapAccess, VariantAccess, Visitor,
};
use std::fmt;

/// Parses `text`, an object whose first key is `tag`, into `T` (an externally tagged enum).
pub fn from_str<'de, T: de::Deserialize<'de>>(
    tag: &'static str,
    text: &'de str,
) -> serde_json::Result<T> {
    // From the bytes, as `serde_json::from_slice` reads: server functions decode their
    // answers that way, and one reader type means one deserializer per type in the bundle.
    let mut json = serde_json::Deserializer::from_slice(text.as_bytes());
    let value = T::deserialize(TagFirst {
        tag,
        inner: &mut json,
    })?;
    json.end()?;
    Ok(value)
}

/// A deserializer that presents `{"<tag>": "name", ...rest}` to an enum as the variant
/// `name` holding `rest`; anything but an enum is passed through unchanged.
struct TagFirst<D> {
    tag: &'static str,
    inner: D,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for TagFirst<D> {
    type Error = D::Error;

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_map(EnumFromObject {
            tag: self.tag,
            visitor,
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

struct EnumFromObject<V> {
    tag: &'static str,
    visitor: V,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for EnumFromObject<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object whose first key is \"{}\"", self.tag)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V::Value, A::Error> {
        match map.next_key::<String>()? {
            Some(key) if key == self.tag => {}
            _ => {
                let msg = format!("the first key of the object is not \"{}\"", self.tag);
                return Err(de::Error::custom(msg));
            }
        }
        let name: String = map.next_value()?;
        self.visitor.visit_enum(Variant { name, rest: map })
    }
}

/// The variant named by the tag, and the object's remaining fields.
struct Variant<A> {
    name: String,
    rest: A,
}

impl<'de, A: MapAccess<'de>> EnumAccess<'de> for Variant<A> {
    type Error = A::Error;
    type Variant = Rest<A>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Rest<A>), A::Error> {
        let variant = seed.deserialize(self.name.into_deserializer())?;
        Ok((variant, Rest(self.rest)))
    }
}

struct Rest<A>(A);

impl<'de, A: MapAccess<'de>> VariantAccess<'de> for Rest<A> {
    type Error = A::Error;

    /// A variant without data: any other fields are ignored, as a struct ignores unknown
    /// fields.
    fn unit_variant(mut self) -> Result<(), A::Error> {
        while self
            .0
            .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
            .is_some()
        {}
        Ok(())
    }

    /// `Msg(MessageView)`: the remaining fields are the inner struct's.
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        seed.deserialize(MapAccessDeserializer::new(self.0))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, A::Error> {
        Err(de::Error::custom(
            "a tuple variant cannot be internally tagged",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::from_str;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Inner {
        seq: i64,
        body: String,
    }

    /// Externally tagged, as `ServerFrame` is in the browser builds.
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Frame {
        Ping,
        Msg(Inner),
        Synced {
            conv: i64,
            #[serde(default)]
            note: String,
        },
    }

    #[test]
    fn each_kind_of_variant_is_read_from_a_tag_first_object() {
        assert_eq!(
            from_str::<Frame>("t", r#"{"t":"ping"}"#).unwrap(),
            Frame::Ping
        );
        assert_eq!(
            from_str::<Frame>("t", r#"{"t":"msg","seq":4,"body":"hi"}"#).unwrap(),
            Frame::Msg(Inner {
                seq: 4,
                body: "hi".into()
            })
        );
        assert_eq!(
            from_str::<Frame>("t", r#"{"t":"synced","conv":7}"#).unwrap(),
            Frame::Synced {
                conv: 7,
                note: String::new()
            }
        );
        // Fields in any order after the tag; unknown ones ignored, as for any struct.
        assert_eq!(
            from_str::<Frame>(
                "t",
                r#"{"t":"synced","extra":[1,{"a":2}],"note":"n","conv":1}"#
            )
            .unwrap(),
            Frame::Synced {
                conv: 1,
                note: "n".into()
            }
        );
    }

    #[test]
    fn what_is_not_a_tag_first_object_of_a_known_variant_is_an_error() {
        for bad in [
            r#"{"conv":7,"t":"synced"}"#,          // tag not first
            r#"{"t":"nope"}"#,                     // unknown variant
            r#"{"t":"synced"}"#,                   // missing field
            r#"{"t":"msg","seq":"4","body":"x"}"#, // wrong type
            r#"{"t":"ping"} trailing"#,            // not one value
            r#"["ping"]"#,                         // not an object
            r#"{}"#,
        ] {
            assert!(from_str::<Frame>("t", bad).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn the_servers_frames_read_the_same_through_it() {
        // Natively `ServerFrame` is internally tagged and passes through unchanged; the
        // browser builds' externally tagged reading of the same text is what Playwright
        // exercises with every frame.
        use crate::protocol::ServerFrame;
        let frame = ServerFrame::Synced {
            conv: 3,
            last_seq: 9,
        };
        let text = serde_json::to_string(&frame).unwrap();
        assert!(
            text.starts_with(r#"{"t":"synced""#),
            "the tag comes first: {text}"
        );
        assert_eq!(from_str::<ServerFrame>("t", &text).unwrap(), frame);
    }
}
