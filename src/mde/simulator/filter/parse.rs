//! OData `$filter` text into clauses: comparisons `field op value` and one lambda form,
//! `collection/any(x: x eq 'value')`, joined by `and`. What a clause may compare is for each
//! list to decide.

/// A literal: a quoted string (with `''` read as one quote) or a bare word (a number, a
/// date-time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Literal {
    Str(String),
    Bare(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Clause {
    /// `field op value`; `field` in lower case.
    Compare { field: String, op: Op, value: Literal },
    /// `collection/any(x: x eq 'value')`; `collection` in lower case.
    AnyEq { collection: String, value: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
}

/// The clauses of `text`; `None` when it is outside the supported grammar.
pub(super) fn clauses(text: &str) -> Option<Vec<Clause>> {
    let tokens = tokens(text)?;
    tokens.split(|t| matches!(t, Token::Word(w) if w.eq_ignore_ascii_case("and"))).map(clause).collect()
}

fn clause(tokens: &[Token]) -> Option<Clause> {
    match tokens {
        [Token::Word(field), Token::Word(op), value] => {
            let value = match value {
                Token::Str(s) => Literal::Str(s.clone()),
                Token::Word(w) => Literal::Bare(w.clone()),
                _ => return None,
            };
            Some(Clause::Compare { field: field.to_ascii_lowercase(), op: op_of(op)?, value })
        }
        [Token::Word(head), Token::Open, lambda @ .., Token::Close] => {
            let collection = head.to_ascii_lowercase().strip_suffix("/any")?.to_owned();
            Some(Clause::AnyEq { collection, value: any_eq(lambda)? })
        }
        _ => None,
    }
}

/// `t: t eq 'v'` (or `t : t eq 'v'`) → `v`.
fn any_eq(lambda: &[Token]) -> Option<String> {
    let (var, body) = match lambda {
        [Token::Word(v), rest @ ..] if v.len() > 1 && v.ends_with(':') => (&v[..v.len() - 1], rest),
        [Token::Word(v), Token::Word(colon), rest @ ..] if colon == ":" => (v.as_str(), rest),
        _ => return None,
    };
    match body {
        [Token::Word(x), Token::Word(op), Token::Str(value)] if x == var && op_of(op)? == Op::Eq => Some(value.clone()),
        _ => None,
    }
}

fn op_of(word: &str) -> Option<Op> {
    Some(match word.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "lt" => Op::Lt,
        "le" => Op::Le,
        _ => return None,
    })
}

fn tokens(text: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            _ if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                out.push(if c == '(' { Token::Open } else { Token::Close });
            }
            '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next()? {
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        '\'' => break,
                        other => value.push(other),
                    }
                }
                out.push(Token::Str(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "()'".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compare(field: &str, op: Op, value: Literal) -> Clause {
        Clause::Compare { field: field.into(), op, value }
    }

    #[test]
    fn comparisons_joined_by_and_parse_with_quotes_and_bare_values() {
        let got = clauses("machineId eq 'abc' AND creationDateTimeUtc ge 2024-10-21T11:25:48.33Z").unwrap();
        assert_eq!(
            got,
            [
                compare("machineid", Op::Eq, Literal::Str("abc".into())),
                compare("creationdatetimeutc", Op::Ge, Literal::Bare("2024-10-21T11:25:48.33Z".into())),
            ]
        );
        let quoted = clauses("requestor eq 'o''brien and co'").unwrap();
        assert_eq!(quoted, [compare("requestor", Op::Eq, Literal::Str("o'brien and co".into()))]);
    }

    #[test]
    fn an_any_lambda_parses_with_or_without_a_space_before_the_colon() {
        let want = Clause::AnyEq { collection: "machinetags".into(), value: "tier0".into() };
        assert_eq!(clauses("machineTags/any(t: t eq 'tier0')").unwrap(), std::slice::from_ref(&want));
        assert_eq!(clauses("machineTags/any(tag : tag eq 'tier0')").unwrap(), [want]);
        assert_eq!(clauses("machineTags/any(t: x eq 'tier0')"), None, "another variable");
        assert_eq!(clauses("machineTags/any(t: t ne 'tier0')"), None);
        assert_eq!(clauses("machineTags/all(t: t eq 'tier0')"), None);
    }

    #[test]
    fn text_outside_the_grammar_is_refused() {
        for bad in
            ["", "machineId", "machineId eq", "machineId ne 'a'", "machineId eq 'a' or type eq 'b'", "id eq 'open"]
        {
            assert_eq!(clauses(bad), None, "{bad}");
        }
    }
}
