//! Shape checks for URIs the server sends browsers to: registered redirect URIs and `return_to` paths.
//!
//! Browsers, frameworks and proxies normalise URLs differently (percent-decoding, `.`/`..` segments,
//! `\` read as `/`), so a value that could be read two ways is refused rather than normalised: what we
//! check is then what every reader sees.

/// How many rounds of percent-decoding a value may need (`%252e` is `.` after two); more is refused.
const MAX_DECODE_ROUNDS: usize = 3;

/// `text` percent-decoded until nothing changes. `None` on anything doubtful: a malformed escape, bytes
/// that are not UTF-8, or a value still encoded after [`MAX_DECODE_ROUNDS`] rounds.
pub fn fully_decoded(text: &str) -> Option<String> {
    let mut current = text.to_string();
    for _ in 0..MAX_DECODE_ROUNDS {
        if !current.contains('%') {
            return Some(current);
        }
        current = decode_once(&current)?;
    }
    (!current.contains('%')).then_some(current)
}

fn decode_once(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a decoded path has a `.` or `..` segment, counting `\` as a separator as browsers do.
pub fn has_dot_segment(decoded_path: &str) -> bool {
    decoded_path
        .split(['/', '\\'])
        .any(|segment| segment == "." || segment == "..")
}

/// Why `raw` is not acceptable as a redirect URI's shape, if it is not: a fragment, user information
/// before the host, a backslash, control characters or spaces, or a `.`/`..` path segment (also when
/// percent-encoded, once or more). Scheme and host rules are the caller's.
pub fn redirect_uri_defect(raw: &str) -> Option<&'static str> {
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Some("must not contain spaces or control characters");
    }
    if raw.contains('#') {
        return Some("must not contain a fragment");
    }
    if raw.contains('\\') {
        return Some("must not contain a backslash");
    }
    let Some((scheme, rest)) = raw.split_once(':') else {
        return Some("is not an absolute URI");
    };
    let rest = rest.split('?').next().unwrap_or_default();
    // URL parsers forgive `https:host`, `https:/host` and `https:///user@host` (all read as
    // `https://...`), so the checks below would look at the wrong part: web URIs must be spelt out.
    let web = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    if web
        && !rest
            .strip_prefix("//")
            .is_some_and(|after| !after.is_empty() && !after.starts_with('/'))
    {
        return Some("must start with scheme://host");
    }
    let path = match rest.strip_prefix("//") {
        Some(after) => {
            let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
            if authority.contains('@') {
                return Some("must not contain user information before the host");
            }
            path
        }
        None => rest,
    };
    match fully_decoded(path) {
        None => Some("has a path with malformed or repeated percent-encoding"),
        Some(decoded) if has_dot_segment(&decoded) => {
            Some("must not contain . or .. path segments")
        }
        Some(decoded) if decoded.contains('\\') => Some("must not contain a backslash"),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_repeats_until_stable_and_refuses_doubt() {
        assert_eq!(fully_decoded("/a%2fb").as_deref(), Some("/a/b"));
        assert_eq!(fully_decoded("%252e%252e").as_deref(), Some(".."));
        assert_eq!(fully_decoded("%25252525").as_deref(), None);
        assert_eq!(fully_decoded("%zz"), None);
        assert_eq!(fully_decoded("%ff"), None);
        assert_eq!(fully_decoded("%"), None);
        assert_eq!(fully_decoded("%+f"), None);
    }

    #[test]
    fn web_uris_must_spell_out_their_authority() {
        for bad in [
            "https:user@evil.example/cb",
            "https:///user@evil.example/cb",
            "https:/evil.example/cb",
            "http:evil.example",
            "https://",
        ] {
            assert!(redirect_uri_defect(bad).is_some(), "{bad}");
        }
        for fine in [
            "https://app.example/cb",
            "http://127.0.0.1:8080/cb",
            "com.example.app:/callback",
        ] {
            assert_eq!(redirect_uri_defect(fine), None, "{fine}");
        }
    }

    #[test]
    fn dot_segments_are_found_however_written() {
        for bad in ["/a/../b", "/a/./b", "/..", "/a\\..\\b", "..", "/a/.."] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for fine in ["/a/b", "/a/..b", "/a/b.", "/.well-known/x"] {
            assert!(!has_dot_segment(fine), "{fine}");
        }
    }

    #[test]
    fn redirect_uri_shapes() {
        for fine in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:8080/cb?x=1",
            "https://app.example.com/a/b",
            "com.example.app:/cb",
        ] {
            assert_eq!(redirect_uri_defect(fine), None, "{fine}");
        }
        for bad in [
            "http://127.0.0.1/cb#x",
            "http://127.0.0.1/cb#",
            "http://user@127.0.0.1/cb",
            "http://@127.0.0.1/cb",
            "http://127.0.0.1/x/../cb",
            "http://127.0.0.1/x/%2e%2e/cb",
            "http://127.0.0.1/x/%2E%2e/cb",
            "http://127.0.0.1/x/..%2fcb",
            "http://127.0.0.1/x/%252e%252e/cb",
            "http://127.0.0.1/x/./cb",
            "http://127.0.0.1\\cb",
            "http://127.0.0.1/x/..%5ccb",
            "http://127.0.0.1/c b",
            "com.example.app:/x/../cb",
        ] {
            assert!(redirect_uri_defect(bad).is_some(), "{bad}");
        }
    }
}
