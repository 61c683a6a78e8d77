//! Email addresses as they enter Latchkey (sign-up, sign-in, password reset, verification resend, the CLI):
//! one parser, so that an address has one canonical form everywhere and no two accounts can look alike.
//!
//! The canonical form (`users.email_normalized`) is the local part in Unicode NFC, lower-cased, and the
//! domain mapped by IDNA (UTS #46: case-folded, NFC, `xn--` labels decoded) in its Unicode form, so
//! `Zoe\u{0308}@BÜCHER.example`, `zoë@bücher.example` and `ZOË@xn--bcher-kva.example` are one account.
//! The Unicode form was chosen over the `xn--` form because it is what existing rows, lower-cased at
//! sign-up, already hold.
//!
//! What normalisation cannot fold is refused, because it would render as another address: invisible
//! characters (zero-width, soft hyphen, bidi controls and other default-ignorable code points), compatibility
//! forms (full-width letters, ligatures, mathematical letters: anything NFKC would change) and letters of
//! more than one script in the local part or in one domain label (`pаypal` with a Cyrillic `а`), except
//! the combinations that are normal in Japanese, Chinese and Korean (UTS #39 "highly restrictive").
//! Whole-script look-alikes (an address written entirely in Cyrillic) need the confusables data, which
//! is not in the tree; they are not caught here.

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::props::{DefaultIgnorableCodePoint, Script};
use icu_properties::{CodePointMapData, CodePointSetData};
use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use crate::error::{Error, Result};

/// An email address that passed [`EmailAddress::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    display: String,
    canonical: String,
}

impl EmailAddress {
    /// Checks and normalises an address; the error names the `email` field and says what is wrong.
    pub fn parse(input: &str) -> Result<Self> {
        let input = input.trim();
        let malformed = || invalid("must be an address like name@example.com");
        if input.len() > 254 || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(malformed());
        }
        if input.chars().any(is_invisible) {
            return Err(invalid(
                "must not contain invisible characters (such as zero-width spaces, soft hyphens or \
                 direction marks)",
            ));
        }
        let nfc = ComposingNormalizerBorrowed::new_nfc();
        if !input.is_ascii()
            && ComposingNormalizerBorrowed::new_nfkc().normalize(input) != nfc.normalize(input)
        {
            return Err(invalid(
                "must not contain full-width, stylised or other look-alike forms of characters",
            ));
        }
        let display = nfc.normalize(input).into_owned();
        let (local, domain) = display.rsplit_once('@').ok_or_else(malformed)?;
        if local.is_empty()
            || local.len() > 64
            || domain.is_empty()
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err(malformed());
        }
        if !domain.contains('.') && !domain.eq_ignore_ascii_case("localhost") {
            return Err(malformed());
        }
        if mixes_scripts(local) {
            return Err(invalid(
                "must not mix alphabets (for example Latin and Cyrillic letters) before the @",
            ));
        }
        let domain = canonical_domain(domain)?;
        if domain.split('.').any(mixes_scripts) {
            return Err(invalid(
                "must not mix alphabets (for example Latin and Cyrillic letters) within a part of the \
                 domain",
            ));
        }
        let local = nfc.normalize(&local.to_lowercase()).into_owned();
        let canonical = format!("{local}@{domain}");
        Ok(Self { display, canonical })
    }

    /// The address as typed (trimmed, NFC): where mail is sent, what the user sees.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The form that identifies an account: two addresses with the same canonical form are one account.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

fn invalid(message: &str) -> Error {
    Error::invalid("email", message)
}

/// Zero-width characters, soft hyphens, bidi controls, variation selectors, Hangul fillers and the other
/// code points that render as nothing (Unicode's Default_Ignorable_Code_Point set).
fn is_invisible(c: char) -> bool {
    !c.is_ascii() && CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// The domain mapped by UTS #46 (hostname rules: letters, digits and hyphens; DNS lengths) and shown in
/// Unicode: lower case, NFC, `xn--` labels decoded.
fn canonical_domain(domain: &str) -> Result<String> {
    let not_a_domain = || invalid("has a domain that is not a valid domain name");
    let uts46 = Uts46::new();
    let ascii = uts46
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::Verify,
        )
        .map_err(|_| not_a_domain())?;
    let (unicode, result) = uts46.to_unicode(ascii.as_bytes(), AsciiDenyList::STD3, Hyphens::Check);
    result.map_err(|_| not_a_domain())?;
    Ok(unicode.into_owned())
}

