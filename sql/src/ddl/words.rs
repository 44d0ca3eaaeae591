//! Small helpers over sqlparser's `Parser` for Flink-only syntax: words that are not
//! sqlparser keywords (`WATERMARK`, `METADATA`, `VIRTUAL`, `ENFORCED`, ...), errors that name
//! the place, and `WITH ('k' = 'v', ...)` option lists.

use std::collections::BTreeMap;

use datafusion_sql::sqlparser::ast::{Ident, ObjectName, ObjectNamePart};
use datafusion_sql::sqlparser::parser::Parser;
use datafusion_sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::{Result, SqlError};

/// The `n`-th next token's unquoted word, upper-cased (`None` for anything else).
pub fn peek_word(p: &Parser<'_>, n: usize) -> Option<String> {
    match p.peek_nth_token(n).token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// Whether the next tokens are the unquoted words `words` (case-insensitive).
pub fn peek_words(p: &Parser<'_>, words: &[&str]) -> bool {
    words.iter().enumerate().all(|(i, w)| peek_word(p, i).as_deref() == Some(*w))
}

/// Consumes the unquoted words `words` if they come next.
pub fn parse_words(p: &mut Parser<'_>, words: &[&str]) -> bool {
    if peek_words(p, words) {
        for _ in words {
            p.next_token();
        }
        true
    } else {
        false
    }
}

/// Consumes the words `words` or fails naming what came instead and where.
pub fn expect_words(p: &mut Parser<'_>, words: &[&str]) -> Result<()> {
    if parse_words(p, words) {
        Ok(())
    } else {
        Err(error_at(&p.peek_token(), &format!("expected {}", words.join(" "))))
    }
}

/// A parse error at `token`: `"<what>, found: <token> at Line: l, Column: c"`.
pub fn error_at(token: &TokenWithSpan, what: &str) -> SqlError {
    SqlError::Parse(format!(
        "{what}, found: {} at Line: {}, Column: {}",
        token.token, token.span.start.line, token.span.start.column
    ))
}

/// The parts of a name (`cat.db.t`), back-quotes removed, case kept.
pub fn name_parts(name: &ObjectName) -> Result<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Ok(i.value.clone()),
            other => Err(SqlError::invalid(format!("'{other}' is not a name"))),
        })
        .collect()
}

/// A parenthesized list of identifiers: `(a, b)`.
pub fn parse_ident_list(p: &mut Parser<'_>) -> Result<Vec<Ident>> {
    p.expect_token(&Token::LParen)?;
    let idents = p.parse_comma_separated(|p| p.parse_identifier())?;
    p.expect_token(&Token::RParen)?;
    Ok(idents)
}

/// `('k' = 'v', ...)`: Flink's table and catalog options, keys and values as written.
pub fn parse_options(p: &mut Parser<'_>) -> Result<BTreeMap<String, String>> {
    p.expect_token(&Token::LParen)?;
    let mut options = BTreeMap::new();
    if p.consume_token(&Token::RParen) {
        return Ok(options);
    }
    loop {
        let at = p.peek_token();
        let key = p.parse_literal_string()?;
        p.expect_token(&Token::Eq)?;
        let value = p.parse_literal_string()?;
        if options.insert(key.clone(), value).is_some() {
            return Err(error_at(&at, &format!("option '{key}' is given twice")));
        }
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    p.expect_token(&Token::RParen)?;
    Ok(options)
}

/// A single-quoted key or an unquoted dotted one (`SET 'a.b' = 'c'`, `SET a.b = c`), up to `=`
/// or the statement's end.
pub fn parse_key(p: &mut Parser<'_>) -> Result<String> {
    let first = p.next_token();
    match &first.token {
        Token::SingleQuotedString(s) => Ok(s.clone()),
        Token::Word(w) => {
            let mut key = w.value.clone();
            while p.consume_token(&Token::Period) {
                match p.next_token().token {
                    Token::Word(w) => {
                        key.push('.');
                        key.push_str(&w.value);
                    }
                    Token::Number(n, _) => {
                        key.push('.');
                        key.push_str(&n);
                    }
                    _ => return Err(error_at(&first, "expected a configuration key")),
                }
            }
            Ok(key)
        }
        _ => Err(error_at(&first, "expected a configuration key")),
    }
}

/// A value after `=`: a quoted string, or the raw text of the tokens up to the statement's
/// end (`SET parallelism.default = 2`).
pub fn parse_value(p: &mut Parser<'_>) -> Result<String> {
    let first = p.peek_token();
    if let Token::SingleQuotedString(s) = &first.token {
        p.next_token();
        return Ok(s.clone());
    }
    let mut text = String::new();
    loop {
        let t = p.peek_token();
        if matches!(t.token, Token::SemiColon | Token::EOF) {
            break;
        }
        p.next_token();
        text.push_str(&t.token.to_string());
    }
    if text.is_empty() {
        return Err(error_at(&first, "expected a value"));
    }
    Ok(text)
}
