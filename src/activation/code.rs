//! The activation code a technician types: 16 digits, shown grouped `4353-4500-1234-5678`.
//! The first 8 digits are the activationId sent to the cloud, the last 8 the SRP password
//! (wire profile §1). The whole code is a secret: it never appears in logs or errors.

use std::fmt;

use crate::secret::Secret;

#[derive(Clone, PartialEq, Eq)]
pub struct ActivationCode {
    digits: Secret<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, displaydoc::Display, thiserror::Error)]
pub enum CodeError {
    /// activation code is empty
    Empty,
    /// activation code has {0} digits; it needs exactly 16 (separators `-` and spaces allowed)
    WrongLength(usize),
    /// activation code may only hold digits, `-` and spaces (found another character at position {0})
    BadCharacter(usize),
}

impl ActivationCode {
    /// Validates a code as typed: digits with optional `-` or space separators.
    pub fn parse(input: &str) -> Result<Self, CodeError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(CodeError::Empty);
        }
        let mut digits = String::with_capacity(16);
        for (position, c) in input.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '-' | ' ' => {}
                _ => return Err(CodeError::BadCharacter(position + 1)),
            }
        }
        if digits.len() != 16 {
            return Err(CodeError::WrongLength(digits.len()));
        }
        Ok(Self {
            digits: Secret::new(digits),
        })
    }

    /// The first 8 digits: the activationId (sent in clear to the cloud, still kept out of logs).
    pub fn activation_id(&self) -> &str {
        &self.digits.expose()[..8]
    }

    /// The last 8 digits: the SRP password.
    pub fn password(&self) -> Secret<String> {
        Secret::new(self.digits.expose()[8..].to_string())
    }
}

impl fmt::Debug for ActivationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActivationCode(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_and_plain_codes_parse() {
        for input in [
            "4353-4500-1234-5678",
            "4353450012345678",
            " 4353 4500 1234 5678 ",
        ] {
            let code = ActivationCode::parse(input).unwrap();
            assert_eq!(code.activation_id(), "43534500");
            assert_eq!(code.password().expose(), "12345678");
        }
    }

    #[test]
    fn malformed_codes_are_named_errors() {
        assert_eq!(ActivationCode::parse(""), Err(CodeError::Empty));
        assert_eq!(
            ActivationCode::parse("4353-4500-1234"),
            Err(CodeError::WrongLength(12))
        );
        assert_eq!(
            ActivationCode::parse("4353-4500-1234-567x"),
            Err(CodeError::BadCharacter(19))
        );
        assert_eq!(
            CodeError::WrongLength(12).to_string(),
            "activation code has 12 digits; it needs exactly 16 (separators `-` and spaces allowed)"
        );
    }

    #[test]
    fn the_code_never_prints() {
        let code = ActivationCode::parse("4353-4500-1234-5678").unwrap();
        let shown = format!("{code:?} {:?}", code.password());
        assert!(
            !shown.contains("4353") && !shown.contains("5678"),
            "{shown}"
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(input in ".{0,64}") {
            let _ = ActivationCode::parse(&input);
        }
    }
}
