//! Signed notes against the vectors of Go's golang.org/x/mod/sumdb/note (note_test.go, and the
//! sumdb client test key) and the c2sp.org/signed-note example, so dualkey's notes are
//! byte-compatible with Go's.

use super::{NoteError, NoteVerifier, Signer};

const PETER_PRIVATE: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_KEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG: &str =
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str =
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn peter() -> NoteVerifier {
    NoteVerifier::parse(PETER_KEY).unwrap()
}

#[test]
fn the_go_peter_neumann_key_signs_byte_for_byte_what_go_signs() {
    let signer = Signer::from_private_key(PETER_PRIVATE).unwrap();
    assert_eq!((signer.name(), signer.key_id()), ("PeterNeumann", 0xc74f20a3));
    assert_eq!(signer.sign(TEXT).unwrap(), format!("{TEXT}\n{PETER_SIG}"));
    assert_eq!(signer.verifier_key(), PETER_KEY);
    assert_eq!(signer.private_key(), PETER_PRIVATE);
}

#[test]
fn the_go_note_opens_with_either_signers_key_and_ignores_the_other_line() {
    let note = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    assert_eq!(peter().open(&note), Ok(TEXT));
    let enoch = NoteVerifier::parse(ENOCH_KEY).unwrap();
    assert_eq!((enoch.name(), enoch.key_id()), ("EnochRoot", 0xaf0cfe78));
    assert_eq!(enoch.open(&note), Ok(TEXT));
    let repeated = format!("{TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}");
    assert_eq!(peter().open(&repeated), Ok(TEXT));
}

#[test]
fn a_note_without_a_line_by_this_key_is_not_signed_by_it() {
    let note = format!("{TEXT}\n{ENOCH_SIG}");
    assert_eq!(peter().open(&note), Err(NoteError::NotSigned("PeterNeumann+c74f20a3".to_owned())));
    let impostor = Signer::generate("PeterNeumann").unwrap();
    let signed_by_impostor = impostor.sign(TEXT).unwrap();
    assert_eq!(peter().open(&signed_by_impostor), Err(NoteError::NotSigned("PeterNeumann+c74f20a3".to_owned())));
    let both = format!("{signed_by_impostor}{PETER_SIG}");
    assert_eq!(peter().open(&both), Ok(TEXT), "a same-name key with another ID is an unknown key, ignored");
}

#[test]
fn a_line_by_this_key_that_does_not_verify_refuses_the_whole_note() {
    let bad_sig = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    let refused = Err(NoteError::BadSignature("PeterNeumann+c74f20a3".to_owned()));
    assert_eq!(peter().open(&format!("{TEXT}\n{bad_sig}")), refused);
    assert_eq!(peter().open(&format!("{TEXT}\n{PETER_SIG}{bad_sig}")), refused);
    assert_eq!(peter().open(&format!("{TEXT}\n— PeterNeumann x08go/Y=\n")), refused, "a one-byte signature");
    let edited = format!("{}\n{PETER_SIG}", TEXT.replace("answer", "question"));
    assert_eq!(peter().open(&edited), refused);
}

#[test]
fn malformed_notes_are_refused_as_malformed_whatever_their_signatures() {
    let bad = [
        TEXT.to_owned(),
        format!("{TEXT}\n"),
        format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\x01{TEXT}\n{PETER_SIG}"),
        format!(
            "{TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
        ),
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
        format!("{TEXT}\n{}", PETER_SIG.repeat(101)),
        format!("{TEXT}\n— PeterNeumann\n"),
        format!("{TEXT}\n— PeterNeumann x08g\n"),
        format!("{TEXT}\n— PeterNeumann not*base64\n"),
    ];
    for note in &bad {
        assert!(matches!(peter().open(note), Err(NoteError::MalformedNote(_))), "{note:?}");
    }
    assert_eq!(peter().open(&format!("{TEXT}\n{}", PETER_SIG.repeat(100))), Ok(TEXT));
}

#[test]
fn text_with_blank_lines_signs_and_opens_since_readers_split_at_the_last_one() {
    let signer = Signer::generate("example.com/log").unwrap();
    let verifier = NoteVerifier::parse(&signer.verifier_key()).unwrap();
    let text = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n";
    assert_eq!(verifier.open(&signer.sign(text).unwrap()), Ok(text));
    assert_eq!(verifier.open(&signer.sign("\n").unwrap()), Ok("\n"));
}

#[test]
fn text_a_note_could_not_carry_is_not_signed() {
    let signer = Signer::from_private_key(PETER_PRIVATE).unwrap();
    for text in ["abc", "", "abc\ndef", "tab\there\n", "nul\0\n"] {
        assert!(matches!(signer.sign(text), Err(NoteError::UnsignableText(_))), "{text:?}");
    }
}

#[test]
fn the_c2sp_example_note_verifies_with_its_published_key() {
    let verifier =
        NoteVerifier::parse("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k").unwrap();
    let note = "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    assert_eq!(verifier.open(note), Ok("This is an example message.\n"));
}

