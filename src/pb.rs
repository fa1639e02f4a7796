//! Code generated from `proto/` and the encoded descriptor set.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// The `authmux.v1` package, with serde in proto3's JSON form.
pub mod v1 {
    tonic::include_proto!("authmux.v1");
    include!(concat!(env!("OUT_DIR"), "/authmux.v1.serde.rs"));
}

/// Every file of the contract with its imports, as an encoded
/// `FileDescriptorSet` (the `google.api.http` options included).
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/authmux_descriptor.bin"));

/// `google.protobuf.Timestamp`, written in JSON as proto3's JSON mapping
/// writes it: RFC 3339 in UTC with `Z` and 0, 3, 6 or 9 fractional digits
/// (prost-types' own format), for seconds from 0001-01-01 to 9999-12-31.
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl prost::Name for Timestamp {
    const NAME: &'static str = "Timestamp";
    const PACKAGE: &'static str = "google.protobuf";
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range proto3's JSON
/// mapping allows.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

impl From<Timestamp> for prost_types::Timestamp {
    fn from(t: Timestamp) -> Self {
        prost_types::Timestamp {
            seconds: t.seconds,
            nanos: t.nanos,
        }
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !TIMESTAMP_SECONDS.contains(&self.seconds) {
            return Err(serde::ser::Error::custom("timestamp out of range"));
        }
        serializer.collect_str(&prost_types::Timestamp::from(*self))
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let t: prost_types::Timestamp = text.parse().map_err(serde::de::Error::custom)?;
        if !TIMESTAMP_SECONDS.contains(&t.seconds) {
            return Err(serde::de::Error::custom("timestamp out of range"));
        }
        Ok(Timestamp {
            seconds: t.seconds,
            nanos: t.nanos,
        })
    }
}