/// Whether `text` has letters of more than one script. Common (digits, punctuation) and Inherited
/// (combining marks) characters go with any script; Han with Hiragana and Katakana (Japanese), with
/// Bopomofo (Chinese) or with Hangul (Korean), each also with Latin, count as one.
fn mixes_scripts(text: &str) -> bool {
    if text.is_ascii() {
        return false;
    }
    let scripts = CodePointMapData::<Script>::new();
    let mut seen: Vec<Script> = Vec::new();
    for c in text.chars() {
        let script = scripts.get(c);
        if script == Script::Common || script == Script::Inherited || seen.contains(&script) {
            continue;
        }
        seen.push(script);
    }
    if seen.len() <= 1 {
        return false;
    }
    const EAST_ASIAN: [&[Script]; 3] = [
        &[
            Script::Latin,
            Script::Han,
            Script::Hiragana,
            Script::Katakana,
        ],
        &[Script::Latin, Script::Han, Script::Bopomofo],
        &[Script::Latin, Script::Han, Script::Hangul],
    ];
    !EAST_ASIAN
        .iter()
        .any(|allowed| seen.iter().all(|s| allowed.contains(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(input: &str) -> String {
        EmailAddress::parse(input)
            .unwrap_or_else(|e| panic!("{input:?} refused: {e:?}"))
            .canonical()
            .to_string()
    }

    fn refusal(input: &str) -> String {
        match EmailAddress::parse(input) {
            Err(Error::Invalid { field, message }) => {
                assert_eq!(field, "email");
                message
            }
            other => panic!("{input:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn ascii_addresses_are_trimmed_and_lower_cased() {
        let address = EmailAddress::parse(" Ann@Example.COM ").unwrap();
        assert_eq!(address.display(), "Ann@Example.COM");
        assert_eq!(address.canonical(), "ann@example.com");
        assert_eq!(
            canonical("first.last+tag@sub.example.org"),
            "first.last+tag@sub.example.org"
        );
        assert_eq!(canonical("root@localhost"), "root@localhost");
    }

    #[test]
    fn composed_decomposed_and_idn_forms_are_one_address() {
        let composed = canonical("zo\u{00EB}@b\u{00FC}cher.example");
        assert_eq!(composed, "zo\u{00EB}@b\u{00FC}cher.example");
        for variant in [
            "zoe\u{0308}@bu\u{0308}cher.example",
            "ZO\u{00CB}@B\u{00DC}CHER.EXAMPLE",
            "Zoe\u{0308}@BU\u{0308}CHER.example",
            "zo\u{00EB}@xn--bcher-kva.example",
            "ZO\u{00CB}@XN--BCHER-KVA.EXAMPLE",
        ] {
            assert_eq!(canonical(variant), composed, "{variant:?}");
        }
        let decomposed = EmailAddress::parse("Zoe\u{0308}@example.com").unwrap();
        assert_eq!(
            decomposed.display(),
            "Zo\u{00EB}@example.com",
            "stored composed"
        );
    }

    #[test]
    fn scripts_of_one_language_are_accepted() {
        for ok in [
            "\u{0430}\u{043D}\u{043D}\u{0430}@example.com", // анна
            "\u{03B1}\u{03BB}\u{03C6}\u{03B1}@example.gr",  // αλφα
            "\u{5C71}\u{7530}\u{305F}\u{308D}\u{3046}@example.jp", // 山田たろう
            "user1-\u{00E9}t\u{00E9}@exemple.fr",
            "ann@\u{043F}\u{0440}\u{0438}\u{043C}\u{0435}\u{0440}.\u{0440}\u{0444}", // пример.рф
        ] {
            EmailAddress::parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e:?}"));
        }
    }

    #[test]
    fn invisible_characters_are_refused() {
        for bad in [
            "al\u{200B}ice@example.com", // zero-width space
            "al\u{200D}ice@example.com", // zero-width joiner
            "al\u{00AD}ice@example.com", // soft hyphen
            "alice\u{202E}@example.com", // right-to-left override
            "alice@exa\u{2066}mple.com", // left-to-right isolate
            "\u{FEFF}alice@example.com", // byte-order mark
            "alice\u{FE0F}@example.com", // variation selector
            "alice@exa\u{00AD}mple.com", // soft hyphen in the domain (IDNA would drop it)
        ] {
            assert!(refusal(bad).contains("invisible"), "{bad:?}");
        }
    }

    #[test]
    fn full_width_and_stylised_forms_are_refused() {
        for bad in [
            "\u{FF41}lice@example.com",  // full-width a
            "alice\u{FF20}example.com",  // full-width @
            "alice@example\u{FF0E}com",  // full-width full stop
            "\u{FB01}nance@example.com", // fi ligature
            "\u{1D44E}lice@example.com", // mathematical italic a
            "alice@\u{FF45}xample.com",  // full-width e in the domain
        ] {
            assert!(refusal(bad).contains("look-alike"), "{bad:?}");
        }
    }

    #[test]
    fn mixed_scripts_are_refused() {
        // "paypal" with a Cyrillic а, and with a Greek ο.
        assert!(refusal("p\u{0430}ypal@example.com").contains("before the @"));
        assert!(refusal("g\u{03BF}\u{03BF}gle@example.com").contains("before the @"));
        assert!(refusal("ann@ex\u{0430}mple.com").contains("domain"));
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@nodot",
            "a b@example.com",
            "ann@.example.com",
            "ann@example.com.",
            "ann@exa_mple.com",
            "ann@-example.com",
            "ann@xn--zz.example",
            &format!("{}@example.com", "a".repeat(65)),
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
