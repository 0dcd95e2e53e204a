//! AWS Signature Version 4 (`AWS4-HMAC-SHA256` in the `Authorization` header): the canonical
//! request, the string to sign and the signing key as AWS defines them, a verifier for the
//! server and a signer for our own clients and tests.
//!
//! The canonical URI is the request path as sent (percent-encoded), with `.`/`..` segments
//! and empty segments removed, percent-encoded once more (every byte but the unreserved ones
//! and `/`), as the AWS SDKs compute it for every service but S3. The canonical query string
//! decodes each pair and re-encodes it with the unreserved set, sorted by key, then value.

use ring::hmac;

/// The algorithm this module implements.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Why a request's signature was refused, with the AWS error it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    Missing,
    /// A header that is not a complete SigV4 authorization (`IncompleteSignatureException`).
    #[error("{0}")]
    Incomplete(String),
    /// The access key is not known (`UnrecognizedClientException`).
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// The signature does not match, or the request is outside its time window or scope
    /// (`InvalidSignatureException`).
    #[error("{0}")]
    Invalid(String),
}

impl SigError {
    /// The AWS error code (`x-amzn-ErrorType`).
    pub fn code(&self) -> &'static str {
        match self {
            SigError::Missing => "MissingAuthenticationTokenException",
            SigError::Incomplete(_) => "IncompleteSignatureException",
            SigError::UnknownKey => "UnrecognizedClientException",
            SigError::Invalid(_) => "InvalidSignatureException",
        }
    }

    /// The HTTP status AWS answers with.
    pub fn status(&self) -> u16 {
        match self {
            SigError::Incomplete(_) => 400,
            _ => 403,
        }
    }
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key: String,
    /// The scope's date, `YYYYMMDD`.
    pub date: String,
    /// The scope's region.
    pub region: String,
    /// The scope's service.
    pub service: String,
    /// Signed header names, lowercase, as listed.
    pub signed_headers: Vec<String>,
    /// The signature, hex.
    pub signature: String,
}

impl Authorization {
    /// Parses `AWS4-HMAC-SHA256 Credential=AK/20261204/us-east-1/svc/aws4_request,
    /// SignedHeaders=host;x-amz-date, Signature=hex`.
    pub fn parse(value: &str) -> Result<Authorization, SigError> {
        let rest = value
            .strip_prefix(ALGORITHM)
            .filter(|r| r.starts_with(' '))
            .ok_or_else(|| SigError::Incomplete(format!("Authorization header requires the {ALGORITHM} algorithm")))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (k, v) = part.trim().split_once('=').ok_or_else(|| {
                SigError::Incomplete(format!("Authorization header requires 'key=value' parts, got '{}'", part.trim()))
            })?;
            match k {
                "Credential" => credential = Some(v),
                "SignedHeaders" => signed = Some(v),
                "Signature" => signature = Some(v),
                _ => {}
            }
        }
        fn need<'a>(v: Option<&'a str>, name: &str) -> Result<&'a str, SigError> {
            v.filter(|v| !v.is_empty())
                .ok_or_else(|| SigError::Incomplete(format!("Authorization header requires '{name}' parameter")))
        }
        let credential = need(credential, "Credential")?;
        let signed = need(signed, "SignedHeaders")?;
        let signature = need(signature, "Signature")?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key, date, region, service, terminator] = scope[..] else {
            return Err(SigError::Incomplete(format!(
                "Credential should be 'KEY/YYYYMMDD/region/service/aws4_request', got '{credential}'"
            )));
        };
        if terminator != "aws4_request" {
            return Err(SigError::Invalid(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
            )));
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SigError::Incomplete(format!("Credential date '{date}' is not YYYYMMDD")));
        }
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SigError::Invalid(format!("Signature '{signature}' is not 64 hexadecimal digits")));
        }
        Ok(Authorization {
            access_key: access_key.into(),
            date: date.into(),
            region: region.into(),
            service: service.into(),
            signed_headers: signed.split(';').map(|h| h.to_ascii_lowercase()).collect(),
            signature: signature.to_ascii_lowercase(),
        })
    }

    /// `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }
}

