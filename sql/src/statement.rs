//! A script's statements: Flink's DDL, catalog and session statements parsed here on
//! sqlparser's parser, queries and `INSERT`s left to sqlparser's own `parse_statement`.
//!
//! The script is tokenized once by sqlparser's tokenizer (quotes and `--`/`/* */` comments
//! are its business), and statements are read one after the other up to each `;`, so a `;`
//! inside a string or comment never splits a statement and `EXECUTE STATEMENT SET BEGIN ..
//! END` keeps its inner `;`s.

use std::collections::BTreeMap;

use datafusion_sql::sqlparser::ast::{self, ObjectName};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::keywords::Keyword;
use datafusion_sql::sqlparser::parser::Parser;
use datafusion_sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::ddl::hints::{find_hints, TableHint};
use crate::ddl::words::{error_at, name_parts, parse_key, parse_options, parse_value, parse_words, peek_word};
use crate::ddl::{parse_create_table, CreateTable};
use crate::error::{Result, SqlError};

/// Dynamic table options of one statement: table name as written → options.
pub type Hints = BTreeMap<String, BTreeMap<String, String>>;

/// What `SHOW` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowKind {
    /// `SHOW TABLES`.
    Tables,
    /// `SHOW VIEWS`.
    Views,
    /// `SHOW [USER] FUNCTIONS`.
    Functions,
    /// `SHOW CATALOGS`.
    Catalogs,
    /// `SHOW DATABASES`.
    Databases,
    /// `SHOW CURRENT CATALOG`.
    CurrentCatalog,
    /// `SHOW CURRENT DATABASE`.
    CurrentDatabase,
}

/// An `INSERT INTO` and the hints in its query.
#[derive(Debug, Clone, PartialEq)]
pub struct Insert {
    /// sqlparser's statement (DataFusion plans it).
    pub statement: ast::Statement,
    /// The target table's name parts.
    pub target: Vec<String>,
    /// `/*+ OPTIONS(..) */` hints.
    pub hints: Hints,
}

/// One statement of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE TABLE`.
    CreateTable(Box<CreateTable>),
    /// `CREATE [TEMPORARY] VIEW [IF NOT EXISTS] name [(cols)] AS query`.
    CreateView {
        /// Name parts.
        name: Vec<String>,
        /// The query.
        query: Box<ast::Query>,
        /// Column names, if given.
        columns: Vec<String>,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
        /// `TEMPORARY`.
        temporary: bool,
    },
    /// `DROP [TEMPORARY] TABLE|VIEW [IF EXISTS] name`.
    Drop {
        /// Name parts.
        name: Vec<String>,
        /// A view (else a table).
        view: bool,
        /// `IF EXISTS`.
        if_exists: bool,
    },
    /// `ALTER TABLE name SET ('k' = 'v', ..)`.
    AlterTableSet {
        /// Name parts.
        name: Vec<String>,
        /// Options to set (added or replaced).
        options: BTreeMap<String, String>,
    },
    /// `ALTER TABLE name RENAME TO new`.
    AlterTableRename {
        /// Name parts.
        name: Vec<String>,
        /// The new name parts.
        to: Vec<String>,
    },
    /// `SET 'k' = 'v'` (or `SET` alone: list the session's settings).
    Set(Option<(String, String)>),
    /// `RESET 'k'` (or `RESET` alone: every key).
    Reset(Option<String>),
    /// `SHOW ...`.
    Show(ShowKind),
    /// `SHOW CREATE TABLE|VIEW name`.
    ShowCreate {
        /// Name parts.
        name: Vec<String>,
        /// `SHOW CREATE VIEW`.
        view: bool,
    },
    /// `DESCRIBE name` / `DESC name`.
    Describe(Vec<String>),
    /// `EXPLAIN [PLAN FOR] statement`.
    Explain(Box<Statement>),
    /// `CREATE CATALOG name WITH (..)`.
    CreateCatalog {
        /// The name.
        name: String,
        /// Its options (`type` = `generic_in_memory`).
        options: BTreeMap<String, String>,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
    },
    /// `USE CATALOG name`.
    UseCatalog(String),
    /// `CREATE DATABASE [IF NOT EXISTS] [cat.]name`.
    CreateDatabase {
        /// Name parts.
        name: Vec<String>,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
    },
    /// `DROP DATABASE [IF EXISTS] [cat.]name`.
    DropDatabase {
        /// Name parts.
        name: Vec<String>,
        /// `IF EXISTS`.
        if_exists: bool,
    },
    /// `USE [cat.]name`.
    UseDatabase(Vec<String>),
    /// `INSERT INTO t ...`.
    Insert(Box<Insert>),
    /// `EXECUTE STATEMENT SET BEGIN INSERT ..; INSERT ..; END` (also without `EXECUTE`): one
    /// job for all the inserts.
    StatementSet(Vec<Insert>),
    /// A query (`SELECT`, `WITH`, `VALUES`).
    Query {
        /// The query.
        query: Box<ast::Query>,
        /// `/*+ OPTIONS(..) */` hints.
        hints: Hints,
    },
}

