//! Recovery as a person needs it, with the real binary: what changed (diff,
//! against a snapshot or the live files), only the lost rows back (recover),
//! a database-only rollback, scoped `latest`, forget, dump and find.

mod common;
use common::recruit::{bad_migration_then_new_rows, recruit_db};
use common::*;
use rusqlite::Connection;
use std::fs;
use std::path::Path;

fn count(db: &Path, table: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn table<'a>(diff: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    diff["databases"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no table {name} in {diff}"))
}

#[test]
fn cascade_delete_is_diffed_and_only_the_lost_rows_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("recruit"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    let db = data.join("recruit.db");
    recruit_db(&db);
    fs::write(data.join("config.json"), "{}").unwrap();
    snap_ok(&store, &["init"]);
    let pre = snap_json(
        &store,
        &["take", data.to_str().unwrap(), "--tag", "pre-migration"],
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The application keeps the database open while all this happens.
    let app = Connection::open(&db).unwrap();
    bad_migration_then_new_rows(&db);

    // What did the migration delete? One command.
    let d = snap_json(&store, &["diff", "latest", "--live"]);
    assert_eq!(table(&d, "candidates")["removed"], 35);
    assert_eq!(table(&d, "candidates")["added"], 2);
    assert_eq!(table(&d, "evaluations")["removed"], 108);
    assert_eq!(table(&d, "messages")["removed"], 160);
    assert_eq!(
        table(&d, "settings")["changed"],
        1,
        "WITHOUT ROWID tables are compared by key"
    );

    let dry = snap_json(
        &store,
        &["recover", &pre, "--db", db.to_str().unwrap(), "--dry-run"],
    );
    let missing: u64 = dry["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["missing"].as_u64().unwrap())
        .sum();
    assert_eq!(missing, 303);
    assert!(dry["sql"].as_array().unwrap().len() >= 303);
    assert_eq!(count(&db, "candidates"), 2, "a dry run changes nothing");

    let r = snap_json(&store, &["recover", "latest", "--db", db.to_str().unwrap()]);
    let recovered: u64 = r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["recovered"].as_u64().unwrap())
        .sum();
    assert_eq!(recovered, 303);
    assert_eq!(r["foreign_key_check"], "ok");
    assert_eq!(count(&db, "candidates"), 37);
    assert_eq!(count(&db, "evaluations"), 110);
    assert_eq!(count(&db, "messages"), 161);
    let theme: String = app
        .query_row("SELECT value FROM settings WHERE key = 'theme'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        theme, "dark",
        "a conflicting row is kept unless --overwrite"
    );
    // The undo: the pre-recover snapshot holds the database as it was.
    let undo = r["pre_recover"].as_str().unwrap();
    let list = snap_json(&store, &["list", "--tag", "pre-recover"]);
    assert_eq!(list[0]["id"], undo);
}

#[test]
fn diff_sql_turns_a_into_b() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("recruit"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    let db = data.join("recruit.db");
    recruit_db(&db);
    snap_ok(&store, &["init"]);
    let a = snap_json(&store, &["take", data.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    bad_migration_then_new_rows(&db);
    let b = snap_json(&store, &["take", data.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sql = snap_ok(&store, &["diff", &a, &b, "--sql"]);
    let out = dir.path().join("out");
    snap_ok(&store, &["restore", &a, "--to", out.to_str().unwrap()]);
    let restored = out.join("recruit/recruit.db");
    Connection::open(&restored)
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
    let again = snap_json(&store, &["take", out.join("recruit").to_str().unwrap()]);
    let d = snap_json(&store, &["diff", again["id"].as_str().unwrap(), &b]);
    assert!(
        d["databases"].as_array().unwrap().is_empty(),
        "after the SQL, A's rows are B's: {d}"
    );
}

#[test]
fn database_only_rollback_keeps_the_rest_and_is_undoable() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("recruit"), dir.path().join("store"));
    fs::create_dir_all(data.join("logs")).unwrap();
    let db = data.join("recruit.db");
    recruit_db(&db);
    fs::write(data.join("config.json"), "v1").unwrap();
    snap_ok(&store, &["init"]);
    let pre = snap_json(&store, &["take", data.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    bad_migration_then_new_rows(&db);
    fs::write(data.join("config.json"), "v2").unwrap();
    fs::write(data.join("logs/today.log"), "new log").unwrap();
    let r = snap_json(
        &store,
        &[
            "restore",
            &pre,
            "--in-place",
            "--path",
            "recruit/recruit.db",
            "--force",
        ],
    );
    assert_eq!(count(&db, "candidates"), 35);
    assert_eq!(
        fs::read_to_string(data.join("config.json")).unwrap(),
        "v2",
        "only the database rolled back"
    );
    assert!(data.join("logs/today.log").exists());
    // The undo snapshot holds the database as the rollback found it.
    let undo = r["undo_snapshot"].as_str().unwrap().to_string();
    snap_ok(&store, &["restore", &undo, "--in-place", "--force"]);
    assert_eq!(count(&db, "candidates"), 2);
}

#[test]
fn latest_is_scoped_by_path_and_forget_removes_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (one, two) = (dir.path().join("one.db"), dir.path().join("two"));
    Connection::open(&one)
        .unwrap()
        .execute_batch("CREATE TABLE t(x)")
        .unwrap();
    fs::create_dir_all(&two).unwrap();
    fs::write(two.join("f"), "x").unwrap();
    snap_ok(&store, &["init"]);
    let a = snap_json(&store, &["take", one.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = snap_json(&store, &["take", two.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    // `latest` alone is the newest of anything; scoped, it is that database's.
    let v = snap_json(
        &store,
        &["verify", "latest", "--path", one.to_str().unwrap()],
    );
    assert_eq!(v["report"]["snapshots"], 1);
    let l = snap_json(&store, &["list", "--path", one.to_str().unwrap()]);
    assert_eq!(l.as_array().unwrap().len(), 1);
    assert_eq!(l[0]["id"], a.as_str());
    let out = dir.path().join("out");
    snap_ok(
        &store,
        &[
            "restore",
            &format!("latest:{}", one.display()),
            "--to",
            out.to_str().unwrap(),
        ],
    );
    assert!(out.join("one.db").exists());
    // forget by id, even the newest; gc then frees its space.
    snap_ok(&store, &["forget", &b]);
    assert_eq!(snap_json(&store, &["list"]).as_array().unwrap().len(), 1);
    snap_ok(&store, &["gc"]);
    snap_ok(&store, &["verify", "--read-data"]);
}

#[test]
fn dump_and_find() {
    let dir = tempfile::tempdir().unwrap();
    let (data, store) = (dir.path().join("recruit"), dir.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    recruit_db(&data.join("recruit.db"));
    fs::write(data.join("config.json"), "{\"a\":1}").unwrap();
    snap_ok(&store, &["init"]);
    snap_ok(&store, &["take", data.to_str().unwrap()]);
    assert_eq!(
        snap_ok(&store, &["dump", "latest", "recruit/config.json"]),
        "{\"a\":1}"
    );
    let sql = snap_ok(&store, &["dump", "latest", "recruit/recruit.db", "--sql"]);
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(&sql).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 160);
    let image = snap(&store, &["dump", "latest", "recruit/recruit.db"]).stdout;
    assert_eq!(&image[..16], b"SQLite format 3\0");
    let found = snap_json(&store, &["find", "*.db"]);
    assert_eq!(found[0]["path"], "recruit/recruit.db");
}

// SQLite refuses expression trees deeper than 1,000: diff and recover
// failed on tables wider than about 1,000 columns. They work up to
// SQLite's column limit (2,000 by default).
#[test]
fn tables_of_1999_columns_are_diffed_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = (dir.path().join("wide.db"), dir.path().join("store"));
    let cols: Vec<String> = (0..1999).map(|i| format!("c{i}")).collect();
    let c = Connection::open(&db).unwrap();
    c.execute_batch(&format!(
        "CREATE TABLE w(id INTEGER PRIMARY KEY, {}); CREATE TABLE k({});",
        cols[..1998].join(","),
        cols.join(",")
    ))
    .unwrap();
    for id in 1..=3 {
        let vals: Vec<String> = (0..1998).map(|i| (i * id).to_string()).collect();
        c.execute_batch(&format!("INSERT INTO w VALUES ({id}, {});", vals.join(",")))
            .unwrap();
        let vals: Vec<String> = (0..1999).map(|i| (i + id).to_string()).collect();
        c.execute_batch(&format!("INSERT INTO k VALUES ({});", vals.join(",")))
            .unwrap();
    }
    snap_ok(&store, &["take", db.to_str().unwrap()]);
    c.execute_batch("DELETE FROM w WHERE id = 2; UPDATE w SET c5 = -1 WHERE id = 3; DELETE FROM k WHERE c0 = 1;")
        .unwrap();
    let d = snap_json(&store, &["diff", "latest", "--live"]);
    let w = &d["databases"][0]["tables"];
    assert!(w.to_string().contains("\"removed\":1"), "{d}");
    let sql = snap_ok(&store, &["diff", "latest", "--live", "--sql"]);
    assert!(sql.contains("DELETE FROM \"k\""), "{sql}");
    let r = snap_json(&store, &["recover", "latest", "--db", db.to_str().unwrap()]);
    let written: u64 = r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["recovered"].as_u64().unwrap())
        .sum();
    assert_eq!(written, 2, "{r}");
    assert_eq!(count(&db, "w"), 3);
    assert_eq!(count(&db, "k"), 3);
}

// A dropped column showed in `diff` only as `schema: table items changed`
// with `0 changed`: the column and the values it held are named.
#[test]
fn a_dropped_column_shows_the_values_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = (dir.path().join("shop.db"), dir.path().join("store"));
    let c = Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL);")
        .unwrap();
    for i in 0..1000 {
        c.execute(
            "INSERT INTO items(name, price) VALUES (?1, ?2)",
            (format!("i{i}"), i as f64),
        )
        .unwrap();
    }
    snap_ok(&store, &["take", db.to_str().unwrap()]);
    c.execute_batch("ALTER TABLE items DROP COLUMN price")
        .unwrap();
    let d = snap_json(&store, &["diff", "latest", "--live"]);
    let col = &d["databases"][0]["columns"][0];
    assert_eq!(col["column"], "price", "{d}");
    assert_eq!(col["change"], "removed");
    assert_eq!(col["values"], 1000);
    let text = snap_ok(&store, &["diff", "latest", "--live"]);
    assert!(
        text.contains("column items.price removed (1000 values lost)"),
        "{text}"
    );
}