#[test]
fn the_go_sumdb_test_key_with_a_plus_in_its_base64_and_a_zero_padded_id_round_trips() {
    let private = "PRIVATE+KEY+localhost.localdev/sumdb+00000c67+AXu6+oaVaOYuQOFrf1V59JK1owcFlJcHwwXHDfDGxSPk";
    let signer = Signer::from_private_key(&format!("  {private}\n")).unwrap();
    assert_eq!(signer.key_id(), 0x00000c67);
    assert_eq!(signer.verifier_key(), "localhost.localdev/sumdb+00000c67+AcTrnkbUA+TU4heY3hkjiSES/DSQniBqIeQ/YppAUtK6");
    assert_eq!(signer.private_key(), private);
}

#[test]
fn generated_keys_round_trip_through_their_texts_and_sign_what_their_verifier_opens() {
    let signer = Signer::generate("dualkey.example/log").unwrap();
    let again = Signer::from_private_key(&signer.private_key()).unwrap();
    assert_eq!(
        (again.name(), again.key_id(), again.verifier_key()),
        (signer.name(), signer.key_id(), signer.verifier_key())
    );
    let verifier = NoteVerifier::parse(&signer.verifier_key()).unwrap();
    assert_eq!((verifier.name(), verifier.key_id()), (signer.name(), signer.key_id()));
    assert_eq!(verifier.open(&again.sign("hello\n").unwrap()), Ok("hello\n"));
    assert_ne!(Signer::generate("dualkey.example/log").unwrap().key_id(), signer.key_id());
}

#[test]
fn debug_output_names_the_key_but_never_shows_the_seed() {
    let signer = Signer::from_private_key(PETER_PRIVATE).unwrap();
    let shown = format!("{signer:?}");
    assert!(shown.contains("PeterNeumann") && shown.contains("c74f20a3"), "{shown}");
    let seed_b64 = PETER_PRIVATE.rsplit('+').next().unwrap();
    assert!(!shown.contains(seed_b64) && !shown.contains("PRIVATE"), "{shown}");
    assert!(!shown.contains("seed") && !shown.contains("pair"), "{shown}");
}

#[test]
fn key_names_that_are_empty_or_hold_spaces_plus_signs_or_control_characters_are_refused() {
    for name in ["", "a b", "a+b", "a\u{a0}b", "a\u{3000}b", "a\tb", "a\u{2028}b", "a\u{1}b"] {
        assert_eq!(Signer::generate(name).unwrap_err(), NoteError::BadKeyName(name.to_owned()), "{name:?}");
    }
    assert!(Signer::generate("sum.golang.org/é").is_ok());
}

#[test]
fn mangled_verifier_keys_are_refused_as_go_refuses_them() {
    for i in 0..PETER_KEY.len() {
        for j in i + 1..=PETER_KEY.len() {
            if (i, j) != (0, PETER_KEY.len()) {
                assert!(NoteVerifier::parse(&PETER_KEY[i..j]).is_err(), "{:?}", &PETER_KEY[i..j]);
            }
        }
    }
    for i in 0..PETER_KEY.len() {
        let mut b = PETER_KEY.as_bytes().to_vec();
        b[i] += 1;
        assert!(NoteVerifier::parse(std::str::from_utf8(&b).unwrap()).is_err(), "byte {i} changed");
    }
    let long = "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==";
    assert!(matches!(NoteVerifier::parse(long), Err(NoteError::MalformedVerifierKey(_))));
    let unknown = "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    assert_eq!(NoteVerifier::parse(unknown), Err(NoteError::UnsupportedKeyType(0x65)));
}

#[test]
fn mangled_private_keys_are_refused_as_go_refuses_them() {
    for i in 0..PETER_PRIVATE.len() {
        for j in i + 1..=PETER_PRIVATE.len() {
            if (i, j) != (0, PETER_PRIVATE.len()) {
                assert!(Signer::from_private_key(&PETER_PRIVATE[i..j]).is_err(), "{:?}", &PETER_PRIVATE[i..j]);
            }
        }
    }
    for i in 0..PETER_PRIVATE.len() {
        let mut b = PETER_PRIVATE.as_bytes().to_vec();
        b[i] += 1;
        assert!(Signer::from_private_key(std::str::from_utf8(&b).unwrap()).is_err(), "byte {i} changed");
    }
}

#[test]
fn a_stated_key_id_that_is_not_the_keys_own_is_refused() {
    let wrong = PETER_KEY.replace("c74f20a3", "c74f20a4");
    assert_eq!(NoteVerifier::parse(&wrong), Err(NoteError::KeyIdMismatch { stated: 0xc74f20a4, actual: 0xc74f20a3 }));
    let wrong = PETER_PRIVATE.replace("c74f20a3", "c74f20a4");
    assert_eq!(
        Signer::from_private_key(&wrong).unwrap_err(),
        NoteError::KeyIdMismatch { stated: 0xc74f20a4, actual: 0xc74f20a3 }
    );
    let upper = PETER_KEY.replace("c74f20a3", "C74F20A3");
    assert!(
        matches!(NoteVerifier::parse(&upper), Err(NoteError::MalformedVerifierKey(_))),
        "the spec writes lowercase hex"
    );
}

#[test]
fn a_private_key_error_never_repeats_the_key() {
    let mangled = PETER_PRIVATE.replace("AYEK", "AYE*");
    let message = Signer::from_private_key(&mangled).unwrap_err().to_string();
    assert!(!message.contains("FALVFG"), "{message}");
    assert_eq!(message, "the private key is malformed: the key is not base64");
}
