//! Values written on the wire as one string (dates, timestamps): the serde glue, once, for
//! `#[serde(with = ...)]`. A type says how it is written and read ([`Text`]); the functions
//! here (and [`option`], for `null` or a value) do the rest. `domain::date` and
//! [`super::timestamp`] re-export them, so a field names its form: `with = "...::date"`.
//!
//! Enums written as one of a few names ([`Named`]: `Rental`, `SYNC_PROGRESS`) are read by
//! [`deserialize_named`], which takes the name only (serde's derive also takes the map form
//! `{"Rental": null}`), and give their wire name with `as_str`.

use serde::{de, Deserialize, Deserializer, Serializer};
use std::marker::PhantomData;

/// A value whose wire form is one string.
pub trait Text: Sized {
    /// What the string must look like, for error messages ("a date YYYY-MM-DD").
    const EXPECTING: &'static str;

    fn to_text(&self) -> String;

    /// The value a string stands for, or the deserializer's error saying why not.
    fn from_text<E: de::Error>(text: &str) -> Result<Self, E>;
}

pub fn serialize<T: Text, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&value.to_text())
}

pub fn deserialize<'de, T: Text, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_str(TextVisitor(PhantomData))
}

struct TextVisitor<T>(PhantomData<T>);

impl<T: Text> de::Visitor<'_> for TextVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_text(v)
    }
}

/// A run of ASCII digits as a number (the fields of dates and timestamps); `None` if any byte
/// is not a digit.
pub(crate) fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// An enum written on the wire as one of its [`NAMES`](Named::NAMES).
pub trait Named: Copy + 'static {
    /// Every value, in the order of [`NAMES`](Named::NAMES).
    const ALL: &'static [Self];
    /// The wire names, in the order of [`ALL`](Named::ALL).
    const NAMES: &'static [&'static str];

    /// The value a wire name stands for.
    fn from_name(name: &str) -> Option<Self> {
        let i = Self::NAMES.iter().position(|n| *n == name)?;
        Some(Self::ALL[i])
    }
}

/// `named!(Type { Variant => "name", ... })` makes a fieldless enum [`Named`], read by name
/// (`impl Deserialize` through [`deserialize_named`]), with `as_str` for its wire name.
macro_rules! named {
    ($t:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $crate::protocol::text::Named for $t {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            const NAMES: &'static [&'static str] = &[$($name),+];
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::protocol::text::deserialize_named(d)
            }
        }

        impl $t {
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }
        }
    };
}
pub(crate) use named;

/// `impl Deserialize` of a [`Named`] enum: its name, else serde's "unknown variant" error.
pub fn deserialize_named<'de, T: Named, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_str(NamedVisitor(PhantomData))
}

struct NamedVisitor<T>(PhantomData<T>);

impl<T: Named> de::Visitor<'_> for NamedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a variant name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_name(v).ok_or_else(|| E::unknown_variant(v, T::NAMES))
    }
}

/// `null` or a value.
pub mod option {
    use super::*;

    struct Present<T>(T);

    impl<'de, T: Text> Deserialize<'de> for Present<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::deserialize(d).map(Present)
        }
    }

    pub fn serialize<T: Text, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::serialize(value, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Text, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
        Ok(Option::<Present<T>>::deserialize(d)?.map(|Present(value)| value))
    }
}
