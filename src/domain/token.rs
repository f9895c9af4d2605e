//! Bearer tokens: minting and hashing. Only the SHA-256 of a token is ever stored.

use sha2::{Digest, Sha256};

/// Prefix of agent tokens, so secret scanners can recognise a leaked one.
pub const AGENT_TOKEN_PREFIX: &str = "nxa_";

/// Prefix of admin API tokens: a separate credential, recognisable apart from agent tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "nxk_";

/// Random bytes in a minted token (256 bits, above the 190-bit floor).
const TOKEN_BYTES: usize = 32;

/// A freshly minted token. The plaintext exists only in this value, to be shown once.
pub struct MintedToken {
    pub plaintext: String,
    pub hash: TokenHash,
}

impl MintedToken {
    pub fn new(prefix: &str) -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::fill(&mut bytes);
        let plaintext = format!("{prefix}{}", hex::encode(bytes));
        let hash = TokenHash::of(&plaintext);
        Self { plaintext, hash }
    }
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("plaintext", &"<redacted>")
            .field("hash", &self.hash)
            .finish()
    }
}

/// Lower-case hex SHA-256 of a bearer, as the original system stores it, so its tokens import as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(bearer: &str) -> Self {
        Self(hex::encode(Sha256::digest(bearer.as_bytes())))
    }

    /// A hash as stored in the database (e.g. received in a cache-invalidation notification).
    pub fn from_stored(hash: &str) -> Self {
        Self(hash.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32 bytes of the hash (the in-memory index's key); `None` for a stored value that is
    /// not 64 hex digits.
    pub fn key(&self) -> Option<[u8; 32]> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(&self.0, &mut key).ok()?;
        Some(key)
    }
}

/// SHA-256 of a client's address and `User-Agent`, to which a token issued with
/// `--bind-fingerprint` binds on its first admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(address: std::net::IpAddr, user_agent: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(address.to_string().as_bytes());
        // A separator no address contains, so `(a, bc)` and `(ab, c)` differ.
        hash.update(b"\n");
        hash.update(user_agent.as_bytes());
        Self(hash.finalize().into())
    }

    /// A fingerprint as stored in the database (lower-case hex).
    pub fn from_stored(hex: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// An agent token to issue.
#[derive(Debug, Clone, poem_openapi::Object, serde::Deserialize, serde::Serialize)]
pub struct NewAgentToken {
    /// Label to tell the host's tokens apart.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub name: String,
    /// Bind the token to the address and User-Agent of its first admitted request; later
    /// requests from another client get 401. Off when absent or null; rotation keeps the
    /// option and starts unbound.
    // No `default` in the document: openapi-typescript makes a property with one required.
    #[serde(default)]
    pub bind_fingerprint: Option<bool>,
}

impl NewAgentToken {
    /// Whether the token is to be bound: only when asked for.
    pub fn binds_fingerprint(&self) -> bool {
        self.bind_fingerprint == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_carry_the_prefix_and_256_random_bits() {
        let token = MintedToken::new(AGENT_TOKEN_PREFIX);
        let random = token.plaintext.strip_prefix("nxa_").expect("prefix");
        assert_eq!(random.len(), 64);
        assert!(random.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(
            token.plaintext,
            MintedToken::new(AGENT_TOKEN_PREFIX).plaintext
        );
    }

    #[test]
    fn the_hash_is_lowercase_hex_sha256() {
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_fingerprint_depends_on_address_and_user_agent_and_round_trips_as_hex() {
        let address = "192.0.2.7".parse().unwrap();
        let fingerprint = Fingerprint::of(address, "nexus-agent/1.0");
        assert_ne!(fingerprint, Fingerprint::of(address, "curl/8.0"));
        assert_ne!(
            fingerprint,
            Fingerprint::of("192.0.2.8".parse().unwrap(), "nexus-agent/1.0")
        );
        assert_eq!(
            Fingerprint::from_stored(&fingerprint.to_hex()),
            Some(fingerprint)
        );
    }

    #[test]
    fn debug_output_never_shows_the_plaintext() {
        let token = MintedToken::new(AGENT_TOKEN_PREFIX);
        assert!(!format!("{token:?}").contains(&token.plaintext));
    }
}