impl Statement {
    /// Whether it runs a job (DML, a query) rather than changing the session at once.
    pub fn is_dml(&self) -> bool {
        matches!(self, Statement::Insert(_) | Statement::StatementSet(_) | Statement::Query { .. })
    }
}

/// Parses a script of `;`-separated statements.
pub fn parse_script(sql: &str) -> Result<Vec<Statement>> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize_with_location().map_err(|e| SqlError::Parse(e.to_string()))?;
    let hints = find_hints(&tokens)?;
    let mut p = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let mut out = Vec::new();
    loop {
        while p.consume_token(&Token::SemiColon) {}
        if matches!(p.peek_token().token, Token::EOF) {
            break;
        }
        let start = p.index();
        let mut statement = parse_statement(&mut p)?;
        let end = p.index();
        attach_hints(&mut statement, &hints, start, end);
        out.push(statement);
        let next = p.peek_token();
        if !p.consume_token(&Token::SemiColon) && !matches!(next.token, Token::EOF) {
            return Err(error_at(&next, "expected ';' or the end of the script after the statement"));
        }
    }
    Ok(out)
}

/// Parses exactly one statement (a trailing `;` is allowed).
pub fn parse_one(sql: &str) -> Result<Statement> {
    let mut all = parse_script(sql)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => Err(SqlError::Parse("no statement in the text".into())),
        n => Err(SqlError::Parse(format!("expected one statement, found {n}"))),
    }
}

fn hints_in(hints: &[TableHint], start: usize, end: usize) -> Hints {
    let mut out = Hints::new();
    for h in hints.iter().filter(|h| h.token_index >= start && h.token_index < end) {
        out.entry(h.table.clone()).or_default().extend(h.options.clone());
    }
    out
}

fn attach_hints(s: &mut Statement, hints: &[TableHint], start: usize, end: usize) {
    match s {
        Statement::Insert(i) => i.hints = hints_in(hints, start, end),
        Statement::Query { hints: h, .. } => *h = hints_in(hints, start, end),
        Statement::StatementSet(inserts) => {
            let all = hints_in(hints, start, end);
            for i in inserts {
                i.hints = all.clone();
            }
        }
        Statement::Explain(inner) => attach_hints(inner, hints, start, end),
        _ => {}
    }
}

fn object_name(p: &mut Parser<'_>) -> Result<Vec<String>> {
    name_parts(&p.parse_object_name(false)?)
}