/// What a signature covers: the request as received.
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The path as sent (percent-encoded), without the query.
    pub path: &'a str,
    /// The query string as sent, without `?` (empty when none).
    pub query: &'a str,
    /// Every header: lowercase name, value. A name may repeat.
    pub headers: &'a [(String, String)],
    /// SHA-256 of the body, lowercase hex (or the `x-amz-content-sha256` value it was
    /// checked against).
    pub payload_sha256: &'a str,
}

/// SHA-256, lowercase hex (the payload and canonical-request hashes).
pub use package::blobs::sha256_hex;

/// Lowercase hex of a signature.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Percent-encodes every byte but `A-Z a-z 0-9 - _ . ~` (and `/` when `keep_slash`), as
/// SigV4 and the AWS SDKs encode URI components.
pub fn uri_encode(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical URI: dot and empty segments removed, then encoded (a second time).
pub fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut p = format!("/{}", segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        p.push('/');
    }
    uri_encode(p.as_bytes(), true)
}

/// The canonical query string: pairs decoded, re-encoded, sorted.
pub fn canonical_query(query: &str) -> String {
    let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&decode(k), false), uri_encode(&decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The canonical request over the signed headers (each must be present).
pub fn canonical_request(r: &Request<'_>, signed_headers: &[String]) -> Result<String, SigError> {
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = r
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SigError::Invalid(format!("Signed header '{name}' is not in the request")));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        r.method,
        canonical_uri(r.path),
        canonical_query(r.query),
        headers,
        signed_headers.join(";"),
        r.payload_sha256
    ))
}

/// The string to sign.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// The signing key: HMAC chain of the secret over date, region, service, `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, "aws4_request"] {
        key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes()).as_ref().to_vec();
    }
    hmac::Key::new(hmac::HMAC_SHA256, &key)
}

/// The hex signature of a string to sign.
pub fn signature(key: &hmac::Key, string_to_sign: &str) -> String {
    hex(hmac::sign(key, string_to_sign.as_bytes()).as_ref())
}

/// Checks a request's signature in constant time: `amz_date` is its `X-Amz-Date`.
pub fn verify(r: &Request<'_>, auth: &Authorization, amz_date: &str, secret: &str) -> Result<(), SigError> {
    let canonical = canonical_request(r, &auth.signed_headers)?;
    let sts = string_to_sign(amz_date, &auth.scope(), &canonical);
    let key = signing_key(secret, &auth.date, &auth.region, &auth.service);
    let given: Vec<u8> = (0..auth.signature.len() / 2)
        .map(|i| u8::from_str_radix(&auth.signature[2 * i..2 * i + 2], 16).expect("checked hex"))
        .collect();
    hmac::verify(&key, sts.as_bytes(), &given).map_err(|_| {
        SigError::Invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
             Access Key and signing method. Consult the service documentation for details."
                .into(),
        )
    })
}

