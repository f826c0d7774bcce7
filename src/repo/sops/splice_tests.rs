use super::*;
use crate::repo::sops::rule_choice::names;

const ALL: Choice = Choice::SharedAndOwn { other_hosts: &[] };

fn joined(v: &[RuleVerdict]) -> Vec<usize> {
    v.iter().filter(|r| r.joined).map(|r| r.number).collect()
}

const CFG: &str = "# secrets for the fleet\nkeys:\n  # admins\n  - &admin age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p # laptop\n  - &old age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg\ncreation_rules:\n  - path_regex: secrets/web/.*\n    age:\n      - *admin\n  # the rest\n  - path_regex: .*\n    key_groups:\n    - age:\n      - *admin\n      - *old\n";

#[test]
fn adds_only_lines() {
    let r = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
    let (out, changed) = add_recipient(CFG, "web1", r, ALL).unwrap();
    assert_eq!(joined(&changed), vec![1, 2]);
    let old: Vec<&str> = CFG.lines().collect();
    let new: Vec<&str> = out.lines().collect();
    assert_eq!(new.len(), old.len() + 3);
    // Deleting the added lines gives back the original exactly.
    let back: Vec<&str> = new
        .iter()
        .copied()
        .filter(|l| !l.contains("web1"))
        .collect();
    assert_eq!(back, old);
    assert!(out.contains("  - &web1 age1zvk"));
    assert!(out.contains("      - *admin\n      - *web1\n  # the rest"));
    assert!(out.contains("      - *old\n      - *web1\n"));
    let (again, n) = remove_recipient(&out, "web1").unwrap();
    assert_eq!(n, 3);
    assert_eq!(again, CFG);
}

#[test]
fn picks_rules_and_refuses_scalars() {
    let r = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
    let (_, v) = add_recipient(
        CFG,
        "web1",
        r,
        Choice::Matching(&[Regex::new("web").unwrap()]),
    )
    .unwrap();
    assert_eq!(joined(&v), vec![1]);
    let scalar = "keys:\n  - &a age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\ncreation_rules:\n  - path_regex: .*\n    age: *a\n";
    let e = add_recipient(scalar, "web1", r, ALL).unwrap_err();
    assert!(e.contains("list"), "{e}");
}

#[test]
fn compact_lists_at_the_key_column() {
    // Lists indented like their key (a common yamllint-free style).
    let cfg = "keys:\n- &admin age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\ncreation_rules:\n- path_regex: a/.*\n  age:\n  - *admin\n  pgp: ABC\n- path_regex: b/.*\n  pgp: DEF\n";
    let r = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
    let (out, changed) = add_recipient(cfg, "h", r, ALL).unwrap();
    assert_eq!(joined(&changed), vec![1, 2]);
    assert_eq!(
        out,
        format!("keys:\n- &admin age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n- &h {r}\ncreation_rules:\n- path_regex: a/.*\n  age:\n  - *admin\n  - *h\n  pgp: ABC\n- path_regex: b/.*\n  pgp: DEF\n  age:\n    - *h\n")
    );
    assert_eq!(remove_recipient(&out, "h").unwrap().0, cfg);
}

#[test]
fn rules_naming_another_host_are_left_out() {
    assert!(names("^secrets/hosts/server1/", "server1"));
    assert!(names("(server1|web1)\\.yaml$", "web1"));
    assert!(names("^hosts/web\\.example/", "web.example"));
    assert!(!names("^hosts/server10/", "server1"));
    assert!(!names("^hosts/server1-old/", "server1"));
    assert!(names("^HOSTS/Server1/", "server1"));
    let cfg = "keys:\n  - &admin age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n  - &server1 age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg\ncreation_rules:\n  - path_regex: ^secrets/hosts/server1/\n    age: [*admin, *server1]\n  - path_regex: ^secrets/hosts/db/\n    age: [*admin]\n  - path_regex: ^secrets/hosts/web2/\n    age: [*admin]\n  - age: [*admin, *server1]\n";
    let r = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";
    // server1 is an anchor, db a host of vault.toml: their rules are theirs.
    let db = ["db".to_string()];
    let (out, v) =
        add_recipient(cfg, "web2", r, Choice::SharedAndOwn { other_hosts: &db }).unwrap();
    assert_eq!(joined(&v), vec![3, 4]);
    assert_eq!(v[0].why, "names server1");
    assert_eq!(v[1].why, "names db");
    assert_eq!(v[2].why, "names web2");
    assert_eq!(v[3].why, "shared");
    assert!(out.contains("  - path_regex: ^secrets/hosts/server1/\n    age: [*admin, *server1]\n"));
    assert_eq!(
        remove_recipient(&out, "web2").unwrap(),
        (cfg.to_string(), 3)
    );
    // Every rule someone else's: refused, with the list.
    let only = "creation_rules:\n  - path_regex: ^secrets/hosts/db/\n    age: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]\n";
    let e = add_recipient(only, "web2", r, Choice::SharedAndOwn { other_hosts: &db }).unwrap_err();
    assert!(
        e.contains("--rule") && e.contains("rule 1: ^secrets/hosts/db/"),
        "{e}"
    );
}
