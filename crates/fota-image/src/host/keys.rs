//! Ed25519 keys in files.
//!
//! Private keys are PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), the form OpenSSL writes
//! (`openssl genpkey -algorithm ed25519`) and MCUboot's imgtool reads, so keys move
//! between tools. `keygen` creates the file with mode 0600 and never overwrites one.
//! Public keys are SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----", as
//! `openssl pkey -pubout` writes), or 64 hex digits for a command line.

use std::io::Write;
use std::path::Path;

use ed25519_compact::{KeyPair, Noise, PublicKey as EdPublic, Seed};

use super::Error;
use crate::{Header, KeyId, TrustedKey};

/// A private key, for signing.
pub struct SigningKey(KeyPair);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.id())
    }
}

impl SigningKey {
    /// A new key from the operating system's random number generator.
    #[cfg(feature = "keygen")]
    pub fn generate() -> Result<SigningKey, Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Key {
            path: "(new key)".into(),
            why: format!("the system's random number generator failed: {e}"),
        })?;
        SigningKey::from_seed(seed)
    }

    /// The key of a 32-byte seed (RFC 8032's private key).
    pub fn from_seed(seed: [u8; 32]) -> Result<SigningKey, Error> {
        KeyPair::try_from_seed(Seed::new(seed))
            .map(SigningKey)
            .map_err(|_| Error::Key {
                path: "(seed)".into(),
                why: "an all-zero seed is not a key".into(),
            })
    }

    /// A key from PKCS#8 PEM text; `path` names it in errors.
    pub fn from_pem(text: &str, path: &str) -> Result<SigningKey, Error> {
        KeyPair::from_pem(text.trim())
            .map(SigningKey)
            .map_err(|_| Error::Key {
                path: path.into(),
                why: "not an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)"
                    .into(),
            })
    }

    /// Reads a private key file.
    pub fn read(path: &Path) -> Result<SigningKey, Error> {
        let text = read_text(path)?;
        SigningKey::from_pem(&text, &path.display().to_string())
    }

    /// The private key as PKCS#8 PEM.
    pub fn to_pem(&self) -> String {
        self.0.sk.to_pem()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(*self.0.pk)
    }

    /// The public key's id.
    pub fn id(&self) -> KeyId {
        self.public().id()
    }

    /// The signature of a trailer's signed bytes (deterministic, RFC 8032).
    pub fn sign(&self, header: &Header) -> [u8; 64] {
        *self.0.sk.sign(header.encode(), None::<Noise>)
    }

    /// Writes the private key to a new file readable by its owner only; refuses to
    /// overwrite an existing file.
    pub fn write_new(&self, path: &Path) -> Result<(), Error> {
        write_new(path, self.to_pem().as_bytes(), true)
    }
}

/// A public key, for checking signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Its id.
    pub fn id(&self) -> KeyId {
        KeyId::of(&self.0)
    }

    /// For a [`crate::Policy`].
    pub fn trusted(&self) -> TrustedKey {
        TrustedKey::new(self.0)
    }

    /// SubjectPublicKeyInfo PEM.
    pub fn to_pem(&self) -> String {
        EdPublic::new(self.0).to_pem()
    }

    /// 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        super::hex(&self.0)
    }

    /// A public key from text: public key PEM, 64 hex digits, or a private key PEM (its
    /// public half). `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<PublicKey, Error> {
        let t = text.trim();
        let key = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut k = [0u8; 32];
            for (i, b) in k.iter_mut().enumerate() {
                *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap_or(0);
            }
            Some(k)
        } else if t.contains("BEGIN PRIVATE KEY") {
            KeyPair::from_pem(t).ok().map(|kp| *kp.pk)
        } else {
            EdPublic::from_pem(t).ok().map(|pk| *pk)
        };
        let key = key.ok_or_else(|| Error::Key {
            path: path.into(),
            why: "not an Ed25519 public key (PEM, or 64 hex digits)".into(),
        })?;
        if EdPublic::new(key).validate().is_err() {
            return Err(Error::Key {
                path: path.into(),
                why: "not a valid Ed25519 public key (a weak or malformed point)".into(),
            });
        }
        Ok(PublicKey(key))
    }

    /// A public key from a file, or from the text itself if it is 64 hex digits.
    pub fn read(arg: &str) -> Result<PublicKey, Error> {
        let t = arg.trim();
        if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return PublicKey::parse(t, "(command line)");
        }
        let text = read_text(Path::new(arg))?;
        PublicKey::parse(&text, arg)
    }

    /// Writes the public key PEM to a new file.
    pub fn write_new(&self, path: &Path) -> Result<(), Error> {
        write_new(path, self.to_pem().as_bytes(), false)
    }
}

fn read_text(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        action: "read",
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|_| Error::Key {
        path: path.display().to_string(),
        why: "not a text (PEM) file".into(),
    })
}

fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), Error> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::KeyExists(path.display().to_string())
        } else {
            Error::Io {
                action: "create",
                path: path.display().to_string(),
                why: e.to_string(),
            }
        }
    })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::Io {
            action: "write",
            path: path.display().to_string(),
            why: e.to_string(),
        })
}
