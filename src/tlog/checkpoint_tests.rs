//! Checkpoints: round trips, refusals, Go's tree-note text (golang.org/x/mod/sumdb/tlog
//! note_test.go) and tree heads signed by sum.golang.org, checked with the key the go command
//! ships.

use super::{Checkpoint, CheckpointError};
use crate::tlog::{EMPTY_ROOT, NoteError, NoteVerifier, Signer, leaf_hash};

const GO_TREE: &str = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n";
const SUMDB_KEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

fn go_tree() -> Checkpoint {
    Checkpoint { origin: "go.sum database tree".to_owned(), size: 123456789012, root: leaf_hash(b"hello world") }
}

#[test]
fn the_text_is_the_one_go_writes_for_a_tree_and_parses_back() {
    assert_eq!(go_tree().text(), GO_TREE);
    assert_eq!(Checkpoint::parse(GO_TREE), Ok(go_tree()));
    let empty = Checkpoint { origin: "example.com/log".to_owned(), size: 0, root: EMPTY_ROOT };
    assert_eq!(empty.text(), "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
    assert_eq!(Checkpoint::parse(&empty.text()), Ok(empty));
}

#[test]
fn a_signed_checkpoint_opens_to_the_same_checkpoint() {
    let signer = Signer::generate("example.com/log").unwrap();
    let verifier = NoteVerifier::parse(&signer.verifier_key()).unwrap();
    let checkpoint = Checkpoint { origin: "example.com/log".to_owned(), size: 42, root: leaf_hash(b"root") };
    let note = checkpoint.sign(&signer).unwrap();
    assert!(note.starts_with(&format!("{}\n\u{2014} example.com/log ", checkpoint.text())), "{note}");
    assert_eq!(Checkpoint::open(&note, &verifier), Ok(checkpoint));
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let ours = NoteVerifier::parse(&Signer::generate("example.com/log").unwrap().verifier_key()).unwrap();
    let note = go_tree().sign(&Signer::generate("example.com/log").unwrap()).unwrap();
    assert!(matches!(Checkpoint::open(&note, &ours), Err(CheckpointError::Note(NoteError::NotSigned(_)))));
}

#[test]
fn an_edited_size_or_root_is_refused_by_the_signature() {
    let signer = Signer::generate("example.com/log").unwrap();
    let verifier = NoteVerifier::parse(&signer.verifier_key()).unwrap();
    let note = go_tree().sign(&signer).unwrap();
    let bigger = note.replace("123456789012", "123456789013");
    let other_root = note.replace("TszzRgjTG6xce", "TszzRgjTG6xcf");
    for edited in [bigger, other_root] {
        assert!(matches!(Checkpoint::open(&edited, &verifier), Err(CheckpointError::Note(NoteError::BadSignature(_)))));
    }
}

#[test]
fn the_signature_is_checked_before_the_text_is_read() {
    let signer = Signer::generate("example.com/log").unwrap();
    let verifier = NoteVerifier::parse(&signer.verifier_key()).unwrap();
    let not_a_checkpoint = signer.sign("hello\n").unwrap();
    assert_eq!(Checkpoint::open(&not_a_checkpoint, &verifier), Err(CheckpointError::TooFewLines));
    let forged = not_a_checkpoint.replace("hello", "howdy");
    assert!(matches!(Checkpoint::open(&forged, &verifier), Err(CheckpointError::Note(NoteError::BadSignature(_)))));
}

#[test]
fn malformed_checkpoint_texts_are_refused_with_the_reason() {
    let root = "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=";
    let cases = [
        (String::new(), CheckpointError::Unterminated),
        (format!("o\n5\n{root}"), CheckpointError::Unterminated),
        (format!("{GO_TREE}JOE"), CheckpointError::Unterminated),
        ("o\n5\n".to_owned(), CheckpointError::TooFewLines),
        (format!("\n5\n{root}\n"), CheckpointError::EmptyOrigin),
        (format!("o\n05\n{root}\n"), CheckpointError::BadSize),
        (format!("o\n00\n{root}\n"), CheckpointError::BadSize),
        (format!("o\n0xabcdef\n{root}\n"), CheckpointError::BadSize),
        (format!("o\n-1\n{root}\n"), CheckpointError::BadSize),
        (format!("o\n+5\n{root}\n"), CheckpointError::BadSize),
        (format!("o\n 5\n{root}\n"), CheckpointError::BadSize),
        (format!("o\n\n{root}\n"), CheckpointError::BadSize),
        (format!("o\n18446744073709551616\n{root}\n"), CheckpointError::BadSize),
        ("o\n5\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n".to_owned(), CheckpointError::BadRoot),
        ("o\n5\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0\n".to_owned(), CheckpointError::BadRoot),
        ("o\n5\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40Hmuw\n".to_owned(), CheckpointError::BadRoot),
        ("o\n5\n\n".to_owned(), CheckpointError::BadRoot),
        (format!("o\n5\n{root}\n\n"), CheckpointError::EmptyExtensionLine),
        (format!("o\n5\n{root}\next\n\nmore\n"), CheckpointError::EmptyExtensionLine),
    ];
    for (text, error) in cases {
        assert_eq!(Checkpoint::parse(&text), Err(error), "{text:?}");
    }
}

#[test]
fn extension_lines_after_the_root_are_allowed_and_ignored() {
    for extra in ["JOE\n".to_owned(), "JOE\n".repeat(1000), "— not a signature\n".to_owned()] {
        assert_eq!(Checkpoint::parse(&format!("{GO_TREE}{extra}")), Ok(go_tree()), "{extra:?}");
    }
    let max = format!("o\n{}\n{}\n", u64::MAX, "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=");
    assert_eq!(Checkpoint::parse(&max).map(|c| c.size), Ok(u64::MAX));
}

#[test]
fn a_checkpoint_whose_origin_is_not_one_line_is_not_signed() {
    let signer = Signer::generate("example.com/log").unwrap();
    for origin in ["", "two\nlines"] {
        let checkpoint = Checkpoint { origin: origin.to_owned(), ..go_tree() };
        assert!(matches!(checkpoint.sign(&signer), Err(NoteError::UnsignableText(_))), "{origin:?}");
    }
}

#[test]
fn the_c2sp_example_checkpoint_text_parses() {
    let text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let checkpoint = Checkpoint::parse(text).unwrap();
    assert_eq!((checkpoint.origin.as_str(), checkpoint.size), ("example.com/behind-the-sofa", 20852163));
    assert_eq!(checkpoint.text(), text);
}

#[test]
fn tree_heads_signed_by_sum_golang_org_open_with_the_go_command_key() {
    let verifier = NoteVerifier::parse(SUMDB_KEY).unwrap();
    let heads = [
        (
            15368405,
            "go.sum database tree\n15368405\n/g9am3I6YWNKaZX/jkne1fqd9zEyjss+JXyPXG0WfkY=\n\n\u{2014} sum.golang.org Az3grqJGUaSGukG9p8nI2vKgiFn7qGHxn0W+mrwyI6Gz3F0t1J3LzmWk/p96Ybf295EjwdSwlzgijq5WA9d1Ded7owM=\n",
        ),
        (
            63512409,
            "go.sum database tree\n63512409\nF7eHRPqN/cqPtqti14NKdGGaI1Giw8coWP3KxihFZbg=\n\n\u{2014} sum.golang.org Az3gri1OBHKT87Xj8UXU8zjoHGy/X+7Nl94f8TZkELVaasolmGApUsWqwVG9vE6hgqYb/ph/w2vdkLIVRH7bMB/FPQ4=\n",
        ),
        (
            3784599,
            "go.sum database tree\n3784599\n7uvxIZ67TZygcq/AehTD8iHYt81Ih+Zl2Y7vXZbfszQ=\n\n\u{2014} sum.golang.org Az3grn972wXskjQrsZhVGc93fTU2uOsmSTiId1Wn1lxDCup5z4ggl1/4gaUqOkMa6cMbYvjB7hn7yemNr7Zqanol/go=\n",
        ),
    ];
    for (size, note) in heads {
        let checkpoint = Checkpoint::open(note, &verifier).unwrap();
        assert_eq!((checkpoint.origin.as_str(), checkpoint.size), ("go.sum database tree", size));
        let edited = note.replace(&size.to_string(), &(size + 1).to_string());
        assert!(Checkpoint::open(&edited, &verifier).is_err());
    }
}