fn parse_statement(p: &mut Parser<'_>) -> Result<Statement> {
    let first = p.peek_token();
    match peek_word(p, 0).as_deref() {
        Some("CREATE") => parse_create(p),
        Some("DROP") => parse_drop(p),
        Some("ALTER") => {
            p.next_token();
            p.expect_keyword_is(Keyword::TABLE)?;
            let name = object_name(p)?;
            if p.parse_keyword(Keyword::SET) {
                Ok(Statement::AlterTableSet { name, options: parse_options(p)? })
            } else if p.parse_keywords(&[Keyword::RENAME, Keyword::TO]) {
                Ok(Statement::AlterTableRename { name, to: object_name(p)? })
            } else {
                Err(error_at(&p.peek_token(), "not supported yet: ALTER TABLE other than SET (..) and RENAME TO"))
            }
        }
        Some("SET") => {
            p.next_token();
            if matches!(p.peek_token().token, Token::SemiColon | Token::EOF) {
                return Ok(Statement::Set(None));
            }
            let key = parse_key(p)?;
            p.expect_token(&Token::Eq)?;
            Ok(Statement::Set(Some((key, parse_value(p)?))))
        }
        Some("RESET") => {
            p.next_token();
            if matches!(p.peek_token().token, Token::SemiColon | Token::EOF) {
                return Ok(Statement::Reset(None));
            }
            Ok(Statement::Reset(Some(parse_key(p)?)))
        }
        Some("SHOW") => parse_show(p),
        Some("DESCRIBE") | Some("DESC") => {
            p.next_token();
            Ok(Statement::Describe(object_name(p)?))
        }
        Some("EXPLAIN") => {
            p.next_token();
            parse_words(p, &["PLAN", "FOR"]);
            let inner = parse_statement(p)?;
            if !inner.is_dml() {
                return Err(error_at(&first, "EXPLAIN takes a query, an INSERT or a statement set"));
            }
            Ok(Statement::Explain(Box::new(inner)))
        }
        Some("USE") => {
            p.next_token();
            if p.parse_keyword(Keyword::CATALOG) {
                Ok(Statement::UseCatalog(p.parse_identifier()?.value))
            } else {
                Ok(Statement::UseDatabase(object_name(p)?))
            }
        }
        Some("EXECUTE") | Some("BEGIN") if peek_statement_set(p) => parse_statement_set(p),
        Some("INSERT") => {
            let statement = p.parse_statement()?;
            Ok(Statement::Insert(Box::new(insert(statement, &first)?)))
        }
        Some("SELECT") | Some("WITH") | Some("VALUES") => {
            Ok(Statement::Query { query: p.parse_query()?, hints: Hints::new() })
        }
        _ if matches!(first.token, Token::LParen) => {
            Ok(Statement::Query { query: p.parse_query()?, hints: Hints::new() })
        }
        _ => Err(error_at(&first, "expected a statement")),
    }
}

fn insert(statement: ast::Statement, at: &datafusion_sql::sqlparser::tokenizer::TokenWithSpan) -> Result<Insert> {
    let target = match &statement {
        ast::Statement::Insert(i) => match &i.table {
            ast::TableObject::TableName(name) => name_parts(name)?,
            other => return Err(error_at(at, &format!("not supported yet: INSERT INTO {other}"))),
        },
        _ => return Err(error_at(at, "expected INSERT INTO")),
    };
    Ok(Insert { statement, target, hints: Hints::new() })
}

fn peek_statement_set(p: &Parser<'_>) -> bool {
    let words: Vec<Option<String>> = (0..4).map(|i| peek_word(p, i)).collect();
    let w = |i: usize| words[i].as_deref();
    (w(0) == Some("EXECUTE") && w(1) == Some("STATEMENT") && w(2) == Some("SET"))
        || (w(0) == Some("BEGIN") && w(1) == Some("STATEMENT") && w(2) == Some("SET"))
}

