//! ONNX model files as edgepack reads them: the protobuf messages ([`proto`]), decoding of
//! tensors to `f32`/`i64` ([`tensor`]) and typed node attributes ([`attr`]).

pub mod attr;
pub mod build;
pub mod proto;
pub mod tensor;

pub use prost::Message;

/// Why an ONNX file or message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnnxError {
    /// Not a valid protobuf encoding of the expected message.
    #[error("malformed ONNX {what}: {reason}")]
    Decode {
        /// Which message.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// Valid protobuf, but not something edgepack can use (the message says what).
    #[error("{0}")]
    Unsupported(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = OnnxError> = std::result::Result<T, E>;

/// Decodes a model file's bytes.
pub fn decode_model(bytes: &[u8]) -> Result<proto::ModelProto> {
    proto::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode { what: "model", reason: e.to_string() })
}

/// Decodes a serialized `TensorProto` (the `.pb` files of ONNX test data).
pub fn decode_tensor(bytes: &[u8]) -> Result<proto::TensorProto> {
    proto::TensorProto::decode(bytes).map_err(|e| OnnxError::Decode { what: "tensor", reason: e.to_string() })
}
