//! Bearer tokens and their roles. Tokens are compared in constant time (no early exit on
//! the first differing byte) and never appear in logs or `Debug` output.

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A regional office: uploads for its own region, sees its own uploads.
    Office,
    /// Queries the warehouse.
    Analyst,
    /// Everything.
    Admin,
}

/// A right an endpoint requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Upload,
    Query,
}

impl Role {
    pub fn may(self, right: Right) -> bool {
        matches!(
            (self, right),
            (Role::Admin, _) | (Role::Office, Right::Upload) | (Role::Analyst, Right::Query)
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Office => "office",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

/// A configured token.
#[derive(Clone)]
pub struct TokenEntry {
    pub name: String,
    secret: String,
    pub role: Role,
    pub region: Option<String>,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("role", &self.role)
            .field("region", &self.region)
            .finish()
    }
}

impl TokenEntry {
    pub fn new(name: String, secret: String, role: Role, region: Option<String>) -> Self {
        TokenEntry {
            name,
            secret,
            role,
            region,
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub region: Option<String>,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that is not configured: 401.
    Unauthenticated,
    /// A known token without the right: 403.
    Forbidden,
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<TokenEntry>);

impl Tokens {
    pub fn new(entries: Vec<TokenEntry>) -> Self {
        Tokens(entries)
    }

    /// The principal of an `Authorization: Bearer <token>` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, Denied> {
        let presented = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(Denied::Unauthenticated)?;
        // Every entry is compared, so the time taken does not say which one matched.
        let mut found = None;
        for entry in &self.0 {
            if constant_time_eq::constant_time_eq(entry.secret.as_bytes(), presented.as_bytes()) {
                found = Some(entry);
            }
        }
        found
            .map(|e| Principal {
                name: e.name.clone(),
                role: e.role,
                region: e.region.clone(),
            })
            .ok_or(Denied::Unauthenticated)
    }

    /// The principal, if it has `right`.
    pub fn authorize(&self, header: Option<&str>, right: Right) -> Result<Principal, Denied> {
        let principal = self.authenticate(header)?;
        if principal.role.may(right) {
            Ok(principal)
        } else {
            Err(Denied::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_tokens() {
        let tokens = Tokens::new(vec![
            TokenEntry::new(
                "bj".into(),
                "office-secret-0001".into(),
                Role::Office,
                Some("beijing".into()),
            ),
            TokenEntry::new(
                "an".into(),
                "analyst-secret-001".into(),
                Role::Analyst,
                None,
            ),
        ]);
        assert_eq!(
            tokens.authorize(None, Right::Query),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            tokens.authorize(Some("Bearer nope"), Right::Query),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            tokens.authorize(Some("analyst-secret-001"), Right::Query),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            tokens.authorize(Some("Bearer office-secret-0001"), Right::Query),
            Err(Denied::Forbidden)
        );
        let p = tokens
            .authorize(Some("Bearer office-secret-0001"), Right::Upload)
            .unwrap();
        assert_eq!(p.region.as_deref(), Some("beijing"));
        assert!(
            tokens
                .authorize(Some("Bearer analyst-secret-001"), Right::Query)
                .is_ok()
        );
        assert!(!format!("{tokens:?}").contains("secret-0001"));
    }
}
