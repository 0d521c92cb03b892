//! Who makes compressed and delta streams: the built-in encoder (feature `encode`), or
//! one the program supplies ([`Encoder`]).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use std::sync::Arc;

use fota_codec::stream::Stream;

/// What an [`Encoder`] returns: the stream, or why it could not be made.
pub type EncodeFuture = Pin<Box<dyn Future<Output = Result<Stream, String>>>>;

/// Makes compressed and delta streams in place of the built-in encoder (feature `encode`):
/// the web app runs the encoder in a separately loaded module, off the page's thread.
/// Called with the base (a delta) or none (the whole image), and the image.
#[derive(Clone)]
pub struct Encoder(Arc<EncodeFn>);

/// What an [`Encoder`] calls: `(base, image)` to the stream.
type EncodeFn = dyn Fn(Option<Vec<u8>>, Vec<u8>) -> EncodeFuture + Send + Sync;

impl Encoder {
    /// An encoder that runs `f(base, image)`.
    pub fn new(
        f: impl Fn(Option<Vec<u8>>, Vec<u8>) -> EncodeFuture + Send + Sync + 'static,
    ) -> Self {
        Encoder(Arc::new(f))
    }
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Encoder(..)")
    }
}

/// The stream of `image` (a delta from `base` when given): by `encoder` when there is
/// one, else by the built-in encoder.
pub(crate) async fn encode(
    encoder: Option<&Encoder>,
    base: Option<&[u8]>,
    image: &[u8],
) -> Result<Stream, String> {
    match encoder {
        Some(e) => (e.0)(base.map(<[u8]>::to_vec), image.to_vec()).await,
        None => builtin(base, image),
    }
}

#[cfg(feature = "encode")]
fn builtin(base: Option<&[u8]>, image: &[u8]) -> Result<Stream, String> {
    use fota_codec::encode::{DEFAULT_OPTIONS, compress, delta};
    let r = match base {
        Some(base) => delta(base, image, &DEFAULT_OPTIONS),
        None => compress(image, &DEFAULT_OPTIONS),
    };
    r.map_err(|e| e.to_string())
}

#[cfg(not(feature = "encode"))]
fn builtin(_base: Option<&[u8]>, _image: &[u8]) -> Result<Stream, String> {
    Err("this build has no encoder".into())
}
