//! Reading a fuzz input as "a few control bytes, then a payload".
//!
//! libFuzzer mutates flat bytes. The provider targets want both a *structure* (which
//! configuration, which credential, which extra headers) and a *payload* that stays a
//! recognisable JSON body so that the fixtures seed it. So an input is read front to back:
//! a fixed-size control prefix, a few length-prefixed items, and the rest is the body. A seed
//! is simply `[0, 0, 0, 0] ++ fixture` (see `corpus.sh`), and every mutation of the
//! prefix picks another structure for the same body.
//!
//! [`arbitrary::Unstructured`] provides exactly this when only its front-consuming methods
//! are used (`bytes`, `arbitrary::<u8>`, `take_rest`): a missing byte reads as 0.

use arbitrary::Unstructured;

/// The next byte, 0 once the input is exhausted.
pub fn byte(u: &mut Unstructured<'_>) -> u8 {
    u.arbitrary::<u8>().unwrap_or(0)
}

/// A length byte, then that many bytes (fewer when the input ends first).
pub fn item<'a>(u: &mut Unstructured<'a>) -> &'a [u8] {
    let len = usize::from(byte(u)).min(u.len());
    u.bytes(len).unwrap_or_default()
}

/// Bytes as text, the way a transport would hand them over (invalid UTF-8 replaced).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
