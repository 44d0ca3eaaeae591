//! Flink's `CREATE TABLE`, parsed with sqlparser's own expression, type and identifier parsers:
//! only the table's structure (which element is a column of which kind, the watermark, the key,
//! `PARTITIONED BY`, `WITH`) is read here.
//!
//! ```sql
//! CREATE [TEMPORARY] TABLE [IF NOT EXISTS] [cat.][db.]name (
//!   id BIGINT NOT NULL,                                 -- physical
//!   auction AS CAST(MOD(id * 7919, 1000) AS BIGINT),    -- computed
//!   ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,  -- metadata
//!   WATERMARK FOR ts AS ts - INTERVAL '5' SECOND,
//!   PRIMARY KEY (id) NOT ENFORCED
//! ) [COMMENT '...'] [PARTITIONED BY (a, b)] WITH ('connector' = '...', ...)
//! ```

use arrow::datatypes::DataType;
use datafusion_sql::sqlparser::keywords::Keyword;
use datafusion_sql::sqlparser::parser::Parser;
use datafusion_sql::sqlparser::tokenizer::Token;

use super::words::{error_at, expect_words, name_parts, parse_ident_list, parse_options, parse_words, peek_words};
use crate::catalog::{Column, ColumnKind, TableDef, WatermarkSpec};
use crate::error::Result;
use crate::types;

/// A parsed `CREATE TABLE`: the table (computed columns still untyped: `DataType::Null`, the
/// planner types them) and how to create it.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    /// The name as written (1–3 parts).
    pub name: Vec<String>,
    /// The table.
    pub table: TableDef,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// `TEMPORARY`.
    pub temporary: bool,
}

/// Parses what follows `CREATE [TEMPORARY] TABLE`.
pub fn parse_create_table(p: &mut Parser<'_>, temporary: bool) -> Result<CreateTable> {
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = name_parts(&p.parse_object_name(false)?)?;
    let table_name = name.last().cloned().unwrap_or_default();
    let mut table = TableDef {
        name: table_name,
        columns: Vec::new(),
        watermark: None,
        primary_key: Vec::new(),
        partitioned_by: Vec::new(),
        options: Default::default(),
        comment: None,
    };
    p.expect_token(&Token::LParen)?;
    loop {
        parse_element(p, &mut table)?;
        if p.consume_token(&Token::Comma) {
            continue;
        }
        p.expect_token(&Token::RParen)?;
        break;
    }
    loop {
        if p.parse_keyword(Keyword::COMMENT) {
            table.comment = Some(p.parse_literal_string()?);
        } else if p.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
            let at = p.peek_token();
            for c in parse_ident_list(p)? {
                if table.column(&c.value).is_none() {
                    return Err(error_at(&at, &format!("partition column '{}' is not a column of the table", c.value)));
                }
                table.partitioned_by.push(c.value);
            }
        } else if p.parse_keyword(Keyword::WITH) {
            table.options = parse_options(p)?;
        } else if p.peek_keyword(Keyword::LIKE) {
            return Err(error_at(&p.peek_token(), "not supported yet: CREATE TABLE ... LIKE"));
        } else {
            break;
        }
    }
    if let Some(w) = &table.watermark {
        if table.column(&w.rowtime).is_none() {
            return Err(crate::error::SqlError::invalid(format!(
                "the watermark's column '{}' is not a column of table '{}'",
                w.rowtime, table.name
            )));
        }
    }
    for k in &table.primary_key {
        match table.columns.iter_mut().find(|c| &c.name == k) {
            Some(c) => c.nullable = false,
            None => {
                return Err(crate::error::SqlError::invalid(format!(
                    "primary key column '{k}' is not a column of table '{}'",
                    table.name
                )))
            }
        }
    }
    Ok(CreateTable { name, table, if_not_exists, temporary })
}

fn parse_primary_key_tail(p: &mut Parser<'_>) -> Result<()> {
    expect_words(p, &["NOT", "ENFORCED"]).map_err(|_| {
        error_at(&p.peek_token(), "Flink requires PRIMARY KEY ... NOT ENFORCED (riffle does not check keys either)")
    })
}

fn parse_element(p: &mut Parser<'_>, table: &mut TableDef) -> Result<()> {
    let at = p.peek_token();
    if parse_words(p, &["WATERMARK", "FOR"]) {
        if table.watermark.is_some() {
            return Err(error_at(&at, "a table has at most one WATERMARK"));
        }
        let rowtime = p.parse_identifier()?.value;
        p.expect_keyword_is(Keyword::AS)?;
        let expr = p.parse_expr()?;
        table.watermark = Some(WatermarkSpec { rowtime, expr });
        return Ok(());
    }
    if p.parse_keyword(Keyword::CONSTRAINT) {
        p.parse_identifier()?;
    }
    if peek_words(p, &["PRIMARY", "KEY"]) && matches!(p.peek_nth_token(2).token, Token::LParen) {
        p.next_token();
        p.next_token();
        if !table.primary_key.is_empty() {
            return Err(error_at(&at, "a table has at most one PRIMARY KEY"));
        }
        table.primary_key = parse_ident_list(p)?.into_iter().map(|i| i.value).collect();
        parse_primary_key_tail(p)?;
        return Ok(());
    }
    let ident = p.parse_identifier()?;
    let name = ident.value;
    if table.column(&name).is_some() {
        return Err(error_at(&at, &format!("column '{name}' is declared twice")));
    }
    if p.parse_keyword(Keyword::AS) {
        let expr = p.parse_expr()?;
        let comment = if p.parse_keyword(Keyword::COMMENT) { Some(p.parse_literal_string()?) } else { None };
        table.columns.push(Column {
            name,
            data_type: DataType::Null,
            nullable: true,
            kind: ColumnKind::Computed(Box::new(expr)),
            comment,
        });
        return Ok(());
    }
    let type_at = p.peek_token();
    let sql_type = p.parse_data_type()?;
    let local_zone = parse_words(p, &["WITH", "LOCAL", "TIME", "ZONE"]);
    let data_type = types::to_arrow(&sql_type, local_zone).map_err(|e| error_at(&type_at, &e.to_string()))?;
    let mut column = Column { name, data_type, nullable: true, kind: ColumnKind::Physical, comment: None };
    loop {
        if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
            column.nullable = false;
        } else if p.parse_keyword(Keyword::NULL) {
            column.nullable = true;
        } else if parse_words(p, &["METADATA"]) {
            let key = if p.parse_keyword(Keyword::FROM) { p.parse_literal_string()? } else { column.name.clone() };
            let is_virtual = parse_words(p, &["VIRTUAL"]);
            column.kind = ColumnKind::Metadata { key, is_virtual };
        } else if p.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
            if !table.primary_key.is_empty() {
                return Err(error_at(&at, "a table has at most one PRIMARY KEY"));
            }
            parse_primary_key_tail(p)?;
            table.primary_key = vec![column.name.clone()];
        } else if p.parse_keyword(Keyword::COMMENT) {
            column.comment = Some(p.parse_literal_string()?);
        } else {
            break;
        }
    }
    table.columns.push(column);
    Ok(())
}
