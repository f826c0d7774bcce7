use super::*;

#[test]
fn control_characters_are_escaped_and_text_is_kept() {
    assert_eq!(escape("/etc/ssh/key"), "/etc/ssh/key");
    assert_eq!(escape("/etc/clé"), "/etc/clé");
    assert_eq!(
        escape("/x\x1b]0;owned\x07\u{9b}2J\u{202e}\\"),
        "/x\\x1b]0;owned\\x07\\u{9b}2J\\u{202e}\\\\"
    );
    assert_eq!(escape("a\nb\tc\rd\x7f"), "a\\nb\\tc\\rd\\x7f");
    assert_eq!(escape_bytes(b"a\xffb\x1b"), "a\\xffb\\x1b");
    assert_eq!(
        escape_message("line\n  /x\x1b[2J\\"),
        "line\n  /x\\x1b[2J\\"
    );
    assert_eq!(Escaped("\x07").to_string(), "\\x07");
}

#[test]
fn invisible_and_reordering_characters_are_escaped() {
    for (c, shown) in [
        ('\u{061c}', "\\u{61c}"),  // Arabic letter mark
        ('\u{200b}', "\\u{200b}"), // zero-width space
        ('\u{200d}', "\\u{200d}"), // zero-width joiner
        ('\u{2028}', "\\u{2028}"), // line separator
        ('\u{2029}', "\\u{2029}"), // paragraph separator
        ('\u{feff}', "\\u{feff}"), // BOM
        ('\u{3164}', "\\u{3164}"), // Hangul filler
        ('\u{115f}', "\\u{115f}"),
        ('\u{ffa0}', "\\u{ffa0}"),
        ('\u{2066}', "\\u{2066}"),   // bidi isolate
        ('\u{00a0}', "\\u{a0}"),     // a space that is not U+0020
        ('\u{e0041}', "\\u{e0041}"), // tag character
        ('\u{fe0f}', "\\u{fe0f}"),
    ] {
        let s = format!("/etc/a{c}b");
        assert_eq!(escape(&s), format!("/etc/a{shown}b"), "{:x}", c as u32);
        assert_eq!(Untrusted::from(s.as_str()).to_string(), escape(&s));
    }
    // Letters, marks and symbols outside those classes stay.
    for s in [
        "/etc/日本語",
        "/etc/ñ",
        "/etc/e\u{301}",
        "/etc/😀",
        "/etc/ב",
    ] {
        assert_eq!(escape(s), s);
    }
}

#[test]
fn long_strings_are_cut_with_a_marker_that_content_cannot_forge() {
    // `created_by` may be as long as a bundle's manifest (64 MiB).
    let long = "v".repeat(64 << 20);
    let shown = escape(&long);
    assert_eq!(
        shown,
        format!(
            "{}\\…[{} more bytes]",
            "v".repeat(MAX_SHOWN),
            (64 << 20) - MAX_SHOWN
        )
    );
    // At the limit: whole, no marker.
    let exact = "w".repeat(MAX_SHOWN);
    assert_eq!(escape(&exact), exact);
    // Escapes count towards the limit and are never cut in half.
    let escapes = "\x1b".repeat(MAX_SHOWN);
    let shown = escape(&escapes);
    let kept = MAX_SHOWN / 4;
    assert_eq!(
        shown,
        format!(
            "{}\\…[{} more bytes]",
            "\\x1b".repeat(kept),
            MAX_SHOWN - kept
        )
    );
    // Invalid bytes too.
    let bytes = vec![0xffu8; 4 * MAX_SHOWN];
    assert!(escape_bytes(&bytes).ends_with(&format!("\\…[{} more bytes]", 4 * MAX_SHOWN - kept)));
    // Text that looks like the marker is escaped: its backslash doubles.
    assert_eq!(escape("a\\…[9 more bytes]"), "a\\\\…[9 more bytes]");
    // Whole messages keep their line breaks and are bounded too.
    let msg = format!("first\n{}", "m".repeat(2 * MAX_MESSAGE));
    let shown = escape_message(&msg);
    assert!(shown.starts_with("first\nmmm"));
    assert!(shown.ends_with(&format!("\\…[{} more bytes]", msg.len() - MAX_MESSAGE)));
}

#[test]
fn untrusted_text_prints_escaped_and_serializes_exactly() {
    let u = Untrusted::from("vault 1.0\x1b[2J\x1b[1;1Hsha256 0000");
    assert_eq!(u.to_string(), "vault 1.0\\x1b[2J\\x1b[1;1Hsha256 0000");
    assert_eq!(
        format!("{u:?}"),
        "\"vault 1.0\\x1b[2J\\x1b[1;1Hsha256 0000\""
    );
    assert_eq!(
        serde_json::to_value(&u).unwrap(),
        "vault 1.0\x1b[2J\x1b[1;1Hsha256 0000"
    );
    assert_eq!(u.as_raw(), "vault 1.0\x1b[2J\x1b[1;1Hsha256 0000");
    let back: Untrusted = serde_json::from_str("\"x\\u001b\"").unwrap();
    assert_eq!(back, "x\x1b");
}

#[test]
fn a_backslash_is_doubled_only_where_it_would_read_as_an_escape() {
    // A regex from a .sops.yaml stays as it is (a user copies it back).
    assert_eq!(escape(r"^secrets/[^/]+\.yaml$"), r"^secrets/[^/]+\.yaml$");
    assert_eq!(escape(r"a\d\s\."), r"a\d\s\.");
    // Text that spells an escape keeps its backslash doubled: it cannot pass for one.
    for (text, shown) in [
        (r"\x1b", r"\\x1b"),
        (r"\u{202e}", r"\\u{202e}"),
        (r"\n", r"\\n"),
        (r"\t", r"\\t"),
        (r"\r", r"\\r"),
        (r"\\", r"\\\\"),
        ("\\…[9 more bytes]", "\\\\…[9 more bytes]"),
        (r"end\", r"end\\"),
    ] {
        assert_eq!(escape(text), shown, "{text}");
    }
    // Before a byte that is not UTF-8 (written \xNN), the backslash is doubled too.
    assert_eq!(escape_bytes(b"a\\\xff"), "a\\\\\\xff");
}