/// Signs a request (our clients, tests): the `Authorization` header's value. The request's
/// headers must hold every name in `signed_headers` (`host` and `x-amz-date` at least).
pub fn sign(
    r: &Request<'_>,
    signed_headers: &[String],
    amz_date: &str,
    access_key: &str,
    secret: &str,
    region: &str,
    service: &str,
) -> Result<String, SigError> {
    let date = amz_date.get(..8).ok_or_else(|| SigError::Incomplete(format!("X-Amz-Date '{amz_date}'")))?;
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let canonical = canonical_request(r, signed_headers)?;
    let sig = signature(&signing_key(secret, date, region, service), &string_to_sign(amz_date, &scope, &canonical));
    Ok(format!(
        "{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={}, Signature={sig}",
        signed_headers.join(";")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn headers(h: &[(&str, &str)]) -> Vec<(String, String)> {
        h.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_signing_key_is_the_one_in_awss_documentation() {
        // "Examples of how to derive a signing key for Signature Version 4" (AWS General
        // Reference): secret above, 20120215, us-east-1, iam.
        let key = signing_key(SECRET, "20120215", "us-east-1", "iam");
        // The key itself is not readable from ring; its signature of "" is, and is checked
        // against the documented key's HMAC computed independently (see the next test).
        let documented = hmac::Key::new(
            hmac::HMAC_SHA256,
            &(0..32)
                .map(|i| {
                    u8::from_str_radix(
                        &"f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"[2 * i..2 * i + 2],
                        16,
                    )
                    .unwrap()
                })
                .collect::<Vec<u8>>(),
        );
        assert_eq!(signature(&key, "probe"), signature(&documented, "probe"));
    }

    #[test]
    fn get_vanilla_of_the_aws_test_suite() {
        // aws-sig-v4-test-suite/get-vanilla: GET / with host and x-amz-date.
        let h = headers(&[("host", "example.amazonaws.com"), ("x-amz-date", "20150830T123600Z")]);
        let r = Request { method: "GET", path: "/", query: "", headers: &h, payload_sha256: &sha256_hex(b"") };
        let signed = vec!["host".to_string(), "x-amz-date".to_string()];
        let auth = sign(&r, &signed, "20150830T123600Z", "AKIDEXAMPLE", SECRET, "us-east-1", "service").unwrap();
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        let parsed = Authorization::parse(&auth).unwrap();
        verify(&r, &parsed, "20150830T123600Z", SECRET).unwrap();
        assert!(matches!(verify(&r, &parsed, "20150830T123600Z", "wrong"), Err(SigError::Invalid(_))));
        // Any change to what is signed breaks it.
        let r2 = Request { method: "POST", ..r };
        assert!(verify(&r2, &parsed, "20150830T123600Z", SECRET).is_err());
    }

    #[test]
    fn canonical_uri_and_query_follow_the_sdks() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
        // Encoded bytes are encoded again (every service but S3).
        assert_eq!(canonical_uri("/2020-11-20/tags/arn%3Aaws%3Ax"), "/2020-11-20/tags/arn%253Aaws%253Ax");
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(canonical_query("nextToken=a%2Bb%3D&maxResults=5"), "maxResults=5&nextToken=a%2Bb%3D");
        assert_eq!(canonical_query("flag"), "flag=");
        assert_eq!(canonical_query("k=a b"), "k=a%20b");
    }

    #[test]
    fn malformed_authorization_headers_are_named() {
        for (h, want) in [
            ("Basic abc", "algorithm"),
            ("AWS4-HMAC-SHA256 Credential=A/20200101/r/s/aws4_request, SignedHeaders=host", "Signature"),
            ("AWS4-HMAC-SHA256 Credential=A/2020/r/s/aws4_request, SignedHeaders=host, Signature=00", "YYYYMMDD"),
            ("AWS4-HMAC-SHA256 Credential=A/r/s/aws4_request, SignedHeaders=host, Signature=00", "Credential"),
            ("AWS4-HMAC-SHA256 garbage", "key=value"),
        ] {
            let e = Authorization::parse(h).unwrap_err();
            assert!(e.to_string().contains(want), "{h}: {e}");
        }
        let bad_sig = "AWS4-HMAC-SHA256 Credential=A/20200101/r/s/aws4_request, SignedHeaders=host, Signature=zz";
        assert!(matches!(Authorization::parse(bad_sig), Err(SigError::Invalid(_))));
    }

    #[test]
    fn a_signed_header_missing_from_the_request_is_refused() {
        let h = headers(&[("host", "h")]);
        let r = Request { method: "GET", path: "/", query: "", headers: &h, payload_sha256: "e3" };
        let e = canonical_request(&r, &["host".into(), "x-amz-date".into()]).unwrap_err();
        assert!(e.to_string().contains("x-amz-date"), "{e}");
    }
}
