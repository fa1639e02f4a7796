//! The protobuf codec of every authmux service: prost's, except that a
//! request that can't be decoded (malformed bytes, nesting past prost's
//! recursion limit) is the caller's error — INVALID_ARGUMENT with our
//! error detail — rather than INTERNAL, and that every request is checked
//! against the contract's rules ([`super::rules`]) before a service sees it.

use bytes::Buf;
use prost::{Message, Name};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::domain::Error;

/// prost's codec with caller-facing decode errors.
#[derive(Debug, Clone, Copy)]
pub struct StrictCodec<T, U>(std::marker::PhantomData<(T, U)>);

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        StrictCodec(std::marker::PhantomData)
    }
}

/// The caller's error for a request that can't be decoded.
pub fn undecodable(e: prost::DecodeError) -> Status {
    super::to_status(Error::invalid(format!(
        "the request message could not be decoded (malformed, or nested too deep): {e}"
    )))
}

/// prost's decoder with caller-facing decode errors and the contract's
/// request rules.
#[derive(Debug)]
pub struct StrictDecoder<U>(ProstDecoder<U>);

impl<U: Message + Name + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        let message = U::decode(bytes.clone()).map_err(undecodable)?;
        super::rules::RULES
            .check_encoded::<U>(bytes)
            .map_err(super::to_status)?;
        Ok(Some(message))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(ProstCodec::<T, U>::default().decoder())
    }
}
