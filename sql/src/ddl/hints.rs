//! Flink's dynamic table options (FLIP-113): `FROM t /*+ OPTIONS('k' = 'v') */`. sqlparser
//! keeps a `/* */` comment as whitespace, so the hints are read from the token stream before
//! parsing: a comment starting with `+` right after a table name gives that name its options
//! for the statement it is in.

use std::collections::BTreeMap;

use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;
use datafusion_sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use super::words::{error_at, parse_options, peek_word};
use crate::error::{Result, SqlError};

/// One `/*+ OPTIONS(..) */` hint: where it is and the table it follows.
#[derive(Debug, Clone, PartialEq)]
pub struct TableHint {
    /// The index of the comment token in the script's tokens.
    pub token_index: usize,
    /// The table's name as written before the hint (`db.t`).
    pub table: String,
    /// The options.
    pub options: BTreeMap<String, String>,
}

/// Every table hint of a token stream.
pub fn find_hints(tokens: &[TokenWithSpan]) -> Result<Vec<TableHint>> {
    let mut hints = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let Token::Whitespace(Whitespace::MultiLineComment(text)) = &t.token else { continue };
        let Some(body) = text.strip_prefix('+') else { continue };
        let table = name_before(&tokens[..i])
            .ok_or_else(|| error_at(t, "a /*+ OPTIONS(..) */ hint must follow a table name"))?;
        let dialect = GenericDialect {};
        let inner =
            Tokenizer::new(&dialect, body).tokenize_with_location().map_err(|e| SqlError::Parse(e.to_string()))?;
        let mut p = Parser::new(&dialect).with_tokens_with_locations(inner);
        let mut options = BTreeMap::new();
        loop {
            match peek_word(&p, 0).as_deref() {
                Some("OPTIONS") => {
                    p.next_token();
                    options.extend(parse_options(&mut p)?);
                }
                None if matches!(p.peek_token().token, Token::EOF) => break,
                _ => {
                    return Err(error_at(t, "only the OPTIONS('k' = 'v') table hint is supported"));
                }
            }
            if !p.consume_token(&Token::Comma) {
                break;
            }
        }
        hints.push(TableHint { token_index: i, table, options });
    }
    Ok(hints)
}

/// The dotted name ending right before a hint (whitespace skipped), if the tokens end in one.
fn name_before(tokens: &[TokenWithSpan]) -> Option<String> {
    let mut parts = Vec::new();
    let mut iter = tokens.iter().rev().filter(|t| !matches!(t.token, Token::Whitespace(_)));
    loop {
        match iter.next().map(|t| &t.token) {
            Some(Token::Word(w)) => parts.push(w.value.clone()),
            _ => return None,
        }
        let mut peek = iter.clone();
        if matches!(peek.next().map(|t| &t.token), Some(Token::Period)) {
            iter.next();
        } else {
            break;
        }
    }
    parts.reverse();
    Some(parts.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_belongs_to_the_table_name_before_it() {
        let sql = "SELECT * FROM db.t /*+ OPTIONS('a' = '1', 'b' = '2') */ WHERE x /* plain */ > 1";
        let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location().unwrap();
        let hints = find_hints(&tokens).unwrap();
        assert_eq!(hints.len(), 1);
        assert_eq!(hints[0].table, "db.t");
        assert_eq!(hints[0].options.get("a").map(String::as_str), Some("1"));
        assert_eq!(hints[0].options.len(), 2);
    }

    #[test]
    fn an_unknown_hint_is_an_error() {
        let tokens =
            Tokenizer::new(&GenericDialect {}, "SELECT * FROM t /*+ BROADCAST(t) */").tokenize_with_location().unwrap();
        assert!(find_hints(&tokens).unwrap_err().to_string().contains("OPTIONS"));
    }
}
