use super::*;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

const CERT: &str = include_str!("../../tests/fixtures/mde/client.crt");
const KEY: &str = include_str!("../../tests/fixtures/mde/client.key");
const URL: &str = "https://login.microsoftonline.com/tenant/oauth2/v2.0/token";

#[test]
fn the_assertion_header_names_the_certificate_by_its_sha256_thumbprint() {
    let jwt = client_assertion("app", URL, CERT, &Secret::new(KEY), AssertionAlg::PS256, 1000).unwrap();
    let header = decode_header(&jwt).unwrap();
    assert_eq!(header.alg, Algorithm::PS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let der = certificate_der(CERT).unwrap();
    assert_eq!(header.x5t_s256, Some(x5t_s256(&der)));
    // 32 bytes of SHA-256 in unpadded base64url.
    assert_eq!(header.x5t_s256.unwrap().len(), 43);
}

#[test]
fn the_assertion_claims_follow_entra_and_verify_against_the_certificate() {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let jwt = client_assertion("app", URL, CERT, &Secret::new(KEY), AssertionAlg::RS256, now).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[URL]);
    validation.set_issuer(&["app"]);
    let key = DecodingKey::from_rsa_pem(CERT.as_bytes()).unwrap();
    let claims = decode::<AssertionClaims>(&jwt, &key, &validation).unwrap().claims;
    assert_eq!((claims.iss.as_str(), claims.sub.as_str()), ("app", "app"));
    assert_eq!(claims.aud, URL);
    assert_eq!((claims.nbf, claims.iat, claims.exp), (now, now, now + 300));
    assert!(uuid::Uuid::parse_str(&claims.jti).is_ok());
}

#[test]
fn a_key_that_is_not_pem_is_a_configuration_error() {
    let err = client_assertion("app", URL, CERT, &Secret::new("nope"), AssertionAlg::PS256, 0).unwrap_err();
    assert!(matches!(err, MdeError::Config(_)));
    assert!(!err.to_string().contains("nope"));
}
