//! The in-memory catalog: catalogs hold databases, databases hold tables and views. Names are
//! case-sensitive (Flink's identifiers are); a name of one, two or three parts is resolved
//! against the current catalog and database (`default_catalog.default_database` at start).

pub mod table;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use table::{Column, ColumnKind, TableDef, ViewDef, WatermarkSpec};

use crate::error::{Result, SqlError};

/// Flink's default catalog name.
pub const DEFAULT_CATALOG: &str = "default_catalog";
/// Flink's default database name.
pub const DEFAULT_DATABASE: &str = "default_database";

/// A table or a view.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A table with a connector.
    Table(Arc<TableDef>),
    /// A view.
    View(Arc<ViewDef>),
}

/// A fully qualified name: catalog, database, object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectPath {
    /// The catalog.
    pub catalog: String,
    /// The database.
    pub database: String,
    /// The table or view.
    pub name: String,
}

impl std::fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.catalog, self.database, self.name)
    }
}

#[derive(Debug, Clone, Default)]
struct Database {
    objects: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Default)]
struct CatalogData {
    databases: BTreeMap<String, Database>,
    options: BTreeMap<String, String>,
}

/// Every catalog of a session and which one is current.
#[derive(Debug, Clone)]
pub struct Catalogs {
    catalogs: BTreeMap<String, CatalogData>,
    current_catalog: String,
    current_database: String,
}

impl Default for Catalogs {
    fn default() -> Self {
        let mut c = Catalogs {
            catalogs: BTreeMap::new(),
            current_catalog: DEFAULT_CATALOG.into(),
            current_database: DEFAULT_DATABASE.into(),
        };
        let mut data = CatalogData::default();
        data.databases.insert(DEFAULT_DATABASE.into(), Database::default());
        c.catalogs.insert(DEFAULT_CATALOG.into(), data);
        c
    }
}

impl Catalogs {
    /// The current catalog.
    pub fn current_catalog(&self) -> &str {
        &self.current_catalog
    }

    /// The current database.
    pub fn current_database(&self) -> &str {
        &self.current_database
    }

    /// A name of 1–3 parts, completed with the current catalog and database.
    pub fn resolve(&self, parts: &[String]) -> Result<ObjectPath> {
        let (catalog, database, name) = match parts {
            [n] => (self.current_catalog.clone(), self.current_database.clone(), n.clone()),
            [d, n] => (self.current_catalog.clone(), d.clone(), n.clone()),
            [c, d, n] => (c.clone(), d.clone(), n.clone()),
            _ => return Err(SqlError::invalid(format!("'{}' is not a table name (1 to 3 parts)", parts.join(".")))),
        };
        Ok(ObjectPath { catalog, database, name })
    }

    fn database(&self, catalog: &str, database: &str) -> Result<&Database> {
        let c = self
            .catalogs
            .get(catalog)
            .ok_or_else(|| SqlError::invalid(format!("catalog '{catalog}' does not exist")))?;
        c.databases
            .get(database)
            .ok_or_else(|| SqlError::invalid(format!("database '{catalog}.{database}' does not exist")))
    }

    fn database_mut(&mut self, catalog: &str, database: &str) -> Result<&mut Database> {
        let c = self
            .catalogs
            .get_mut(catalog)
            .ok_or_else(|| SqlError::invalid(format!("catalog '{catalog}' does not exist")))?;
        c.databases
            .get_mut(database)
            .ok_or_else(|| SqlError::invalid(format!("database '{catalog}.{database}' does not exist")))
    }

    /// The table or view at `path`, if any.
    pub fn get(&self, path: &ObjectPath) -> Option<&Entry> {
        self.database(&path.catalog, &path.database).ok()?.objects.get(&path.name)
    }

    /// The table at `path`, or an error naming it.
    pub fn table(&self, path: &ObjectPath) -> Result<Arc<TableDef>> {
        match self.get(path) {
            Some(Entry::Table(t)) => Ok(t.clone()),
            Some(Entry::View(_)) => Err(SqlError::invalid(format!("'{path}' is a view, not a table"))),
            None => Err(SqlError::invalid(format!("table '{path}' does not exist"))),
        }
    }

