//! Column mappings for alloy's types, which this crate does not own: an
//! address or a 32-byte hash is stored as `0x`-prefixed lower-case hex.
//! Row fields convert through `#[sqlx(try_from = "Hex<_>")]`, and queries
//! bind `Hex(value)`, so no column is read back by hand.

use std::{fmt::LowerHex, str::FromStr};

use alloy_primitives::{Address, B256, Bytes};
use sqlx::{Database, Decode, Encode, Type, encode::IsNull, error::BoxDynError};

/// A value stored as lower-case `0x` hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hex<T>(pub T);

/// A nullable hex column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptHex<T>(pub Option<T>);

fn encode_hex<T: LowerHex>(value: &T) -> String {
    format!("{value:#x}")
}

fn decode_hex<T: FromStr>(text: &str) -> Result<T, BoxDynError> {
    text.parse().map_err(|_| format!("{text:?} is not valid hex of the expected length").into())
}

macro_rules! hex_column {
    ($wrapper:ident) => {
        impl<T, DB: Database> Type<DB> for $wrapper<T>
        where
            String: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as Type<DB>>::compatible(ty)
            }
        }
    };
}
hex_column!(Hex);
hex_column!(OptHex);

impl<'q, T: LowerHex, DB: Database> Encode<'q, DB> for Hex<T>
where
    String: Encode<'q, DB>,
{
    fn encode_by_ref(&self, buf: &mut <DB as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, DB>>::encode(encode_hex(&self.0), buf)
    }
}

impl<'r, T: FromStr, DB: Database> Decode<'r, DB> for Hex<T>
where
    &'r str: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        decode_hex(<&'r str as Decode<'r, DB>>::decode(value)?).map(Self)
    }
}

impl<'q, T: LowerHex, DB: Database> Encode<'q, DB> for OptHex<T>
where
    Option<String>: Encode<'q, DB>,
{
    fn encode_by_ref(&self, buf: &mut <DB as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Option<String> as Encode<'q, DB>>::encode(self.0.as_ref().map(encode_hex), buf)
    }
}

impl<'r, T: FromStr, DB: Database> Decode<'r, DB> for OptHex<T>
where
    Option<&'r str>: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        <Option<&'r str> as Decode<'r, DB>>::decode(value)?.map(decode_hex).transpose().map(Self)
    }
}

macro_rules! unwrap_into {
    ($($ty:ty),*) => {$(
        impl From<Hex<$ty>> for $ty {
            fn from(value: Hex<$ty>) -> Self {
                value.0
            }
        }

        impl From<OptHex<$ty>> for Option<$ty> {
            fn from(value: OptHex<$ty>) -> Self {
                value.0
            }
        }
    )*};
}
unwrap_into!(Address, B256, Bytes);