fn parse_statement_set(p: &mut Parser<'_>) -> Result<Statement> {
    let at = p.peek_token();
    // Flink's `EXECUTE STATEMENT SET BEGIN ... END` and the SQL client's older
    // `BEGIN STATEMENT SET; ... END;`.
    let execute = parse_words(p, &["EXECUTE", "STATEMENT", "SET"]);
    if execute {
        p.expect_keyword_is(Keyword::BEGIN)?;
    } else {
        parse_words(p, &["BEGIN", "STATEMENT", "SET"]);
        let _ = p.consume_token(&Token::SemiColon);
    }
    let mut inserts = Vec::new();
    loop {
        while p.consume_token(&Token::SemiColon) {}
        if p.parse_keyword(Keyword::END) {
            break;
        }
        let next = p.peek_token();
        if matches!(next.token, Token::EOF) {
            return Err(error_at(&next, "expected END of the statement set"));
        }
        if peek_word(p, 0).as_deref() != Some("INSERT") {
            return Err(error_at(&next, "a statement set holds only INSERT statements"));
        }
        let statement = p.parse_statement()?;
        inserts.push(insert(statement, &next)?);
    }
    if inserts.is_empty() {
        return Err(error_at(&at, "an empty statement set"));
    }
    Ok(Statement::StatementSet(inserts))
}

fn parse_create(p: &mut Parser<'_>) -> Result<Statement> {
    p.next_token();
    let temporary = p.parse_keyword(Keyword::TEMPORARY) || parse_words(p, &["TEMPORARY"]);
    if p.parse_keyword(Keyword::TABLE) {
        return Ok(Statement::CreateTable(Box::new(parse_create_table(p, temporary)?)));
    }
    if p.parse_keyword(Keyword::VIEW) {
        let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
        let name = object_name(p)?;
        let columns = if matches!(p.peek_token().token, Token::LParen) {
            crate::ddl::words::parse_ident_list(p)?.into_iter().map(|i| i.value).collect()
        } else {
            Vec::new()
        };
        p.expect_keyword_is(Keyword::AS)?;
        let query = p.parse_query()?;
        return Ok(Statement::CreateView { name, query, columns, if_not_exists, temporary });
    }
    if p.parse_keyword(Keyword::CATALOG) {
        let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
        let name = p.parse_identifier()?.value;
        let options = if p.parse_keyword(Keyword::WITH) { parse_options(p)? } else { BTreeMap::new() };
        return Ok(Statement::CreateCatalog { name, options, if_not_exists });
    }
    if p.parse_keyword(Keyword::DATABASE) || p.parse_keyword(Keyword::SCHEMA) {
        let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
        let name = object_name(p)?;
        if p.parse_keyword(Keyword::COMMENT) {
            p.parse_literal_string()?;
        }
        if p.parse_keyword(Keyword::WITH) {
            parse_options(p)?;
        }
        return Ok(Statement::CreateDatabase { name, if_not_exists });
    }
    if peek_word(p, 0).as_deref() == Some("FUNCTION") {
        return Err(error_at(&p.peek_token(), "not supported yet: CREATE FUNCTION"));
    }
    Err(error_at(&p.peek_token(), "expected TABLE, VIEW, CATALOG or DATABASE after CREATE"))
}

fn parse_drop(p: &mut Parser<'_>) -> Result<Statement> {
    p.next_token();
    let _temporary = p.parse_keyword(Keyword::TEMPORARY);
    let at = p.peek_token();
    let kind = p.parse_one_of_keywords(&[Keyword::TABLE, Keyword::VIEW, Keyword::DATABASE, Keyword::SCHEMA]);
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = object_name(p)?;
    match kind {
        Some(Keyword::TABLE) => Ok(Statement::Drop { name, view: false, if_exists }),
        Some(Keyword::VIEW) => Ok(Statement::Drop { name, view: true, if_exists }),
        Some(_) => {
            let _ = p.parse_one_of_keywords(&[Keyword::RESTRICT, Keyword::CASCADE]);
            Ok(Statement::DropDatabase { name, if_exists })
        }
        None => Err(error_at(&at, "expected TABLE, VIEW or DATABASE after DROP")),
    }
}

