//! Secrets in newtypes whose `Debug` never prints them, wiped from memory on drop.

use std::fmt;

use zeroize::Zeroize;

/// A secret string (secret access key, session token, HMAC key, JWT secret).
#[derive(Clone)]
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into().into_boxed_str())
    }

    /// The secret itself; call only where it is used as key material.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**redacted**")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("wJalrXUtnFEMI/K7MDENG");
        assert_eq!(format!("{s:?}"), "**redacted**");
        assert_eq!(format!("{:?}", Some(&s)), "Some(**redacted**)");
    }
}