    /// Adds a table or view; an error if the name is taken, unless `if_not_exists`.
    pub fn create(&mut self, path: &ObjectPath, entry: Entry, if_not_exists: bool) -> Result<()> {
        let db = self.database_mut(&path.catalog, &path.database)?;
        if db.objects.contains_key(&path.name) {
            if if_not_exists {
                return Ok(());
            }
            return Err(SqlError::invalid(format!("'{path}' already exists")));
        }
        db.objects.insert(path.name.clone(), entry);
        Ok(())
    }

    /// Replaces the table at `path` (ALTER TABLE).
    pub fn replace_table(&mut self, path: &ObjectPath, table: TableDef) -> Result<()> {
        self.table(path)?;
        self.database_mut(&path.catalog, &path.database)?
            .objects
            .insert(path.name.clone(), Entry::Table(Arc::new(table)));
        Ok(())
    }

    /// Drops a table (`view` false) or view; an error if absent unless `if_exists`, or if it
    /// is of the other kind.
    pub fn drop(&mut self, path: &ObjectPath, view: bool, if_exists: bool) -> Result<()> {
        let kind = if view { "view" } else { "table" };
        match self.get(path) {
            None if if_exists => Ok(()),
            None => Err(SqlError::invalid(format!("{kind} '{path}' does not exist"))),
            Some(Entry::View(_)) if !view => Err(SqlError::invalid(format!("'{path}' is a view: use DROP VIEW"))),
            Some(Entry::Table(_)) if view => Err(SqlError::invalid(format!("'{path}' is a table: use DROP TABLE"))),
            Some(_) => {
                self.database_mut(&path.catalog, &path.database)?.objects.remove(&path.name);
                Ok(())
            }
        }
    }

    /// Names of the tables (`views` false) or views of the current database, sorted.
    pub fn list(&self, views: bool) -> Result<Vec<String>> {
        let db = self.database(&self.current_catalog, &self.current_database)?;
        Ok(db.objects.iter().filter(|(_, e)| matches!(e, Entry::View(_)) == views).map(|(n, _)| n.clone()).collect())
    }

    /// Catalog names, sorted.
    pub fn catalogs(&self) -> Vec<String> {
        self.catalogs.keys().cloned().collect()
    }

    /// Database names of the current catalog, sorted.
    pub fn databases(&self) -> Vec<String> {
        self.catalogs.get(&self.current_catalog).map(|c| c.databases.keys().cloned().collect()).unwrap_or_default()
    }

    /// `CREATE CATALOG name WITH (..)`: an in-memory catalog with a default database.
    pub fn create_catalog(&mut self, name: &str, options: BTreeMap<String, String>, if_not_exists: bool) -> Result<()> {
        if self.catalogs.contains_key(name) {
            return if if_not_exists {
                Ok(())
            } else {
                Err(SqlError::invalid(format!("catalog '{name}' already exists")))
            };
        }
        if let Some(kind) = options.get("type") {
            if kind != "generic_in_memory" {
                return Err(SqlError::unsupported(format!("catalog type '{kind}' (only 'generic_in_memory')")));
            }
        }
        let mut data = CatalogData { options, ..CatalogData::default() };
        let default_db = data.options.get("default-database").cloned().unwrap_or_else(|| DEFAULT_DATABASE.into());
        data.databases.insert(default_db, Database::default());
        self.catalogs.insert(name.into(), data);
        Ok(())
    }

    /// `USE CATALOG name`: its default database becomes current.
    pub fn use_catalog(&mut self, name: &str) -> Result<()> {
        let c = self.catalogs.get(name).ok_or_else(|| SqlError::invalid(format!("catalog '{name}' does not exist")))?;
        let db = c.options.get("default-database").cloned().unwrap_or_else(|| DEFAULT_DATABASE.into());
        let db = if c.databases.contains_key(&db) { db } else { c.databases.keys().next().cloned().unwrap_or(db) };
        self.current_catalog = name.into();
        self.current_database = db;
        Ok(())
    }