fn parse_show(p: &mut Parser<'_>) -> Result<Statement> {
    p.next_token();
    let at = p.peek_token();
    let kind = match peek_word(p, 0).as_deref() {
        Some("TABLES") => ShowKind::Tables,
        Some("VIEWS") => ShowKind::Views,
        Some("FUNCTIONS") => ShowKind::Functions,
        Some("USER") if peek_word(p, 1).as_deref() == Some("FUNCTIONS") => {
            p.next_token();
            ShowKind::Functions
        }
        Some("CATALOGS") => ShowKind::Catalogs,
        Some("DATABASES") => ShowKind::Databases,
        Some("CURRENT") => {
            p.next_token();
            match peek_word(p, 0).as_deref() {
                Some("CATALOG") => ShowKind::CurrentCatalog,
                Some("DATABASE") => ShowKind::CurrentDatabase,
                _ => return Err(error_at(&p.peek_token(), "expected CATALOG or DATABASE after SHOW CURRENT")),
            }
        }
        Some("CREATE") => {
            p.next_token();
            let view = match peek_word(p, 0).as_deref() {
                Some("TABLE") => false,
                Some("VIEW") => true,
                _ => return Err(error_at(&p.peek_token(), "expected TABLE or VIEW after SHOW CREATE")),
            };
            p.next_token();
            return Ok(Statement::ShowCreate { name: object_name(p)?, view });
        }
        _ => {
            return Err(error_at(
                &at,
                "expected TABLES, VIEWS, FUNCTIONS, CATALOGS, DATABASES, CURRENT or CREATE after SHOW",
            ))
        }
    };
    p.next_token();
    Ok(Statement::Show(kind))
}

