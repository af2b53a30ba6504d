//! Where each Microsoft cloud serves the MDE API and its tokens (MDE_API.md sections 1 and 6):
//! the values `mde.cloud` fills in for `mde.api_base`, `mde.token_url` and `mde.scope`.

/// A Microsoft cloud with its MDE API host, sign-in host and token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudPreset {
    Commercial,
    Gcc,
    GccHigh,
    Dod,
}

/// The three endpoint values a preset fills in; explicit settings override each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    pub api_base: String,
    pub token_url: String,
    pub scope: String,
}

impl CloudPreset {
    /// Parses the settings spelling: `commercial`, `gcc`, `gcc-high`, `dod`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "commercial" => Some(Self::Commercial),
            "gcc" => Some(Self::Gcc),
            "gcc-high" | "gcchigh" => Some(Self::GccHigh),
            "dod" => Some(Self::Dod),
            _ => None,
        }
    }

    /// The API base, token URL for `tenant_id` and scope of this cloud.
    pub fn endpoints(self, tenant_id: &str) -> CloudEndpoints {
        // API hosts: `gov.md` [MS] for GCC/GCC High/DoD; `unisolate-machine.md` (04/2024) [MS]
        // names api.security.microsoft.com the current commercial host.
        // Sign-in hosts: `gov.md` [MS]: GCC signs in commercially, GCC High and DoD at .us.
        // Scopes: commercial uses `https://api.securitycenter.microsoft.com/.default`, the MDE
        // app-registration doc's own sample [MS], whose aud the API is known to accept (a newer
        // Cortex responder reports 403 with any other resource). Microsoft documents no Gov
        // scope (UNCONFIRMED); we follow Cortex XSOAR's production mapping [INT], the
        // WindowsDefenderATP app ID URI per cloud, over single-vendor community variants.
        let (api_base, login, scope) = match self {
            Self::Commercial => (
                "https://api.security.microsoft.com",
                "https://login.microsoftonline.com",
                "https://api.securitycenter.microsoft.com/.default",
            ),
            Self::Gcc => (
                "https://api-gcc.securitycenter.microsoft.us",
                "https://login.microsoftonline.com",
                "https://securitycenter.onmicrosoft.com/windowsatpservice/.default",
            ),
            Self::GccHigh | Self::Dod => (
                "https://api-gov.securitycenter.microsoft.us",
                "https://login.microsoftonline.us",
                "https://securitycenter.onmicrosoft.us/windowsatpservice/.default",
            ),
        };
        CloudEndpoints {
            api_base: api_base.to_owned(),
            token_url: format!("{login}/{tenant_id}/oauth2/v2.0/token"),
            scope: scope.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcc_high_and_dod_sign_in_at_the_us_host_and_gcc_does_not() {
        let high = CloudPreset::parse("gcc-high").unwrap().endpoints("t");
        assert_eq!(high.token_url, "https://login.microsoftonline.us/t/oauth2/v2.0/token");
        assert_eq!(high, CloudPreset::Dod.endpoints("t"));
        let gcc = CloudPreset::Gcc.endpoints("t");
        assert!(gcc.token_url.starts_with("https://login.microsoftonline.com/"));
        assert_eq!(gcc.api_base, "https://api-gcc.securitycenter.microsoft.us");
        assert_eq!(CloudPreset::parse("mars"), None);
    }
}