    /// `CREATE DATABASE [catalog.]name`.
    pub fn create_database(&mut self, parts: &[String], if_not_exists: bool) -> Result<()> {
        let (catalog, name) = self.database_name(parts)?;
        let c = self
            .catalogs
            .get_mut(&catalog)
            .ok_or_else(|| SqlError::invalid(format!("catalog '{catalog}' does not exist")))?;
        if c.databases.contains_key(&name) {
            return if if_not_exists {
                Ok(())
            } else {
                Err(SqlError::invalid(format!("database '{catalog}.{name}' already exists")))
            };
        }
        c.databases.insert(name, Database::default());
        Ok(())
    }

    /// `DROP DATABASE [IF EXISTS] [catalog.]name` (only an empty one; not the current one).
    pub fn drop_database(&mut self, parts: &[String], if_exists: bool) -> Result<()> {
        let (catalog, name) = self.database_name(parts)?;
        if catalog == self.current_catalog && name == self.current_database {
            return Err(SqlError::invalid(format!("cannot drop the current database '{catalog}.{name}'")));
        }
        match self.database(&catalog, &name) {
            Err(_) if if_exists => return Ok(()),
            Err(e) => return Err(e),
            Ok(db) if !db.objects.is_empty() => {
                return Err(SqlError::invalid(format!("database '{catalog}.{name}' is not empty")))
            }
            Ok(_) => {}
        }
        if let Some(c) = self.catalogs.get_mut(&catalog) {
            c.databases.remove(&name);
        }
        Ok(())
    }

    /// `USE [catalog.]name`.
    pub fn use_database(&mut self, parts: &[String]) -> Result<()> {
        let (catalog, name) = self.database_name(parts)?;
        self.database(&catalog, &name)?;
        self.current_catalog = catalog;
        self.current_database = name;
        Ok(())
    }

    fn database_name(&self, parts: &[String]) -> Result<(String, String)> {
        match parts {
            [d] => Ok((self.current_catalog.clone(), d.clone())),
            [c, d] => Ok((c.clone(), d.clone())),
            _ => Err(SqlError::invalid(format!("'{}' is not a database name", parts.join(".")))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str) -> Entry {
        Entry::View(Arc::new(ViewDef {
            name: name.into(),
            query: "SELECT 1".into(),
            columns: vec![],
            temporary: false,
        }))
    }

    #[test]
    fn names_resolve_against_the_current_database_and_are_case_sensitive() {
        let mut c = Catalogs::default();
        let p = c.resolve(&["v".into()]).unwrap();
        assert_eq!(p.to_string(), "default_catalog.default_database.v");
        c.create(&p, view("v"), false).unwrap();
        assert!(c.get(&c.resolve(&["V".into()]).unwrap()).is_none());
        assert!(c.create(&p, view("v"), false).is_err());
        c.create(&p, view("v"), true).unwrap();
        assert_eq!(c.list(true).unwrap(), ["v"]);
        assert!(c.list(false).unwrap().is_empty());
        assert!(c.drop(&p, false, false).unwrap_err().to_string().contains("DROP VIEW"));
        c.drop(&p, true, false).unwrap();
        c.drop(&p, true, true).unwrap();
    }

    #[test]
    fn catalogs_and_databases_can_be_created_and_used() {
        let mut c = Catalogs::default();
        c.create_catalog("mem", BTreeMap::new(), false).unwrap();
        c.use_catalog("mem").unwrap();
        assert_eq!((c.current_catalog(), c.current_database()), ("mem", "default_database"));
        c.create_database(&["db2".into()], false).unwrap();
        c.use_database(&["db2".into()]).unwrap();
        assert_eq!(c.databases(), ["db2", "default_database"]);
        assert_eq!(c.catalogs(), ["default_catalog", "mem"]);
        assert!(c.use_database(&["nope".into()]).is_err());
        assert!(c.drop_database(&["db2".into()], false).is_err(), "the current one");
    }
}