/// The name parts of an `ObjectName` (for callers holding sqlparser names).
pub fn parts(name: &ObjectName) -> Result<Vec<String>> {
    name_parts(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnKind;

    const BIDS: &str = "CREATE TABLE bids (
  id BIGINT,
  auction AS CAST(MOD(id * 7919, 1000) AS BIGINT),
  `dateTime` AS TO_TIMESTAMP_LTZ(1700000000000 + id, 3),
  WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '0' SECOND
) WITH (
  'connector' = 'datagen',
  'fields.id.kind' = 'sequence'
);";

    #[test]
    fn the_generator_block_parses_into_columns_watermark_and_options() {
        let Statement::CreateTable(c) = parse_one(BIDS).unwrap() else { panic!() };
        assert_eq!(c.name, ["bids"]);
        let names: Vec<_> = c.table.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "auction", "dateTime"]);
        assert_eq!(c.table.columns[0].kind, ColumnKind::Physical);
        assert!(matches!(c.table.columns[1].kind, ColumnKind::Computed(_)));
        let w = c.table.watermark.unwrap();
        assert_eq!(w.rowtime, "dateTime");
        assert_eq!(w.expr.to_string(), "`dateTime` - INTERVAL '0' SECOND");
        assert_eq!(c.table.options.get("connector").map(String::as_str), Some("datagen"));
        assert_eq!(c.table.options.len(), 2);
    }

    #[test]
    fn metadata_key_and_partitioning_are_kept() {
        let sql = "CREATE TEMPORARY TABLE IF NOT EXISTS cat.db.t (
            a INT NOT NULL, b STRING, ts TIMESTAMP(3) METADATA FROM 'timestamp' VIRTUAL,
            part STRING METADATA, CONSTRAINT pk PRIMARY KEY (a) NOT ENFORCED
        ) COMMENT 'c' PARTITIONED BY (b) WITH ('connector' = 'filesystem')";
        let Statement::CreateTable(c) = parse_one(sql).unwrap() else { panic!() };
        assert!(c.temporary && c.if_not_exists);
        assert_eq!(c.name, ["cat", "db", "t"]);
        assert_eq!(c.table.primary_key, ["a"]);
        assert_eq!(c.table.partitioned_by, ["b"]);
        assert_eq!(c.table.comment.as_deref(), Some("c"));
        assert_eq!(c.table.columns[2].kind, ColumnKind::Metadata { key: "timestamp".into(), is_virtual: true });
        assert_eq!(c.table.columns[3].kind, ColumnKind::Metadata { key: "part".into(), is_virtual: false });
        assert!(!c.table.columns[0].nullable);
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = parse_script("CREATE TABLE t (\n  a INT,\n  PRIMARY KEY (a)\n) WITH ()").unwrap_err().to_string();
        assert!(err.contains("NOT ENFORCED") && err.contains("Line: 4, Column: 1"), "{err}");
        let err = parse_script("SELECT 1;\nSELEC 2").unwrap_err().to_string();
        assert!(err.contains("Line: 2, Column: 1"), "{err}");
        let err = parse_script("CREATE TABLE t (a INT, a BIGINT) WITH ()").unwrap_err().to_string();
        assert!(err.contains("declared twice") && err.contains("Column: 24"), "{err}");
    }

    #[test]
    fn a_script_splits_on_semicolons_outside_strings_comments_and_statement_sets() {
        let sql = "SET 'table.local-time-zone' = 'UTC'; -- a; comment\n
            /* more; */ SELECT 'a;b';
            EXECUTE STATEMENT SET BEGIN
              INSERT INTO s1 SELECT * FROM t;
              INSERT INTO s2 SELECT * FROM t /*+ OPTIONS('k' = 'v') */;
            END;
            RESET 'x'; RESET; SET; SHOW TABLES; SHOW CREATE TABLE t; DESC t; EXPLAIN SELECT 1";
        let all = parse_script(sql).unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0], Statement::Set(Some(("table.local-time-zone".into(), "UTC".into()))));
        let Statement::StatementSet(inserts) = &all[2] else { panic!("{:?}", all[2]) };
        assert_eq!(inserts.len(), 2);
        assert_eq!(inserts[1].target, ["s2"]);
        assert_eq!(inserts[1].hints["t"]["k"], "v");
        assert_eq!(all[3], Statement::Reset(Some("x".into())));
        assert_eq!(all[4], Statement::Reset(None));
        assert_eq!(all[5], Statement::Set(None));
        assert_eq!(all[6], Statement::Show(ShowKind::Tables));
        assert_eq!(all[7], Statement::ShowCreate { name: vec!["t".into()], view: false });
        assert_eq!(all[8], Statement::Describe(vec!["t".into()]));
        assert!(matches!(&all[9], Statement::Explain(q) if q.is_dml()));
    }

    #[test]
    fn unquoted_set_values_and_catalog_statements_parse() {
        let all = parse_script(
            "SET parallelism.default = 2; CREATE CATALOG c WITH ('type' = 'generic_in_memory'); USE CATALOG c;
             CREATE DATABASE IF NOT EXISTS d; USE d; DROP DATABASE IF EXISTS d; DROP VIEW IF EXISTS v;
             ALTER TABLE t SET ('connector' = 'print')",
        )
        .unwrap();
        assert_eq!(all[0], Statement::Set(Some(("parallelism.default".into(), "2".into()))));
        assert!(
            matches!(&all[1], Statement::CreateCatalog { name, options, .. } if name == "c" && options["type"] == "generic_in_memory")
        );
        assert_eq!(all[2], Statement::UseCatalog("c".into()));
        assert_eq!(all[3], Statement::CreateDatabase { name: vec!["d".into()], if_not_exists: true });
        assert_eq!(all[4], Statement::UseDatabase(vec!["d".into()]));
        assert_eq!(all[5], Statement::DropDatabase { name: vec!["d".into()], if_exists: true });
        assert_eq!(all[6], Statement::Drop { name: vec!["v".into()], view: true, if_exists: true });
        assert!(matches!(&all[7], Statement::AlterTableSet { options, .. } if options["connector"] == "print"));
    }
}
